"""Store errors inside a run (issue 9 §2): a store that fails N times on a chosen method
never stops the worker, never spends an attempt or a rescue, and each error is logged
as what it is. Real drivers (memory, SQLite, File) behind a failing wrapper, fake clock."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from tests.stores.support import LOCAL_DRIVERS, open_test_store

from conveyor import App, FailureReason, FakeClock, JobState
from conveyor.conditions import ConditionContext, Predicate
from conveyor.config import AppSettings, WorkerSettings
from conveyor.errors import IllegalTransition, StoreError, StoreUnavailable
from conveyor.stores.base import Store
from conveyor.worker.consumer import Worker

LEASE = 4.0


class FailingStore:
    """Delegates to a real store, but raises the queued errors of a method first."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.errors: dict[str, list[Exception]] = {}

    def fail_next(
        self, method: str, times: int, error: Callable[[], Exception] | None = None
    ) -> None:
        """The next ``times`` calls of ``method`` raise (StoreUnavailable by default)."""
        make = error or (lambda: StoreUnavailable(f"{method}: connection refused"))
        self.errors[method] = [make() for _ in range(times)]

    def left(self, method: str) -> int:
        """Errors of ``method`` not raised yet."""
        return len(self.errors.get(method, []))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        queued = self.errors.get(name)
        if queued is None or not callable(attr):
            return attr

        def failing(*args: Any, **kwargs: Any) -> Any:
            if queued:
                raise queued.pop(0)
            return attr(*args, **kwargs)

        return failing


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=LOCAL_DRIVERS)
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> FailingStore:
    return FailingStore(open_test_store(request.param, tmp_path / "store", clock))


@pytest.fixture
def app(store: FailingStore, clock: FakeClock) -> Iterator[App]:
    application = App(cast(Store, store), settings=AppSettings(), clock=clock)
    yield application
    application.close()


def make_worker(app: App, **overrides: Any) -> Worker:
    settings: dict[str, Any] = dict(
        burst=True,
        poll_interval=0.02,
        lease_seconds=LEASE,
        heartbeat_interval=0.05,
        rescue_interval=1.0,
    )
    settings.update(overrides)
    worker = Worker(app, WorkerSettings(**settings), maintenance=False)
    worker.burst_horizon = 0.0  # the fake clock only moves between runs
    return worker


def recording_sleeps(worker: Worker) -> list[float]:
    waits: list[float] = []
    worker.acks.sleep = waits.append
    return waits


def test_outage_reading_the_piped_result_releases_the_job(
    app: App, store: FailingStore, clock: FakeClock
) -> None:
    @app.task
    def add(a: int, b: int = 0) -> int:
        return a + b

    chain = app.chain(add.s(1, 2), add.s(10)).enqueue()
    store.fail_next("get", 1)
    first = make_worker(app)
    first.run()  # before the fix: StoreUnavailable escaped run() and the worker stopped
    assert store.left("get") == 0
    info = app.get_job(chain.last.id)
    assert info.state is JobState.SCHEDULED and info.job.attempt == 0
    assert first.stats.released == 1 and first.stats.failed == 0
    clock.advance(1.0)
    store.fail_next("get", 1)
    make_worker(app).run()  # failing again: released again
    assert app.get_job(chain.last.id).state is JobState.SCHEDULED
    clock.advance(1.0)
    make_worker(app).run()
    info = app.get_job(chain.last.id)
    assert info.state is JobState.COMPLETED and info.result == 13
    assert info.job.attempt == 1 and not info.errors


def test_outage_in_the_burst_drain_check_is_waited_out(app: App, store: FailingStore) -> None:
    @app.task
    def noop() -> None:
        return None

    handle = noop.enqueue()
    store.fail_next("stats", 3)
    worker = make_worker(app)
    worker.run()  # before the fix: the stats call's error stopped the worker
    assert worker.drained and store.left("stats") == 0
    assert app.get_job(handle.id).state is JobState.COMPLETED


