"""``JobHandle.wait``: returns the finished job, or raises WaitTimeout (a TimeoutError)
naming the job, its state and the timeout."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import App, ConveyorError, InvalidOption, JobState, WaitTimeout
from conveyor.config import AppSettings, WorkerSettings
from conveyor.worker.consumer import Worker


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    application = App(f"sqlite:///{tmp_path / 'jobs.db'}", settings=AppSettings())
    yield application
    application.close()


def test_wait_raises_when_the_job_has_not_finished(app: App) -> None:
    @app.task
    def slow() -> None: ...

    handle = slow.enqueue()
    with pytest.raises(WaitTimeout) as info:
        handle.wait(timeout=0)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, ConveyorError)
    assert (info.value.job_id, info.value.state, info.value.timeout) == (handle.id, "pending", 0)
    assert f"job {handle.id} is still pending after waiting 0s" in str(info.value)
    with pytest.raises(TimeoutError, match=r"still scheduled after waiting 0\.05s"):
        slow.with_options(delay=3600).enqueue().wait(timeout=0.05)
    assert handle.state is JobState.PENDING  # waiting changed nothing


def test_wait_returns_the_finished_job(app: App) -> None:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    handle = add.enqueue(1, 2)
    Worker(app, WorkerSettings(burst=True, poll_interval=0.05)).run()
    info = handle.wait(timeout=0)
    assert (info.state, info.result) == (JobState.COMPLETED, 3)


def test_wait_sees_a_job_finished_by_a_worker_meanwhile(app: App) -> None:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    handle = add.enqueue(2, 3)
    worker = Worker(app, WorkerSettings(burst=True, poll_interval=0.05))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert handle.wait(timeout=None).result == 5
    finally:
        thread.join(30)


def test_wait_refuses_a_bad_timeout(app: App) -> None:
    @app.task
    def noop() -> None: ...

    with pytest.raises(InvalidOption, match="timeout"):
        noop.enqueue().wait(timeout=float("nan"))
