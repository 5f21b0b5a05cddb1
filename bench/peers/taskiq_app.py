"""Taskiq on taskiq-redis's ListQueueBroker: ``taskiq worker bench.peers.taskiq_app:broker``."""

from __future__ import annotations

import os
import time

from taskiq_redis import ListQueueBroker

from bench.recorder import record

broker = ListQueueBroker(
    url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"), queue_name="default"
)


@broker.task(task_name="bench.noop")
async def noop() -> None:
    record(time.time())


@broker.task(task_name="bench.stamp")
async def stamp(sent: float) -> None:
    record(time.time(), sent)


@broker.task(task_name="bench.payload")
async def payload(data: str) -> None:
    record(time.time(), len(data))
