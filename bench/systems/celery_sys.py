"""Celery with the Redis broker; ``--pool solo`` for concurrency 1, prefork for the best."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence

from bench.systems.base import Args, RedisPeer, not_installed


class CelerySystem(RedisPeer):
    key = "celery"
    title = "Celery"
    dist = "celery"
    bulk_api = "group(...).apply_async()"

    def connect(self) -> None:
        os.environ["BENCH_REDIS_URL"] = self.url
        try:
            self.module = importlib.import_module("bench.peers.celery_app")
            from celery import group
        except ImportError as exc:
            raise not_installed("celery[redis]", exc) from exc
        self.group = group
        self.tasks = {name: getattr(self.module, name) for name in ("noop", "stamp", "payload")}
        self.cli = self.ctx.bin("celery")

    def close(self) -> None:
        self.module.app.close()
        super().close()

    def enqueue_each(self, task: str, args: Sequence[Args]) -> None:
        call = self.tasks[task].apply_async
        for one in args:
            call(one)

    def enqueue_bulk(self, task: str, args: Sequence[Args]) -> None:
        sig = self.tasks[task].s
        self.group(sig(*one) for one in args).apply_async()

    def _worker(self, *flags: str) -> list[str]:
        return [
            self.cli, "-A", "bench.peers.celery_app", "worker",
            "-Q", "default", "-l", "WARNING", *flags,
        ]  # fmt: skip

    def single(self) -> tuple[list[list[str]], str]:
        return [self._worker("--pool", "solo", "-c", "1")], "worker --pool solo -c 1"

    def best(self, cores: int) -> tuple[list[list[str]], str]:
        flags = ("--pool", "prefork", "-c", str(cores))
        return [self._worker(*flags)], f"worker --pool prefork -c {cores}"
