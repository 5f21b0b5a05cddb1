"""Dramatiq with its RedisBroker; processes x threads for the best setting."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence

from bench.systems.base import Args, RedisPeer, not_installed

THREADS = 8


class DramatiqSystem(RedisPeer):
    key = "dramatiq"
    title = "Dramatiq"
    dist = "dramatiq"
    bulk_api = "group([...]).run()"

    def connect(self) -> None:
        os.environ["BENCH_REDIS_URL"] = self.url
        try:
            self.module = importlib.import_module("bench.peers.dramatiq_app")
            from dramatiq import group
        except ImportError as exc:
            raise not_installed("dramatiq[redis]", exc) from exc
        self.group = group
        self.actors = {name: getattr(self.module, name) for name in ("noop", "stamp", "payload")}
        self.cli = self.ctx.bin("dramatiq")

    def close(self) -> None:
        self.module.broker.close()
        super().close()

    def enqueue_each(self, task: str, args: Sequence[Args]) -> None:
        send = self.actors[task].send
        for one in args:
            send(*one)

    def enqueue_bulk(self, task: str, args: Sequence[Args]) -> None:
        message = self.actors[task].message
        self.group([message(*one) for one in args]).run()

    def single(self) -> tuple[list[list[str]], str]:
        cmd = [self.cli, "bench.peers.dramatiq_app", "--processes", "1", "--threads", "1"]
        return [cmd], "--processes 1 --threads 1"

    def best(self, cores: int) -> tuple[list[list[str]], str]:
        cmd = [self.cli, "bench.peers.dramatiq_app", "--processes", str(cores)]
        cmd += ["--threads", str(THREADS)]
        return [cmd], f"--processes {cores} --threads {THREADS}"
