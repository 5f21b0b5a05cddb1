"""What every system adapter provides to the workloads."""

from __future__ import annotations

import importlib.metadata
import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Args = tuple[Any, ...]
TASKS = ("noop", "stamp", "payload")


class Unavailable(Exception):
    """The system cannot run here; the message says why (shown in the table)."""


@dataclass
class Context:
    """What a run shares with every system: the private Redis, a scratch dir, the machine."""

    redis_url: str | None
    redis_reason: str
    workdir: Path
    cores: int
    prefetch: int
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def path(self, stem: str, suffix: str) -> Path:
        """A fresh file name in the scratch dir."""
        return self.workdir / f"{stem}-{next(self._counter)}{suffix}"

    def bin(self, name: str) -> str:
        """A console script of this environment (the peers' worker CLIs)."""
        candidate = Path(sys.executable).parent / name
        if not candidate.exists():
            raise Unavailable(f"{name} is not installed in {Path(sys.executable).parent}")
        return str(candidate)


def version_of(dist: str) -> str:
    """The installed version of a distribution, or '?'."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def not_installed(dist: str, exc: BaseException) -> Unavailable:
    """The standard "cannot import" reason."""
    return Unavailable(
        f"{dist} is not installed here ({type(exc).__name__}: {exc}); "
        "`make bench` installs it with the bench extra"
    )


class System:
    """Common metadata."""

    key = ""
    """Column name, e.g. ``celery`` or ``conveyor-sqlite``."""
    title = ""
    dist = ""
    in_process = False
    bulk_api: str | None = None
    """How bulk enqueue is done, or None when the library has no bulk API."""
    bulk_missing = ""
    """Why bulk is n/a."""

    @property
    def version(self) -> str:
        """Library version."""
        return version_of(self.dist)

    def open(self, ctx: Context) -> None:
        """Import the library and connect the producer; raise :class:`Unavailable`."""
        raise NotImplementedError

    def close(self) -> None:
        """Close producer connections."""

    def reset(self) -> None:
        """Empty the queues (a fresh store or a flushed Redis)."""
        raise NotImplementedError

    def enqueue_each(self, task: str, args: Sequence[Args]) -> None:
        """Enqueue one job per element, one library call per job."""
        raise NotImplementedError

    def enqueue_bulk(self, task: str, args: Sequence[Args]) -> None:
        """Enqueue all elements with the library's bulk API."""
        raise Unavailable(self.bulk_missing or "no bulk API")


class ProcessSystem(System):
    """A system whose workers run as separate processes started with its own CLI."""

    def single(self) -> tuple[list[list[str]], str]:
        """Commands and a label for one worker process, concurrency 1."""
        raise NotImplementedError

    def best(self, cores: int) -> tuple[list[list[str]], str]:
        """Commands and a label for the machine's best setting on ``cores`` cores."""
        raise NotImplementedError

    def worker_env(self, task: str) -> dict[str, str]:
        """Extra environment for workers of a run whose jobs are ``task``."""
        return {}

    def variants(self) -> list[tuple[str, Any]]:
        """Other one-process settings worth a processing run: (name, commands builder)."""
        return []

    def job_process(self, rss: list[dict[str, object]]) -> dict[str, object] | None:
        """Of a launch's processes (largest RSS first), the one that runs the jobs."""
        return rss[0] if rss else None


class InProcessSystem(System):
    """A system measured inside the harness process (Conveyor's MemoryStore)."""

    in_process = True


class RedisPeer(ProcessSystem):
    """A peer on the private Redis: reset is FLUSHALL."""

    def open(self, ctx: Context) -> None:
        if ctx.redis_url is None:
            raise Unavailable(ctx.redis_reason)
        self.ctx = ctx
        self.url = ctx.redis_url
        try:
            import redis
        except ImportError as exc:
            raise not_installed("redis", exc) from exc
        self.redis = redis.Redis.from_url(self.url)
        self.connect()

    def connect(self) -> None:
        """Import the library's app module and build the producer."""
        raise NotImplementedError

    def reset(self) -> None:
        self.redis.flushall()

    def close(self) -> None:
        self.redis.close()

    def worker_env(self, task: str) -> dict[str, str]:
        return {"BENCH_REDIS_URL": self.url}
