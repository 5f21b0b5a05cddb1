"""The gate in a real worker (burst mode, fake clock): conditions and limits defer or skip
jobs before they run; deferred jobs come back later without using an attempt."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tests.stores.support import LOCAL_DRIVERS, open_test_store

from conveyor import App, FakeClock, JobState
from conveyor.conditions import ConditionContext, JobStateIs, Predicate, TimeWindow
from conveyor.config import AppSettings, WorkerSettings
from conveyor.coordination.limiter import Limiter
from conveyor.coordination.limits import Bucket, Concurrency, RateLimit
from conveyor.stores.base import JobQuery
from conveyor.worker.consumer import Worker

LEASE = 4.0
START = datetime(2026, 1, 5, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()  # a Monday, noon UTC


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


@pytest.fixture(params=LOCAL_DRIVERS)
def app(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[App]:
    store = open_test_store(request.param, tmp_path / "store", clock)
    application = App(store, settings=AppSettings(), clock=clock)
    yield application
    application.close()


def run_burst(app: App) -> Worker:
    worker = Worker(
        app,
        WorkerSettings(
            burst=True,
            poll_interval=0.02,
            lease_seconds=LEASE,
            heartbeat_interval=0.05,
            rescue_interval=1.0,
        ),
        maintenance=False,
    )
    worker.burst_horizon = 0.0  # the fake clock only moves between runs: never wait for it
    worker.run()
    return worker


def drain(app: App, clock: FakeClock, step: float, rounds: int = 20) -> int:
    """Run burst workers, moving the clock ``step`` on between them, until no job is left
    waiting; return the number of rounds it took."""
    for round_ in range(1, rounds + 1):
        run_burst(app)
        active = [
            job
            for job in app.store.search(JobQuery(limit=1000)).items
            if job.state not in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
        ]
        if not active:
            return round_
        clock.advance(step)
    raise AssertionError("jobs still waiting after all rounds")


# conditions -----------------------------------------------------------------------------


def test_deferred_job_is_released_to_later_without_using_an_attempt(
    app: App, clock: FakeClock
) -> None:
    open_now = {"value": False}
    runs: list[int] = []

    @app.condition("open")
    def is_open(ctx: ConditionContext) -> bool:
        return open_now["value"]

    @app.task(max_attempts=1, conditions=[Predicate("open", otherwise="defer", delay=60)])
    def work(n: int) -> int:
        runs.append(n)
        return n * 2

    handle = work.enqueue(21)
    worker = run_burst(app)
    info = app.get_job(handle.id)
    assert runs == [] and worker.stats.deferred == 1 and worker.stats.failed == 0
    assert worker.stats.processed == 0, "a job put back did not run (no --max-tasks count)"
    assert info.state is JobState.SCHEDULED
    assert info.job.attempt == 0 and info.errors == ()
    assert info.job.run_at == pytest.approx(START + 60)
    [decision] = info.decisions
    assert (decision.action, decision.source, decision.delay) == ("defer", "predicate", 60.0)
    assert decision.at == pytest.approx(START) and "open returned False" in decision.reason

    clock.advance(30)  # not due yet: nothing runs even though the condition now allows it
    open_now["value"] = True
    run_burst(app)
    assert runs == [] and app.get_job(handle.id).state is JobState.SCHEDULED
    clock.advance(30)
    run_burst(app)
    info = app.get_job(handle.id)
    assert runs == [21]
    assert info.state is JobState.COMPLETED and info.result == 42 and info.job.attempt == 1
    assert len(info.decisions) == 1  # running is not recorded as a decision


def test_time_window_defers_until_it_opens(app: App, clock: FakeClock) -> None:
    runs: list[float] = []
    window = TimeWindow("13:30", "14:00", tz="Europe/Paris")  # noon UTC is 13:00 in Paris

    @app.task(conditions=[window])
    def report() -> None:
        runs.append(clock.now())

    handle = report.enqueue()
    run_burst(app)
    info = app.get_job(handle.id)
    assert info.state is JobState.SCHEDULED and info.job.run_at == pytest.approx(START + 1800)
    [decision] = info.decisions
    assert decision.source == "time_window" and decision.delay == pytest.approx(1800)
    clock.advance(1800)
    run_burst(app)
    assert runs == [pytest.approx(START + 1800)]
    assert app.get_job(handle.id).state is JobState.COMPLETED


def test_skipped_job_ends_cancelled_with_the_decision(app: App) -> None:
    runs: list[str] = []

    @app.condition("never")
    def never(ctx: ConditionContext) -> bool:
        return False

    @app.task(conditions=[Predicate("never")])
    def work() -> None:
        runs.append("ran")

    handle = work.enqueue()
    worker = run_burst(app)
    info = app.get_job(handle.id)
    assert runs == [] and info.state is JobState.CANCELLED
    assert worker.stats.cancelled == 1
    [decision] = info.decisions
    assert decision.action == "skip" and decision.source == "predicate"
    assert decision.delay is None and "never returned False" in decision.reason


def test_per_job_conditions_are_stored_and_honoured(app: App) -> None:
    runs: list[str] = []

    @app.condition("tenant_active")
    def tenant_active(ctx: ConditionContext) -> bool:
        return bool(ctx.arguments().named["tenant"] != "gone")

    @app.task
    def bill(tenant: str) -> None:
        runs.append(tenant)

    guarded = bill.with_options(conditions=[Predicate("tenant_active")])
    skipped = guarded.enqueue("gone")
    kept = guarded.enqueue(tenant="acme")
    plain = bill.enqueue("gone")  # no condition on this one
    assert app.get_job(skipped.id).payload().conditions == (
        {"kind": "predicate", "name": "tenant_active", "otherwise": "skip", "delay": 30.0},
    )
    assert app.get_job(plain.id).payload().conditions == ()
    run_burst(app)
    assert sorted(runs) == ["acme", "gone"]
    assert app.get_job(skipped.id).state is JobState.CANCELLED
    assert app.get_job(kept.id).state is JobState.COMPLETED
    assert app.get_job(plain.id).state is JobState.COMPLETED
    assert [d.action for d in app.get_job(skipped.id).decisions] == ["skip"]
    assert app.get_job(kept.id).decisions == []


def test_job_waits_for_another_job(app: App, clock: FakeClock) -> None:
    order: list[str] = []

    @app.task
    def step(name: str) -> None:
        order.append(name)

    first = step.with_options(priority=0).enqueue("first")
    second = step.with_options(priority=9, conditions=[JobStateIs(first.id)]).enqueue("second")
    drain(app, clock, step=10.0)
    assert order == ["first", "second"]
    decisions = app.get_job(second.id).decisions
    assert [d.action for d in decisions] == ["defer"] and decisions[0].source == "job_state"


def test_broken_predicate_defers_and_the_worker_goes_on(app: App, clock: FakeClock) -> None:
    broken = {"value": True}
    runs: list[str] = []

    @app.condition("flaky")
    def flaky(ctx: ConditionContext) -> bool:
        if broken["value"]:
            raise RuntimeError("metrics service down")
        return True

    @app.task(conditions=[Predicate("flaky")])
    def guarded() -> None:
        runs.append("guarded")

    @app.task
    def other() -> None:
        runs.append("other")

    handle = guarded.enqueue()
    other.enqueue()
    worker = run_burst(app)
    assert runs == ["other"] and worker.stats.failed == 0
    info = app.get_job(handle.id)
    assert info.state is JobState.SCHEDULED and info.job.attempt == 0
    [decision] = info.decisions
    assert decision.action == "defer" and decision.source == "condition_error"
    assert "metrics service down" in decision.reason and decision.delay == 30.0
    broken["value"] = False
    clock.advance(30)
    run_burst(app)
    assert runs == ["other", "guarded"]
    assert app.get_job(handle.id).state is JobState.COMPLETED


def test_broken_key_function_defers(app: App, clock: FakeClock) -> None:
    def tenant_of(*args: Any, **kwargs: Any) -> str:
        raise KeyError("tenant")

    @app.task(limits=[RateLimit(5, per=1.0, key=tenant_of)])
    def work() -> None:
        return None

    handle = work.enqueue()
    run_burst(app)
    info = app.get_job(handle.id)
    assert info.state is JobState.SCHEDULED
    assert [(d.action, d.source) for d in info.decisions] == [("defer", "condition_error")]


# limits ---------------------------------------------------------------------------------


def test_rate_limited_jobs_are_deferred_not_failed_and_all_complete(
    app: App, clock: FakeClock
) -> None:
    starts: list[float] = []

    @app.task(max_attempts=1, limits=[RateLimit(2, per=10.0)])
    def send(n: int) -> int:
        starts.append(clock.now())
        return n

    handles = [send.enqueue(n) for n in range(7)]
    rounds = drain(app, clock, step=11.5)
    infos = [app.get_job(h.id) for h in handles]
    assert all(i.state is JobState.COMPLETED for i in infos), [i.state for i in infos]
    assert sorted(i.result for i in infos) == list(range(7))  # none lost, none run twice
    assert len(starts) == 7 and rounds <= 8
    assert all(i.job.attempt == 1 and i.errors == () for i in infos)
    for at in starts:
        assert sum(1 for t in starts if at <= t < at + 10.0) <= 2
    deferred = [d for i in infos for d in i.decisions]
    assert deferred and all(d.source == "rate_limit" and d.action == "defer" for d in deferred)
    for info in infos:
        delays = [d.delay or 0.0 for d in info.decisions]
        if delays:
            # the first wait is exact (the oldest start leaving the window, plus jitter);
            # later ones by the same limit are spread out (back-off), never beyond 30 s
            assert 10.0 <= delays[0] <= 11.0
            assert all(d > 0 for d in delays)
            assert max(delays) <= 30.0


def test_rate_limit_per_key_buckets(app: App, clock: FakeClock) -> None:
    ran: list[str] = []

    @app.task(limits=[RateLimit(1, per=60.0, key="tenant")])
    def keyed(tenant: str) -> None:
        ran.append("keyed:" + tenant)

    for tenant in ("acme", "globex", "acme"):
        keyed.enqueue(tenant)
    run_burst(app)
    assert sorted(ran) == ["keyed:acme", "keyed:globex"]  # the second acme job waits
    assert {r.key for r in app.store.list_records("rate")} == {
        f"rate:task:{keyed.name}|acme",
        f"rate:task:{keyed.name}|globex",
    }


def test_a_chained_job_is_keyed_by_the_piped_result(app: App) -> None:
    @app.task
    def pick_tenant() -> str:
        return "initech"

    @app.task(limits=[RateLimit(5, per=60.0, key="tenant")])
    def bill(tenant: str, cents: int) -> str:
        return f"{tenant}:{cents}"

    app.chain(pick_tenant.s(), bill.s(250)).enqueue()
    run_burst(app)
    run_burst(app)  # the second job is released when the first completes
    assert [r.key for r in app.store.list_records("rate")] == [f"rate:task:{bill.name}|initech"]


def test_concurrency_slot_held_elsewhere_defers_until_it_expires(
    app: App, clock: FakeClock
) -> None:
    ran: list[str] = []
    app.limit_queue("exports", Concurrency(1, retry_after=6.0))

    @app.task(queue="exports")
    def export() -> None:
        ran.append("export")

    # a worker that crashed while holding the only slot of the queue
    crashed = Limiter(app.store, slot_ttl=20.0)
    bucket = Bucket("slots", "slots:queue:exports", Concurrency(1))
    assert crashed.acquire("crashed-job", [bucket]).granted
    handle = export.enqueue()
    worker = Worker(app, WorkerSettings(burst=True, queues="exports", poll_interval=0.02))
    worker.run()
    info = app.get_job(handle.id)
    assert ran == [] and info.state is JobState.SCHEDULED
    [decision] = info.decisions
    assert decision.source == "concurrency" and 6.0 <= (decision.delay or 0) <= 6.6
    assert "slots:queue:exports" in decision.reason
    clock.advance(7.0)
    Worker(app, WorkerSettings(burst=True, queues="exports", poll_interval=0.02)).run()
    assert ran == []  # the crashed holder's slot lasts 20 s
    clock.advance(14.0)
    Worker(app, WorkerSettings(burst=True, queues="exports", poll_interval=0.02)).run()
    assert ran == ["export"] and app.get_job(handle.id).state is JobState.COMPLETED
    assert crashed.usage(bucket) == 0  # given back when the job ended


@pytest.mark.parametrize("ending", ["completes", "raises", "cancels"])
def test_slot_is_given_back_however_the_job_ends(app: App, ending: str) -> None:
    from conveyor import Cancel

    limit = Concurrency(1, name="exclusive")

    @app.task(max_attempts=1, limits=[limit])
    def work() -> None:
        if ending == "raises":
            raise ValueError("boom")
        if ending == "cancels":
            raise Cancel("not needed")

    handles = [work.enqueue() for _ in range(3)]
    run_burst(app)
    wanted = {
        "completes": JobState.COMPLETED,
        "raises": JobState.FAILED,
        "cancels": JobState.CANCELLED,
    }[ending]
    assert [app.get_job(h.id).state for h in handles] == [wanted] * 3
    assert all(app.get_job(h.id).decisions == [] for h in handles)
    usage = Limiter(app.store, slot_ttl=LEASE).usage(Bucket("slots", "slots:exclusive", limit))
    assert usage == 0


def test_running_job_keeps_its_slot_through_heartbeats(app: App, clock: FakeClock) -> None:
    limit = Concurrency(1, name="long")
    bucket = Bucket("slots", "slots:long", limit)
    usage_seen: list[int] = []
    limiter = Limiter(app.store, slot_ttl=LEASE)

    @app.task(limits=[limit])
    def long_job() -> None:
        for _ in range(5):  # 10 fake seconds, well past the 4 s slot lease
            clock.advance(2.0)
            time.sleep(0.25)  # several heartbeat rounds (every 50 ms) renew the slot
            usage_seen.append(limiter.usage(bucket))

    handle = long_job.enqueue()
    run_burst(app)
    assert app.get_job(handle.id).state is JobState.COMPLETED
    assert usage_seen == [1] * 5
    assert limiter.usage(bucket) == 0


def test_limits_and_conditions_are_not_checked_for_plain_tasks(app: App) -> None:
    @app.task
    def plain() -> None:
        return None

    handle = plain.enqueue()
    run_burst(app)
    assert app.get_job(handle.id).state is JobState.COMPLETED
    assert app.store.list_records("rate") == []
    assert app.store.list_records("slots") == []


def test_store_trouble_while_taking_limits_defers(
    app: App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.errors import StoreError

    runs: list[str] = []

    @app.task(limits=[Concurrency(1)])
    def work() -> None:
        runs.append("ran")

    def unavailable(self: Limiter, job_id: str, buckets: object) -> None:
        raise StoreError("database is locked")

    handle = work.enqueue()
    with monkeypatch.context() as patch:
        patch.setattr(Limiter, "acquire", unavailable)
        run_burst(app)
    info = app.get_job(handle.id)
    assert runs == [] and info.state is JobState.SCHEDULED and info.job.attempt == 0
    assert info.job.run_at == pytest.approx(START + 5.0)
    [decision] = info.decisions
    assert decision.source == "error" and "database is locked" in decision.reason
    clock.advance(5.0)
    run_burst(app)
    assert runs == ["ran"] and app.get_job(handle.id).state is JobState.COMPLETED
