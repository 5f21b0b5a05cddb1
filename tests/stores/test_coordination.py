"""What is built on records works on every driver: the leader lease, stored schedules
with the scheduler, rate windows and concurrency slots."""

from __future__ import annotations

from datetime import UTC, datetime

from conveyor import App, FakeClock
from conveyor.config import AppSettings
from conveyor.coordination.lease import LeaderLease
from conveyor.coordination.limiter import Limiter
from conveyor.scheduler.service import Scheduler
from conveyor.stores.base import JobQuery, Store

START = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC).timestamp()


def test_leader_lease_is_exclusive_and_taken_over_after_expiry(
    store: Store, clock: FakeClock
) -> None:
    a = LeaderLease(store, "scheduler", "a", ttl=10)
    b = LeaderLease(store, "scheduler", "b", ttl=10)
    assert a.acquire() and not b.acquire()
    clock.advance(9)
    assert a.acquire(), "the holder renews"
    clock.advance(9)
    assert not b.acquire(), "renewed 9 s ago: still a's"
    clock.advance(1.5)
    assert b.acquire() and b.owner() == "b"
    assert not a.acquire()
    b.release()
    assert store.get_record("lease", "scheduler") is None


def test_stored_schedule_runs_once_per_fire_time_across_two_schedulers(
    store: Store, clock: FakeClock
) -> None:
    clock.advance(START - clock.now())

    def make_app() -> App:
        app = App(store, settings=AppSettings(), clock=clock)

        @app.task(name="t.echo")
        def echo(word: str) -> str:
            return word

        return app

    first, second = make_app(), make_app()
    first.schedule("t.echo", "every 5 minutes", name="echo", args=["hi"], catch_up="all")
    schedulers = [Scheduler(first, leader_ttl=2), Scheduler(second, leader_ttl=2)]
    created: list[str] = []
    for step in range(60):  # 30 minutes in 30 s steps; leadership changes hands
        created += schedulers[(step // 7) % 2].run_once(clock.now())
        clock.advance(30)
    jobs = store.search(JobQuery(limit=100)).items
    keys = sorted(str(job.unique_key) for job in jobs)
    assert len(keys) == len(set(keys)) == len(created) == 6
    state = schedulers[0].registry.require("echo")
    assert state.last_fire_at is not None and state.next_fire_at == state.last_fire_at + 300


def test_rate_window_and_slots(store: Store, clock: FakeClock) -> None:
    limiter = Limiter(store, slot_ttl=30)
    granted = [limiter.take_rate("rate:r", f"j{i}", 3, 10.0) for i in range(4)]
    assert granted[:3] == [None, None, None]
    assert granted[3] is not None and 9.9 < granted[3] <= 10.0
    clock.advance(10)
    assert limiter.take_rate("rate:r", "j4", 3, 10.0) is None
    assert limiter.take_slot("slots:s", "a", 2) is None
    assert limiter.take_slot("slots:s", "b", 2) is None
    assert limiter.take_slot("slots:s", "c", 2, retry_after=2.0) == 2.0
    limiter.give_back_slot("slots:s", "a")
    assert limiter.take_slot("slots:s", "c", 2) is None
    clock.advance(31)  # holders that stopped renewing lose their slots
    assert limiter.take_slot("slots:s", "d", 1) is None
