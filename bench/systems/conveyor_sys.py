"""Conveyor on each of its stores: worker processes for real stores, in-process for memory.

Every store the installed Conveyor has is measured; a store this version does not have
(or that needs a server the run was not given) becomes a note instead of figures.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from functools import cache
from typing import Any

from bench.conveyor_app import make_app
from bench.systems.base import Args, Context, InProcessSystem, ProcessSystem, System, Unavailable

APP_SPEC = "bench.conveyor_app:app"


@cache
def worker_help() -> str:
    """``conveyor worker --help`` of the installed Conveyor (read once per run)."""
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "worker", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def supports_concurrency() -> bool:
    """True when ``worker`` has ``-c/--concurrency`` (the prefork supervisor)."""
    return "--concurrency" in worker_help()


def supports_solo() -> bool:
    """True when ``worker`` has ``--solo`` (one process, no supervisor)."""
    return "--solo" in worker_help()


@cache
def encryption_spec() -> str:
    """A key ring with one freshly generated key (the run's only key)."""
    from conveyor.codec import generate_key

    return f"bench:{generate_key()}"


def payload_env() -> dict[str, str]:
    """Worker environment for the payload run: encryption on (the default 1 MiB limit
    takes the 1 MiB argument as it is)."""
    return {"CONVEYOR_ENCRYPTION_KEYS": encryption_spec()}


class _Producer:
    """The harness's side of Conveyor: two Apps (plain, and compressed + encrypted)."""

    queue = "default"
    dsn = ""

    def _apps(self, dsn: str) -> None:
        from conveyor.config import AppSettings

        self.dsn = dsn
        self.plain = make_app(dsn)
        self.sealed = make_app(
            dsn,
            settings=AppSettings(store=dsn, encryption_keys=encryption_spec()),
        )

    def _close_apps(self) -> None:
        for app in (getattr(self, "plain", None), getattr(self, "sealed", None)):
            if app is not None:
                app.close()

    def _task(self, task: str) -> Any:
        app = self.sealed if task == "payload" else self.plain
        return app, app.tasks[f"bench.{task}"].with_options(queue=self.queue)

    def enqueue_each(self, task: str, args: Sequence[Args]) -> None:
        _, bound = self._task(task)
        enqueue = bound.enqueue
        for one in args:
            enqueue(*one)

    def enqueue_bulk(self, task: str, args: Sequence[Args]) -> None:
        _, bound = self._task(task)
        bound.enqueue_many(args)


class ConveyorStore(_Producer, ProcessSystem):
    """Conveyor on a store shared between processes (SQLite today)."""

    dist = "conveyor"
    bulk_api = "task.enqueue_many([...])"

    def __init__(self, store: str, dsn: str | None = None) -> None:
        self.store = store
        self.key = f"conveyor-{store}"
        self.title = f"Conveyor {store}"
        self.given_dsn = dsn
        self.resets = 0

    def open(self, ctx: Context) -> None:
        self.ctx = ctx
        probe = self._probe_dsn()
        check_store(probe, self.store)
        self._apps(probe)

    def _probe_dsn(self) -> str:
        if self.store == "sqlite":
            return f"sqlite:///{self.ctx.path('probe', '.db')}"
        if self.store == "redis":
            if self.ctx.redis_url is None:
                raise Unavailable(self.ctx.redis_reason)
            return self.ctx.redis_url.rsplit("/", 1)[0] + "/1"
        if self.given_dsn:
            return self.given_dsn
        try:
            check_store("postgresql://127.0.0.1/conveyor_bench", self.store)
        except Unavailable:
            raise
        except Exception:
            pass  # the driver exists; the placeholder DSN has no server behind it
        raise Unavailable("no PostgreSQL server given: pass --postgres-dsn")

    def reset(self) -> None:
        """SQLite: a fresh database file; other stores: a fresh queue name."""
        self._close_apps()
        self.resets += 1
        if self.store == "sqlite":
            self._apps(f"sqlite:///{self.ctx.path('conveyor', '.db')}")
        else:
            self.queue = f"bench{self.resets}"
            self._apps(self.dsn)

    def close(self) -> None:
        self._close_apps()

    def _worker(self, *flags: str) -> list[str]:
        return [
            sys.executable, "-m", "conveyor", "--app", APP_SPEC, "--store", self.dsn,
            "--log-level", "WARNING", "worker", "-Q", self.queue,
            "--prefetch", str(self.ctx.prefetch), *flags,
        ]  # fmt: skip

    def single(self) -> tuple[list[list[str]], str]:
        prefetch = f"--prefetch {self.ctx.prefetch}"
        if supports_concurrency():
            return [self._worker("-c", "1")], f"worker -c 1 {prefetch}"
        return [self._worker()], f"worker {prefetch}"

    def best(self, cores: int) -> tuple[list[list[str]], str]:
        prefetch = f"--prefetch {self.ctx.prefetch}"
        if supports_concurrency():
            return [self._worker("-c", str(cores))], f"worker -c {cores} {prefetch}"
        return [self._worker() for _ in range(cores)], f"{cores} x worker {prefetch}"

    def worker_env(self, task: str) -> dict[str, str]:
        return payload_env() if task == "payload" else {}

    def variants(self) -> list[tuple[str, Any]]:
        """With a supervisor, also one process without it (``--solo``), for comparison."""
        if not (supports_concurrency() and supports_solo()):
            return []
        label = f"worker --solo --prefetch {self.ctx.prefetch}"
        return [("solo", lambda: ([self._worker("--solo")], label))]

    def job_process(self, rss: list[dict[str, object]]) -> dict[str, object] | None:
        """The supervisor's child when there is one (the target is per child)."""
        children = [row for row in rss if "conveyor.worker.child" in str(row["cmd"])]
        return (children or rss or [None])[0]


class ConveyorMemory(_Producer, InProcessSystem):
    """Conveyor on MemoryStore: producer and ``Worker.run`` in the harness process."""

    key = "conveyor-memory"
    title = "Conveyor memory"
    dist = "conveyor"
    bulk_api = "task.enqueue_many([...])"

    def open(self, ctx: Context) -> None:
        self.ctx = ctx
        self._apps("memory://")

    def reset(self) -> None:
        self._close_apps()
        self._apps("memory://")

    def close(self) -> None:
        self._close_apps()

    def app_for(self, task: str) -> Any:
        """The App whose store holds the jobs and whose codec opens them."""
        return self.sealed if task == "payload" else self.plain


def check_store(dsn: str, store: str) -> None:
    """Raise Unavailable when this Conveyor has no driver for ``dsn``."""
    from conveyor.errors import ConfigurationError
    from conveyor.stores import open_store

    try:
        opened = open_store(dsn)
    except ConfigurationError as exc:
        raise Unavailable(f"no {store} store in this Conveyor version ({exc})") from exc
    opened.close()


def conveyor_systems(postgres_dsn: str | None) -> list[System]:
    """Conveyor on every store: SQLite, memory (in-process), Redis, PostgreSQL."""
    return [
        ConveyorStore("sqlite"),
        ConveyorMemory(),
        ConveyorStore("redis"),
        ConveyorStore("postgresql", postgres_dsn),
    ]
