"""Huey's RedisHuey; one worker thread for concurrency 1, process workers for the best."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence

from bench.systems.base import Args, RedisPeer, not_installed


class HueySystem(RedisPeer):
    key = "huey"
    title = "Huey"
    dist = "huey"
    bulk_missing = "Huey has no bulk enqueue API"

    def connect(self) -> None:
        os.environ["BENCH_REDIS_URL"] = self.url
        try:
            self.module = importlib.import_module("bench.peers.huey_app")
        except ImportError as exc:
            raise not_installed("huey", exc) from exc
        self.tasks = {name: getattr(self.module, name) for name in ("noop", "stamp", "payload")}
        self.cli = self.ctx.bin("huey_consumer")

    def enqueue_each(self, task: str, args: Sequence[Args]) -> None:
        call = self.tasks[task]
        for one in args:
            call(*one)

    def _worker(self, *flags: str) -> list[str]:
        return [self.cli, "bench.peers.huey_app.huey", "-q", *flags]

    def single(self) -> tuple[list[list[str]], str]:
        return [self._worker("-w", "1", "-k", "thread")], "-w 1 -k thread"

    def best(self, cores: int) -> tuple[list[list[str]], str]:
        flags = ("-w", str(cores), "-k", "process")
        return [self._worker(*flags)], f"-w {cores} -k process"
