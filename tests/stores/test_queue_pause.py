"""Queue pause/resume on every driver: the paused set in the store, and a real Worker
(fake clock, ``run_once``) that stops claiming from a paused queue within one poll
interval and claims again within one poll interval of a resume."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from conveyor import App
from conveyor.clock import FakeClock
from conveyor.config import AppSettings, WorkerSettings
from conveyor.errors import InvalidOption
from conveyor.job import JobState
from conveyor.queue_control import (
    PausedQueues,
    QueueChange,
    pause_queues,
    paused_queues,
    resume_queues,
)
from conveyor.stores.base import Store
from conveyor.worker.consumer import Worker

from .support import add, claim, state_of

POLL = 0.5


def ran(value: str) -> str:
    """The task the worker runs in these tests."""
    return value


@pytest.fixture
def app(store: Store, clock: FakeClock) -> Iterator[App]:
    application = App(store, settings=AppSettings(), clock=clock)
    application.task(name="tests.ran", queue="a")(ran)
    yield application


def worker(
    app: App, *, poll_interval: float = POLL, burst: bool = False, heartbeat: float = 1.0
) -> Worker:
    settings = WorkerSettings(
        queues="a,b",
        poll_interval=poll_interval,
        prefetch=1,
        burst=burst,
        heartbeat_interval=heartbeat,
    )
    return Worker(app, settings, maintenance=False)


def enqueue(app: App, queue: str) -> str:
    return app.get_task("tests.ran").with_options(queue=queue).enqueue(queue).id


# the paused set ----------------------------------------------------------------------------


def test_pause_and_resume_are_kept_in_the_store(store: Store, clock: FakeClock) -> None:
    assert paused_queues(store) == {}

    assert pause_queues(store, ["b", "a", "b"]) == QueueChange(["b", "a"], [])
    assert pause_queues(store, ["a", "c"]) == QueueChange(["c"], ["a"])
    paused = paused_queues(store)
    assert sorted(paused) == ["a", "b", "c"]
    assert paused["a"] == clock.now()

    assert resume_queues(store, ["a", "x"]) == QueueChange(["a"], ["x"])
    assert sorted(paused_queues(store)) == ["b", "c"]


def test_pause_refuses_an_invalid_queue_name_and_pauses_nothing(store: Store) -> None:
    with pytest.raises(InvalidOption, match="queue"):
        pause_queues(store, ["good", "Bad Name"])

    assert paused_queues(store) == {}


def test_a_paused_queue_still_accepts_jobs(store: Store) -> None:
    pause_queues(store, ["default"])

    job_id = add(store)

    assert state_of(store, job_id) is JobState.PENDING
    assert [lease.job_id for lease in claim(store)] == [job_id]  # the store itself does not refuse


def test_a_claim_of_no_queues_takes_nothing(store: Store) -> None:
    add(store)

    assert claim(store, [], limit=5) == []  # a worker whose queues are all paused


def test_the_cached_set_is_reread_after_half_a_poll_interval(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.queues")
    cache = PausedQueues(store, clock, interval=POLL)
    assert cache.filter(["a", "b"]) == ["a", "b"]

    pause_queues(store, ["a"])
    assert cache.filter(["a", "b"]) == ["a", "b"]  # within the cache's lifetime
    clock.advance(POLL / 2)
    assert cache.filter(["a", "b"]) == ["b"]

    resume_queues(store, ["a"])
    clock.advance(POLL / 2)
    assert cache.filter(["a", "b"]) == ["a", "b"]
    assert [r.getMessage() for r in caplog.records] == [
        "paused queues: a",
        "paused queues: none",
    ]


# a worker ----------------------------------------------------------------------------------


def test_a_worker_stops_claiming_from_a_paused_queue_within_one_poll_interval(
    app: App, clock: FakeClock
) -> None:
    first = enqueue(app, "a")
    w = worker(app)
    assert w.run_once() == 1  # the worker has read the paused set (empty) and runs a job
    held = enqueue(app, "a")
    other = enqueue(app, "b")

    pause_queues(app.store, ["a"])
    clock.advance(POLL)

    assert w.run_once() == 1
    assert started(app.store, other)
    assert w.run_once() == 0
    assert state_of(app.store, held) is JobState.PENDING
    assert state_of(app.store, first) is JobState.COMPLETED

    resume_queues(app.store, ["a"])
    clock.advance(POLL)

    assert w.run_once() == 1
    assert started(app.store, held)


def started(store: Store, job_id: str) -> bool:
    """The worker ran the job (its completion may still wait in the worker's ack batch)."""
    return state_of(store, job_id) in (JobState.PROCESSING, JobState.COMPLETED)


def test_a_burst_worker_ends_when_only_paused_queues_have_jobs(app: App, clock: FakeClock) -> None:
    held = enqueue(app, "a")
    other = enqueue(app, "b")
    pause_queues(app.store, ["a"])
    w = worker(app, poll_interval=0.02, burst=True, heartbeat=0.05)
    w.burst_horizon = 0.0

    w.run()

    assert w.drained
    assert state_of(app.store, other) is JobState.COMPLETED
    assert state_of(app.store, held) is JobState.PENDING
