"""The single-process worker on the memory store: run in this process's main thread
(soft timeouts use SIGALRM) while a helper thread plays the outside world."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conveyor import App, Cancel, FailureReason, Fixed, JobState, Retry, current_job
from conveyor.config import AppSettings, WorkerSettings
from conveyor.stores.memory import MemoryStore
from conveyor.worker.consumer import Worker
from conveyor.worker.reporting import NullReporter


@pytest.fixture
def app() -> Iterator[App]:
    application = App(MemoryStore(), settings=AppSettings())
    yield application
    application.close()


def worker(app: App, **overrides: Any) -> Worker:
    settings = dict(
        burst=True,
        poll_interval=0.05,
        lease_seconds=4.0,
        heartbeat_interval=0.05,
        rescue_interval=1.0,
    )
    settings.update(overrides)
    return Worker(app, WorkerSettings(**settings))  # type: ignore[arg-type]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def in_background(fn: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_priority_order_and_results(app: App) -> None:
    order: list[int] = []

    @app.task
    def record(n: int) -> int:
        order.append(n)
        return n * 2

    handles = [record.with_options(priority=p).enqueue(p) for p in (1, 5, 3, 9, 0)]
    stats = worker(app).run()
    assert order == [9, 5, 3, 1, 0]
    assert stats.completed == 5
    assert [app.get_job(h.id).result for h in handles] == [2, 10, 6, 18, 0]


def test_weighted_queues_share_without_starving(app: App) -> None:
    seen: list[str] = []

    @app.task
    def note(queue: str) -> None:
        seen.append(queue)

    for _ in range(40):
        note.with_options(queue="high").enqueue("high")
        note.with_options(queue="low").enqueue("low")
    worker(app, queues="high=3,low=1").run()
    first = seen[:20]
    assert first.count("high") == 15 and first.count("low") == 5
    assert len(seen) == 80


def test_chain_passes_results_and_dependencies_wait(app: App) -> None:
    @app.task
    def add(a: int, b: int = 0) -> int:
        return a + b

    chain = app.chain(add.s(1, 2), add.s(10), add.s(100)).enqueue()
    report = add.with_options(depends_on=chain.ids).enqueue(0, 0)
    worker(app).run()
    assert app.get_job(chain.last.id).result == 113
    assert app.get_job(report.id).state is JobState.COMPLETED


def test_failure_retries_then_dead_letters_with_history(app: App) -> None:
    @app.task(max_attempts=3, retry=Fixed(0))
    def flaky() -> None:
        raise ConnectionError("down")

    handle = flaky.enqueue()
    worker(app).run()
    info = app.get_job(handle.id)
    assert info.state is JobState.FAILED and info.failure_reason == FailureReason.EXHAUSTED
    assert [e.attempt for e in info.errors] == [1, 2, 3]
    assert all(e.type == "ConnectionError" and "down" in e.traceback for e in info.errors)


def test_non_retryable_error_goes_straight_to_dlq(app: App) -> None:
    @app.task(max_attempts=5, retry_on=(ConnectionError,))
    def typo() -> None:
        raise KeyError("missing")

    handle = typo.enqueue()
    worker(app).run()
    info = app.get_job(handle.id)
    assert info.failure_reason == FailureReason.NOT_RETRYABLE and len(info.errors) == 1


def test_explicit_retry_reschedules(app: App) -> None:
    calls: list[int] = []

    @app.task(max_attempts=3)
    def again() -> str:
        calls.append(current_job().attempt)
        if len(calls) < 2:
            raise Retry(delay=0.01)
        return "done"

    handle = again.enqueue()
    worker(app).run()
    assert calls == [1, 2] and app.get_job(handle.id).result == "done"


def test_soft_timeout_interrupts_sleep(app: App) -> None:
    @app.task(timeout=0.2, max_attempts=1)
    def sleepy() -> None:
        time.sleep(30)

    handle = sleepy.enqueue()
    started = time.monotonic()
    worker(app).run()
    assert time.monotonic() - started < 10
    info = app.get_job(handle.id)
    assert info.state is JobState.FAILED and info.errors[0].type == "TaskTimeout"


def test_async_task_and_its_timeout(app: App) -> None:
    import asyncio

    @app.task
    async def fast(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    @app.task(timeout=0.1, max_attempts=1)
    async def slow() -> None:
        await asyncio.sleep(30)

    ok, late = fast.enqueue(1), slow.enqueue()
    worker(app).run()
    assert app.get_job(ok.id).result == 2
    assert app.get_job(late.id).errors[0].type == "TaskTimeout"


def test_cooperative_cancel(app: App) -> None:
    started = threading.Event()

    @app.task
    def long_loop() -> str:
        started.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if current_job().cancelled:
                raise Cancel()
            time.sleep(0.005)
        return "finished"

    handle = long_loop.enqueue()
    in_background(lambda: (started.wait(10), app.store.cancel([handle.id])))
    worker(app).run()
    assert app.get_job(handle.id).state is JobState.CANCELLED


def test_forced_cancel_stops_the_handler(app: App) -> None:
    started = threading.Event()
    finished: list[bool] = []

    @app.task
    def stubborn() -> None:
        started.set()
        time.sleep(20)
        finished.append(True)

    handle = stubborn.enqueue()
    in_background(lambda: (started.wait(10), app.store.cancel([handle.id], force=True)))
    begun = time.monotonic()
    worker(app).run()
    assert time.monotonic() - begun < 10 and not finished
    assert app.get_job(handle.id).state is JobState.CANCELLED


def test_graceful_stop_finishes_current_and_releases_prefetched(app: App) -> None:
    started = threading.Event()
    release = threading.Event()

    @app.task
    def step(n: int) -> int:
        if n == 0:
            started.set()
            release.wait(10)
        return n

    handles = [step.enqueue(n) for n in range(4)]
    w = worker(app, prefetch=4, burst=False)

    def stop_while_first_runs() -> None:
        started.wait(10)
        w.request_stop()
        release.set()

    in_background(stop_while_first_runs)
    w.run()
    states = [app.get_job(h.id).state for h in handles]
    assert states == [JobState.COMPLETED] + [JobState.PENDING] * 3
    assert all(app.get_job(h.id).job.attempt == 0 for h in handles[1:])


def test_immediate_stop_releases_the_running_job(app: App) -> None:
    started = threading.Event()

    @app.task
    def forever() -> None:
        started.set()
        time.sleep(30)

    handle = forever.enqueue()
    w = worker(app, burst=False)
    in_background(lambda: (started.wait(10), w.request_stop(), w.request_stop(immediate=True)))
    begun = time.monotonic()
    w.run()
    assert time.monotonic() - begun < 10
    job = app.get_job(handle.id).job
    assert job.state is JobState.PENDING and job.attempt == 0


def test_corrupt_payload_is_quarantined_never_run(app: App) -> None:
    ran: list[int] = []

    @app.task
    def victim(x: int) -> None:
        ran.append(x)

    handle = victim.enqueue(1)
    store = app.store
    assert isinstance(store, MemoryStore)
    job = store.get(handle.id)
    assert job is not None
    flipped = bytearray(job.payload)
    flipped[len(flipped) // 2] ^= 0x01
    store._table.jobs[job.id] = dataclasses.replace(job, payload=bytes(flipped))
    worker(app).run()
    info = app.get_job(handle.id)
    assert not ran
    assert info.state is JobState.FAILED and info.failure_reason == FailureReason.CORRUPT


def test_unknown_task_retries_then_dead_letters(app: App) -> None:
    @app.task(max_attempts=2)
    def gone() -> None: ...

    handle = gone.enqueue()
    del app.tasks[gone.name]
    w = worker(app)
    w.executor.rng.seed(1)
    store = app.store
    assert isinstance(store, MemoryStore)
    job = store.get(handle.id)
    assert job is not None
    from conveyor.retry import DEFAULT_POLICY

    assert DEFAULT_POLICY.base == 1.0
    w.run()
    info = app.get_job(handle.id)
    assert info.state is JobState.FAILED and info.failure_reason == FailureReason.UNKNOWN_TASK
    assert info.errors[0].type == "UnknownTask"


def test_grace_period_turns_a_graceful_stop_into_an_immediate_one(app: App) -> None:
    started = threading.Event()

    @app.task
    def overrun() -> None:
        started.set()
        time.sleep(30)

    handle = overrun.enqueue()
    w = worker(app, burst=False, grace=0.2)
    in_background(lambda: (started.wait(10), w.request_stop()))
    begun = time.monotonic()
    w.run()
    assert time.monotonic() - begun < 10
    assert app.get_job(handle.id).state is JobState.PENDING


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"max_tasks_per_child": 2}, "max-tasks"),
        ({"max_child_lifetime": 5.0}, "max-lifetime"),
        ({"max_memory_per_child": 1}, "max-memory"),
    ],
)
def test_worker_stops_itself_to_be_recycled(
    app: App, overrides: dict[str, Any], reason: str
) -> None:
    seen: list[str] = []

    class Recorder(NullReporter):
        def recycling(self, why: str) -> None:
            seen.append(why)

    @app.task
    def quick() -> None: ...

    handles = [quick.enqueue() for _ in range(5)]
    w = Worker(app, WorkerSettings(poll_interval=0.05, **overrides), reporter=Recorder())
    w.started_mono -= 10.0  # as if the process had been up for a while
    stats = w.run()
    assert seen and seen[0].startswith(reason)
    done = sum(app.get_job(h.id).state is JobState.COMPLETED for h in handles)
    assert done == stats.completed and 1 <= done <= 2
    assert all(app.get_job(h.id).state in (JobState.COMPLETED, JobState.PENDING) for h in handles)
