"""Shared pieces of the Store conformance suite: the driver registry and small helpers.

Adding a driver is one line in :data:`STORE_FACTORIES`; every behaviour test in this
package then runs on it, and the model-based test compares it with the memory store.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from conveyor.clock import FakeClock
from conveyor.ids import IdGenerator
from conveyor.job import EnqueueResult, Job, JobError, JobState, Lease, NewJob
from conveyor.stores.base import ClaimParams, JobQuery, Store

StoreFactory = Callable[[Path, FakeClock, "str | None"], Store]
"""factory(fresh directory, clock, server DSN or None) -> store."""


def _memory(directory: Path, clock: FakeClock, dsn: str | None) -> Store:
    from conveyor.stores.memory import MemoryStore

    return MemoryStore(clock=clock)


def _sqlite(directory: Path, clock: FakeClock, dsn: str | None) -> Store:
    from conveyor.stores.sqlite import SQLiteStore

    return SQLiteStore(directory / "conveyor.db", clock=clock)


def _from_dsn(directory: Path, clock: FakeClock, dsn: str | None) -> Store:
    from conveyor.stores import open_store

    assert dsn is not None
    return open_store(dsn, clock=clock)


def _file(directory: Path, clock: FakeClock, dsn: str | None) -> Store:
    from conveyor.stores import open_store

    return open_store(f"file://{directory / 'jobs'}", clock=clock)


STORE_FACTORIES: dict[str, StoreFactory] = {
    "memory": _memory,
    "sqlite": _sqlite,
}
"""Driver name -> factory. Drivers import lazily (optional extras)."""

SERVER_FIXTURES: dict[str, str] = {"postgresql": "postgres_dsn", "redis": "redis_url"}
"""Drivers that need a server: the fixture that gives each test its own DSN."""

for _name, _module, _factory in (
    ("postgresql", "conveyor.stores.postgres", _from_dsn),
    ("redis", "conveyor.stores.redis", _from_dsn),
    ("file", "conveyor.stores.file", _file),
):
    # A driver joins the suite as soon as its package exists.
    if importlib.util.find_spec(_module) is not None:
        STORE_FACTORIES[_name] = _factory

LOCAL_DRIVERS: list[str] = [name for name in STORE_FACTORIES if name not in SERVER_FIXTURES]
"""Drivers that need no server: the tests that open stores themselves run on these."""

REFERENCE_DRIVER = "memory"
"""The driver whose behaviour is the reference semantics (model-based test)."""


def open_test_store(name: str, directory: Path, clock: FakeClock, dsn: str | None = None) -> Store:
    """A fresh, migrated store of driver ``name`` in ``directory``, judged by ``clock``."""
    directory.mkdir(parents=True, exist_ok=True)
    store = STORE_FACTORIES[name](directory, clock, dsn)
    store.migrate()
    return store


_IDS = IdGenerator()


def new_id() -> str:
    """A fresh job id (UUIDv7, increasing within the process)."""
    return _IDS.new()


def new_job(**overrides: Any) -> NewJob:
    """A :class:`NewJob` with a fresh id, queue ``default`` and a payload with a NUL byte."""
    fields: dict[str, Any] = {
        "id": new_id(),
        "queue": "default",
        "task": "tests.noop",
        "payload": b"payload\x00bytes",
    }
    fields.update(overrides)
    return NewJob(**fields)


def add(store: Store, **overrides: Any) -> str:
    """Enqueue one new job built from ``overrides``; return its id."""
    job = new_job(**overrides)
    [result] = store.enqueue([job])
    assert result.id == job.id
    assert not result.duplicate
    return job.id


def enqueue_one(store: Store, job: NewJob) -> EnqueueResult:
    """Enqueue a single job and return its result."""
    [result] = store.enqueue([job])
    return result


def claim(
    store: Store,
    queues: Sequence[str] = ("default",),
    *,
    limit: int = 1,
    worker_id: str = "worker-1",
    lease_for: float = 30.0,
    job_ids: Sequence[str] | None = None,
) -> list[Lease]:
    """Claim with the usual defaults."""
    return store.claim(
        ClaimParams(
            queues=list(queues),
            worker_id=worker_id,
            limit=limit,
            lease_for=lease_for,
            job_ids=job_ids,
        )
    )


def claim_one(
    store: Store,
    job_id: str,
    *,
    queue: str = "default",
    worker_id: str = "worker-1",
    lease_for: float = 30.0,
) -> Lease:
    """Claim the single pending job of ``queue`` and check that it is ``job_id``."""
    leases = claim(store, [queue], worker_id=worker_id, lease_for=lease_for)
    assert [lease.job_id for lease in leases] == [job_id]
    return leases[0]


def must_get(store: Store, job_id: str) -> Job:
    """The stored job, which must exist."""
    job = store.get(job_id)
    assert job is not None, f"job {job_id} is missing"
    return job


def state_of(store: Store, job_id: str) -> JobState | None:
    """The job's state, or None when it is not stored."""
    job = store.get(job_id)
    return None if job is None else job.state


def error_for(
    lease: Lease, clock: FakeClock, *, type: str = "ValueError", message: str = "boom"
) -> JobError:
    """The error a worker would record for the leased attempt."""
    return JobError(
        attempt=lease.job.attempt,
        type=type,
        message=message,
        traceback="Traceback (most recent call last):\n  ...",
        worker_id=lease.job.worker_id or "",
        started_at=lease.job.started_at,
        failed_at=clock.now(),
    )


def count_jobs(store: Store) -> int:
    """How many jobs the store holds."""
    return store.search(JobQuery(limit=1)).total