def test_a_failed_acknowledgement_is_retried_while_the_lease_is_held(
    app: App, store: FailingStore
) -> None:
    @app.task(max_attempts=1)
    def boom() -> None:
        raise ValueError("kaboom")

    handle = boom.enqueue()
    store.fail_next("fail", 3)
    worker = make_worker(app)
    waits = recording_sleeps(worker)
    worker.run()
    info = app.get_job(handle.id)  # before the fix: left processing until its lease expired
    assert info.state is JobState.FAILED and info.failure_reason == FailureReason.EXHAUSTED
    assert waits == [0.05, 0.1, 0.2]
    assert worker.stats.failed == 1 and worker.stats.lost == 0


def test_completions_flushed_at_stop_are_retried_past_five_tries(
    app: App, store: FailingStore
) -> None:
    holder: list[Worker] = []

    @app.task
    def stop_after() -> str:
        holder[0].request_stop()
        return "done"

    handle = stop_after.enqueue()
    store.fail_next("complete", 7)
    worker = make_worker(app, burst=False)
    holder.append(worker)
    waits = recording_sleeps(worker)
    worker.run()
    info = app.get_job(handle.id)  # before the fix: given up after 5 tries, left processing
    assert info.state is JobState.COMPLETED and info.result == "done"
    assert len(waits) == 7 and worker.stats.completed == 1


def test_claimed_jobs_are_released_at_stop_through_an_outage(app: App, store: FailingStore) -> None:
    holder: list[Worker] = []

    @app.task
    def stop_after(n: int) -> int:
        holder[0].request_stop()
        return n

    first = stop_after.enqueue(1)
    second = stop_after.enqueue(2)
    store.fail_next("release", 2)
    worker = make_worker(app, burst=False, prefetch=2)
    holder.append(worker)
    waits = recording_sleeps(worker)
    worker.run()
    assert app.get_job(first.id).state is JobState.COMPLETED
    info = app.get_job(second.id)  # before the fix: left processing, to cost a rescue
    assert info.state is JobState.PENDING and info.job.attempt == 0
    assert waits == [0.05, 0.1] and worker.stats.released == 1


def test_acknowledgement_gives_up_once_the_lease_is_fenced(
    app: App, store: FailingStore, clock: FakeClock
) -> None:
    @app.task(max_attempts=1)
    def boom() -> None:
        raise ValueError("kaboom")

    handle = boom.enqueue()
    store.fail_next("fail", 1000)
    store.fail_next("heartbeat", 1000)
    worker = make_worker(app)

    def sleep(seconds: float) -> None:  # time passes; the heartbeat keeps failing
        clock.advance(seconds)
        worker.keeper.beat()

    worker.acks.sleep = sleep
    assert worker.run_once() == 1  # one step, no drain wait: the job is still processing
    worker.executor.close()
    assert worker.stats.lost == 1 and worker.stats.failed == 0
    assert app.get_job(handle.id).state is JobState.PROCESSING  # the rescuer's now


