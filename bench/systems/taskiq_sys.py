"""Taskiq with taskiq-redis's ListQueueBroker (async tasks, awaited ``kiq()`` per job)."""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Sequence

from bench.systems.base import Args, RedisPeer, not_installed


class TaskiqSystem(RedisPeer):
    key = "taskiq"
    title = "Taskiq"
    dist = "taskiq"
    bulk_missing = "Taskiq has no bulk enqueue API"

    def connect(self) -> None:
        os.environ["BENCH_REDIS_URL"] = self.url
        try:
            self.module = importlib.import_module("bench.peers.taskiq_app")
        except ImportError as exc:
            raise not_installed("taskiq-redis", exc) from exc
        self.tasks = {name: getattr(self.module, name) for name in ("noop", "stamp", "payload")}
        self.cli = self.ctx.bin("taskiq")
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.module.broker.startup())

    def close(self) -> None:
        self.loop.run_until_complete(self.module.broker.shutdown())
        self.loop.close()
        super().close()

    def enqueue_each(self, task: str, args: Sequence[Args]) -> None:
        kiq = self.tasks[task].kiq

        async def send() -> None:
            for one in args:
                await kiq(*one)

        self.loop.run_until_complete(send())

    def _worker(self, *flags: str) -> list[str]:
        broker = "bench.peers.taskiq_app:broker"
        return [self.cli, "worker", broker, "--log-level", "WARNING", *flags]

    def single(self) -> tuple[list[list[str]], str]:
        cmd = self._worker("--workers", "1", "--max-async-tasks", "1")
        return [cmd], "--workers 1 --max-async-tasks 1"

    def best(self, cores: int) -> tuple[list[list[str]], str]:
        return [self._worker("--workers", str(cores))], f"--workers {cores} (100 async tasks each)"
