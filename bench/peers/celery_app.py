"""Celery on the private Redis broker: ``celery -A bench.peers.celery_app worker``."""

from __future__ import annotations

import os
import time

from celery import Celery

from bench.recorder import record

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue="default",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    record(time.time())


@app.task(name="bench.stamp")
def stamp(sent: float) -> None:
    record(time.time(), sent)


@app.task(name="bench.payload")
def payload(data: str) -> None:
    record(time.time(), len(data))
