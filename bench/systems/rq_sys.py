"""RQ (a work-horse fork per job); ``Queue.enqueue_many`` for bulk, N workers for the best."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from bench.systems.base import Args, RedisPeer, not_installed


class RQSystem(RedisPeer):
    key = "rq"
    title = "RQ"
    dist = "rq"
    bulk_api = "Queue.enqueue_many (pipeline)"

    def connect(self) -> None:
        try:
            from rq import Queue

            module = importlib.import_module("bench.peers.rq_app")
        except ImportError as exc:
            raise not_installed("rq", exc) from exc
        self.queue = Queue("default", connection=self.redis)
        self.prepare = Queue.prepare_data
        self.funcs = {name: getattr(module, name) for name in ("noop", "stamp", "payload")}
        self.cli = self.ctx.bin("rq")

    def enqueue_each(self, task: str, args: Sequence[Args]) -> None:
        func = self.funcs[task]
        enqueue = self.queue.enqueue
        for one in args:
            enqueue(func, *one)

    def enqueue_bulk(self, task: str, args: Sequence[Args]) -> None:
        func = self.funcs[task]
        self.queue.enqueue_many([self.prepare(func, args=one) for one in args])

    def _worker(self) -> list[str]:
        return [self.cli, "worker", "-u", self.url, "-q", "default"]

    def single(self) -> tuple[list[list[str]], str]:
        return [self._worker()], "rq worker (forks a work-horse per job)"

    def best(self, cores: int) -> tuple[list[list[str]], str]:
        return [self._worker() for _ in range(cores)], f"{cores} x rq worker"