def test_an_illegal_transition_is_logged_as_such_and_the_worker_goes_on(
    app: App, store: FailingStore, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task(max_attempts=1)
    def boom() -> None:
        raise ValueError("kaboom")

    @app.task
    def fine() -> str:
        return "ok"

    bad = boom.enqueue()
    good = fine.enqueue()
    store.fail_next("fail", 1, lambda: IllegalTransition(bad.id, "completed", "failed"))
    worker = make_worker(app)
    waits = recording_sleeps(worker)
    with caplog.at_level(logging.WARNING, logger="conveyor"):
        for _ in range(3):  # steps, not run(): the refused job stays processing until rescued
            worker.run_once()
    worker.executor.close()
    assert waits == []  # no back-off: retrying a refusal would not help
    assert worker.stats.unrecorded == 1
    assert app.get_job(good.id).state is JobState.COMPLETED
    [line] = [r.getMessage() for r in caplog.records if bad.id in r.getMessage()]
    assert "IllegalTransition" in line and "store unavailable" not in line


def test_a_store_bug_in_the_claim_is_not_called_an_outage(
    app: App, store: FailingStore, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    def fine() -> str:
        return "ok"

    handle = fine.enqueue()
    store.fail_next("claim", 1, lambda: StoreError("malformed row in jobs"))
    with caplog.at_level(logging.WARNING, logger="conveyor"):
        make_worker(app).run()
    assert app.get_job(handle.id).state is JobState.COMPLETED
    messages = [r.getMessage() for r in caplog.records]
    assert any("store error while claiming jobs: StoreError" in m for m in messages)
    assert not any("store unavailable" in m for m in messages)


def test_a_condition_that_keeps_raising_fails_the_job(app: App, clock: FakeClock) -> None:
    @app.condition("broken")
    def broken(ctx: ConditionContext) -> bool:
        raise RuntimeError("bug in the predicate")

    @app.task(conditions=[Predicate("broken")])
    def guarded() -> None:
        return None

    handle = guarded.enqueue()
    for _ in range(2):
        make_worker(app, condition_error_limit=3).run()
        assert app.get_job(handle.id).state is JobState.SCHEDULED
        clock.advance(30.0)
    worker = make_worker(app, condition_error_limit=3)
    worker.run()  # before the fix: deferred every 30 s forever
    info = app.get_job(handle.id)
    assert info.state is JobState.FAILED
    assert info.failure_reason == FailureReason.CONDITION_ERROR
    [error] = info.errors
    assert error.type == "RuntimeError" and "bug in the predicate" in error.traceback
    assert worker.stats.failed == 1


def test_a_store_error_inside_a_condition_is_not_counted_as_its_error(
    app: App, store: FailingStore, clock: FakeClock
) -> None:
    @app.condition("reads_store")
    def reads_store(ctx: ConditionContext) -> bool:
        ctx.store.stats()
        return True

    @app.task(conditions=[Predicate("reads_store")])
    def guarded() -> str:
        return "ran"

    handle = guarded.enqueue()
    store.fail_next("stats", 1)
    make_worker(app, condition_error_limit=1).run()
    info = app.get_job(handle.id)
    assert info.state is JobState.SCHEDULED and info.decisions == []
    clock.advance(5.0)
    make_worker(app, condition_error_limit=1).run()
    assert app.get_job(handle.id).state is JobState.COMPLETED


def test_a_worker_starts_without_asking_the_store_for_its_description(
    app: App, store: FailingStore
) -> None:
    """The banner (logged once by the process the operator started) names the store;
    each worker's start makes no store call for it (on PostgreSQL: three queries)."""

    @app.task
    def fine() -> str:
        return "ok"

    handle = fine.enqueue()
    store.fail_next("info", 1)
    make_worker(app).run()  # before the fix: StoreUnavailable escaped run() at start
    assert store.left("info") == 1
    assert app.get_job(handle.id).state is JobState.COMPLETED


def test_a_store_bug_reading_the_piped_result_spends_attempts_instead_of_looping(
    app: App, store: FailingStore, clock: FakeClock
) -> None:
    """Only an outage gives the job back for free; a store error that is not one would
    release it every second forever, so it goes through the retry policy to the DLQ."""

    @app.task(max_attempts=1)
    def add(a: int, b: int = 0) -> int:
        return a + b

    chain = app.chain(add.s(1, 2), add.s(10)).enqueue()
    store.fail_next("get", 1, lambda: StoreError("malformed row in jobs"))
    make_worker(app).run()
    info = app.get_job(chain.last.id)  # before the fix: scheduled again, no attempt spent
    assert info.state is JobState.FAILED
    [error] = info.errors
    assert error.type == "StoreError" and "malformed row" in error.message


def test_a_store_bug_inside_a_condition_counts_as_its_error(app: App, store: FailingStore) -> None:
    """An outage defers the job for free; any other store error would repeat forever, so
    it counts toward ``condition_error_limit`` like a predicate that raises."""

    @app.condition("reads_store")
    def reads_store(ctx: ConditionContext) -> bool:
        ctx.store.stats()
        return True

    @app.task(conditions=[Predicate("reads_store")])
    def guarded() -> str:
        return "ran"

    handle = guarded.enqueue()
    store.fail_next("stats", 1, lambda: StoreError("malformed row in jobs"))
    make_worker(app, condition_error_limit=1).run()
    info = app.get_job(handle.id)  # before the fix: deferred 5 s, again and again
    assert info.state is JobState.FAILED
    assert info.failure_reason == FailureReason.CONDITION_ERROR
