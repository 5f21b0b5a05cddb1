"""Huey on Redis: ``huey_consumer bench.peers.huey_app.huey``."""

from __future__ import annotations

import os
import time

from huey import RedisHuey

from bench.recorder import record

huey = RedisHuey("bench", url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))


@huey.task(name="bench.noop")
def noop() -> None:
    record(time.time())


@huey.task(name="bench.stamp")
def stamp(sent: float) -> None:
    record(time.time(), sent)


@huey.task(name="bench.payload")
def payload(data: str) -> None:
    record(time.time(), len(data))
