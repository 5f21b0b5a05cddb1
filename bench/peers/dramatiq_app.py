"""Dramatiq on its RedisBroker: ``dramatiq bench.peers.dramatiq_app -p P -t T``."""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.recorder import record

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="bench.noop", queue_name="default", max_retries=0)
def noop() -> None:
    record(time.time())


@dramatiq.actor(actor_name="bench.stamp", queue_name="default", max_retries=0)
def stamp(sent: float) -> None:
    record(time.time(), sent)


@dramatiq.actor(actor_name="bench.payload", queue_name="default", max_retries=0)
def payload(data: str) -> None:
    record(time.time(), len(data))
