"""A chain step that waits longer than the retention still gets its parent's result.

The step reads the parent's result when it runs (``parent_id``); the worker's pruner,
with the default retention (completed jobs: one day), must leave the parent alone until
the step is terminal, then delete it at a later pass. A fake clock stands in for days.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.stores.support import LOCAL_DRIVERS, open_test_store

from conveyor import App, FakeClock, JobState
from conveyor.config import AppSettings, WorkerSettings
from conveyor.maintenance.pruner import prune
from conveyor.maintenance.retention import Retention
from conveyor.worker.consumer import Worker

DAY = 86400.0
RETENTION = Retention.of(WorkerSettings())
"""What a worker with default settings prunes by (completed: 1d)."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture(params=LOCAL_DRIVERS)
def app(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[App]:
    store = open_test_store(request.param, tmp_path / "store", clock)
    application = App(store, settings=AppSettings(), clock=clock)
    yield application
    application.close()


def run_burst(app: App, queues: str = "default") -> None:
    worker = Worker(
        app,
        WorkerSettings(
            queues=queues,
            burst=True,
            poll_interval=0.02,
            heartbeat_interval=0.05,
            rescue_interval=1.0,
        ),
        maintenance=False,
    )
    worker.burst_horizon = 0.0  # the fake clock only moves between runs: never wait for it
    worker.run()


def test_a_step_delayed_past_the_retention_runs_with_its_parents_result(
    app: App, clock: FakeClock
) -> None:
    @app.task
    def add(a: int, b: int = 0) -> int:
        return a + b

    first, second = app.enqueue_chain([add.s(1, 2), add.with_options(delay=2 * DAY).s(10)])
    run_burst(app)
    assert app.get_job(first.id).state is JobState.COMPLETED
    assert app.get_job(second.id).state is JobState.SCHEDULED

    clock.advance(1.5 * DAY)
    assert prune(app.store, RETENTION).deleted["completed"] == 0  # the parent is old, but needed
    clock.advance(DAY)
    run_burst(app)

    assert app.get_job(second.id).result == 13
    clock.advance(1.5 * DAY)
    assert prune(app.store, RETENTION).deleted["completed"] == 2


def test_a_step_blocked_on_a_slow_job_past_the_retention_runs_with_its_parents_result(
    app: App, clock: FakeClock
) -> None:
    @app.task
    def add(a: int, b: int = 0) -> int:
        return a + b

    slow = add.with_options(queue="slow").enqueue(0)
    first, second = app.enqueue_chain([add.s(1, 2), add.with_options(depends_on=(slow.id,)).s(10)])
    run_burst(app)
    assert app.get_job(first.id).state is JobState.COMPLETED
    assert app.get_job(second.id).state is JobState.BLOCKED

    clock.advance(3 * DAY)
    assert prune(app.store, RETENTION).deleted["completed"] == 0
    run_burst(app, "slow")
    run_burst(app)

    assert app.get_job(second.id).result == 13
    clock.advance(1.5 * DAY)
    assert prune(app.store, RETENTION).deleted["completed"] == 3
