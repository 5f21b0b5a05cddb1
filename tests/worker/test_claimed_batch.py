"""What a child shows its supervisor through the shared slot (G9): every claimed batch,
and as running only a job whose handler is running, never one that finished and only
waits for its acknowledgement."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import App, JobState
from conveyor.config import AppSettings, WorkerSettings
from conveyor.errors import StoreUnavailable
from conveyor.job import Lease
from conveyor.stores.base import ClaimParams
from conveyor.stores.memory import MemoryStore
from conveyor.worker.channel import ReportWriter, report_pipe
from conveyor.worker.child import PipeReporter
from conveyor.worker.consumer import Worker
from conveyor.worker.release import BatchReleaser
from conveyor.worker.slot import ClaimedJob, CurrentJob, JobSlot


@pytest.fixture
def app() -> Iterator[App]:
    application = App(MemoryStore(), settings=AppSettings())
    yield application
    application.close()


@pytest.fixture
def slot() -> Iterator[JobSlot]:
    job_slot = JobSlot.create(4)
    yield job_slot
    job_slot.close()


@pytest.fixture
def reporter(slot: JobSlot) -> Iterator[PipeReporter]:
    """The child's reporter, its pipe read by nobody (a closed pipe would exit us)."""
    reader, write_fd = report_pipe()
    writer = ReportWriter(write_fd)
    yield PipeReporter(writer, slot, os.getppid())
    writer.close()
    reader.close()


def child_worker(app: App, reporter: PipeReporter) -> Worker:
    settings = WorkerSettings(prefetch=4, poll_interval=0.05, burst=True)
    return Worker(app, settings, reporter=reporter, maintenance=False)


def test_each_claimed_batch_is_published_with_its_lease_tokens(
    app: App, slot: JobSlot, reporter: PipeReporter
) -> None:
    seen: list[tuple[CurrentJob | None, list[ClaimedJob]]] = []

    @app.task
    def look() -> None:
        seen.append((slot.read(), slot.read_batch()))

    handles = [look.enqueue() for _ in range(3)]
    worker = child_worker(app, reporter)
    assert worker.run_once() == 3
    batch = seen[0][1]
    assert sorted(c.job_id for c in batch) == sorted(h.id for h in handles)
    for claimed in batch:
        assert app.get_job(claimed.job_id).job.lease_token == claimed.token
    running = [current for current, _ in seen]
    assert [c.job_id for c in running if c] == [c.job_id for c in batch]  # in claim order
    worker.run_once()  # acknowledges them, claims nothing: the batch is done with
    assert slot.read_batch() == []


def test_a_finished_job_awaiting_its_acknowledgement_is_not_shown_as_running(
    app: App, slot: JobSlot, reporter: PipeReporter
) -> None:
    """Were the child to die before the acknowledgement (store outage, say), the job
    must be released, not blamed for the death (its process was not running it)."""

    @app.task
    def quick() -> None: ...

    quick.enqueue()
    worker = child_worker(app, reporter)
    assert worker.run_once() == 1
    assert worker.acks.pending  # completed, acknowledged with the next claim
    assert slot.read() is None


def test_a_release_pass_cut_short_by_an_outage_resumes_where_it_stopped(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.task
    def idle() -> None: ...

    for _ in range(3):
        idle.enqueue()
    leases = app.store.claim(ClaimParams(queues=["default"], worker_id="w", limit=3))
    real_release = app.store.release
    calls: list[str] = []

    def release(lease: Lease, **kwargs: Any) -> None:
        calls.append(lease.job_id)
        if len(calls) == 2:
            raise StoreUnavailable("connection reset")
        real_release(lease, **kwargs)

    monkeypatch.setattr(app.store, "release", release)
    releaser = BatchReleaser(app.store)
    claimed = [ClaimedJob(lease.job_id, lease.token) for lease in leases]
    first = releaser.release("w", claimed, now=0.0)
    assert len(first) == 1 and len(releaser.pending) == 2
    assert releaser.retry(now=0.1) == []  # backing off
    second = releaser.retry(now=1.0)
    assert sorted(first + second) == sorted(lease.job_id for lease in leases)
    assert not releaser.pending
    assert all(app.get_job(lease.job_id).state is JobState.PENDING for lease in leases)
