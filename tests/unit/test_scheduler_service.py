"""Code-defined periodic schedules: registration, catch-up, DST and exactly-once firing
across several scheduler instances (fake clock, no sleeps)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conveyor import App, FakeClock, InvalidOption
from conveyor.config import AppSettings
from conveyor.job import Job
from conveyor.scheduler import ScheduleError
from conveyor.scheduler.service import SKIP_GRACE, PeriodicEntry, Scheduler, unique_key
from conveyor.stores.base import JobQuery, Store
from conveyor.stores.memory import MemoryStore

START = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC).timestamp()
"""30 s past a 5-minute boundary."""


def make_app(store: Store | str, clock: FakeClock, catch_up: str = "latest") -> App:
    app = App(store, settings=AppSettings(), clock=clock)

    @app.periodic("every 5 minutes", name="tick", catch_up=catch_up, args=(1,))
    def tick(n: int) -> int:
        return n

    return app


def all_jobs(store: Store) -> list[Job]:
    return store.search(JobQuery(limit=10_000)).items


def fire_times(store: Store, name: str = "tick") -> list[int]:
    prefix = f"periodic:{name}:"
    keys = [job.unique_key or "" for job in all_jobs(store)]
    assert all(key.startswith(prefix) for key in keys)
    return sorted(int(key.removeprefix(prefix)) for key in keys)


# registration --------------------------------------------------------------------------


def test_periodic_registers_a_task_and_a_schedule() -> None:
    app = App("memory://")

    @app.periodic("every weekday at 9:30", tz="Europe/Paris", kwargs={"who": "ops"})
    def report(who: str) -> str:
        return who

    entry = app.schedules[report.name]
    assert app.tasks[report.name] is report
    assert entry.schedule.cron == "30 9 * * 1-5"
    assert entry.zone.key == "Europe/Paris"
    assert entry.catch_up == "latest"
    assert entry.kwargs == {"who": "ops"}
    assert report("x") == "x"


def test_periodic_over_app_task_keeps_the_task_options() -> None:
    app = App("memory://")

    @app.periodic("@hourly", name="hourly-cleanup")
    @app.task(queue="maintenance")
    def cleanup() -> None:
        return None

    assert app.schedules["hourly-cleanup"].task is cleanup
    assert cleanup.options.queue == "maintenance"


@pytest.mark.parametrize(
    ("expression", "options", "error", "words"),
    [
        ("every fortnight", {}, ScheduleError, "cannot understand"),
        ("0 0 30 2 *", {}, ScheduleError, "never fires"),
        ("every day at 9:00", {"tz": "Mars/Olympus"}, ScheduleError, "Mars/Olympus"),
        ("every day at 9:00 in Europe/Berlin", {"tz": "UTC"}, ScheduleError, "differs"),
        ("every minute", {"catch_up": "some"}, InvalidOption, "catch_up"),
        ("every minute", {"args": (1, 2)}, InvalidOption, "arguments"),
    ],
)
def test_bad_periodic_declarations_raise_at_decoration_time(
    expression: str, options: dict[str, Any], error: type[Exception], words: str
) -> None:
    app = App("memory://")

    def job() -> None:
        return None

    with pytest.raises(error, match=words):
        app.periodic(expression, **options)(job)
    assert not app.schedules


def test_two_schedules_cannot_share_a_name() -> None:
    app = App("memory://")

    def first() -> None:
        return None

    def second() -> None:
        return None

    app.periodic("every minute", name="same")(first)
    with pytest.raises(InvalidOption, match="already exists"):
        app.periodic("every hour", name="same")(second)


def test_scheduler_options_are_checked() -> None:
    app = App("memory://")
    with pytest.raises(InvalidOption, match="lookback"):
        Scheduler(app, lookback=0)
    with pytest.raises(InvalidOption, match="max_catch_up"):
        Scheduler(app, max_catch_up=0)


# exactly once across instances ---------------------------------------------------------


def _step_three_instances(
    apps: list[App], clock: FakeClock, store: Store, leader_ttl: float = 15.0
) -> dict[str, int]:
    """Run three instances for an hour; return how many jobs each one created."""
    schedulers = [Scheduler(app, leader_ttl=leader_ttl) for app in apps]
    created: list[str] = []
    by_instance = {s.holder: 0 for s in schedulers}
    for step in range(3600 // 20):
        # a different instance goes first each step, and the others follow in turn
        order = schedulers[step % 3 :] + schedulers[: step % 3]
        for index, scheduler in enumerate(order):
            new = scheduler.run_once(clock.now())
            created += new
            by_instance[scheduler.holder] += len(new)
            if index == 0:
                clock.advance(7)
        clock.advance(13)
    times = fire_times(store)
    assert len(times) == len(set(times)) == len(created) == len(set(created))
    assert {job.id for job in all_jobs(store)} == set(created)
    # the first pass is 30 s after a boundary, which a new schedule does not catch up;
    # then every 5-minute boundary of the hour follows
    first = int(START) - 30 + 300
    assert times == list(range(first, first + 3600 + 1, 300))[: len(times)]
    assert len(times) == 12
    assert {job.task for job in all_jobs(store)} == {next(iter(apps[0].tasks))}
    return by_instance


def test_three_schedulers_on_one_memory_store_enqueue_each_fire_time_once() -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    apps = [make_app(store, clock) for _ in range(3)]
    by_instance = _step_three_instances(apps, clock, store)
    # the first leader renews its lease at every pass and keeps it all along
    assert sorted(by_instance.values()) == [0, 0, 12]


def test_leadership_moving_between_instances_still_enqueues_each_fire_time_once() -> None:
    """With a 2 s lease and 10 s between passes, the lease has always expired, so the
    instance making the pass (chosen at random) takes over every time."""
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    schedulers = [Scheduler(make_app(store, clock), leader_ttl=2.0) for _ in range(3)]
    rng = random.Random(7)
    by_instance = {s.holder: 0 for s in schedulers}
    for _ in range(360):
        scheduler = rng.choice(schedulers)
        by_instance[scheduler.holder] += len(scheduler.run_once(clock.now()))
        assert scheduler.is_leader
        clock.advance(10)
    first = int(START) - 30 + 300
    assert fire_times(store) == list(range(first, first + 12 * 300, 300))
    assert all(count for count in by_instance.values()), by_instance


def test_three_schedulers_on_one_sqlite_file_enqueue_each_fire_time_once(
    tmp_path: Path,
) -> None:
    clock = FakeClock(START)
    dsn = f"sqlite:///{tmp_path / 'jobs.db'}"
    apps = [make_app(dsn, clock) for _ in range(3)]
    try:
        _step_three_instances(apps, clock, apps[0].store)
    finally:
        for app in apps:
            app.close()


def test_a_duplicate_enqueue_is_not_reported_as_created() -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    first, second = Scheduler(make_app(store, clock)), Scheduler(make_app(store, clock))
    assert first.run_once(clock.now()) == []  # a new schedule does not catch up
    clock.advance(300)
    assert len(first.run_once(clock.now())) == 1
    # a second leader overlapping before the run was recorded: the store's unique key
    # turns its enqueue of the same fire time into a duplicate
    entry = second.app.schedules["tick"]
    assert second._run_entry(entry, None, clock.now()) == []
    assert len(all_jobs(store)) == 1
    job = all_jobs(store)[0]
    assert job.unique_key == unique_key("tick", START - 30 + 300)
    assert first.app.decode_payload(job).args == [1]


def test_a_standby_takes_over_from_the_recorded_last_run_not_its_lookback() -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    first = Scheduler(make_app(store, clock, "all"), leader_ttl=5.0)
    second = Scheduler(make_app(store, clock, "all"), leader_ttl=5.0)
    first.run_once(clock.now())
    clock.advance(600)
    assert len(first.run_once(clock.now())) == 2
    assert second.run_once(clock.now()) == []
    assert not second.is_leader
    clock.advance(900)  # the leader died: its lease lapses, three fire times go by
    created = second.run_once(clock.now())
    assert second.is_leader
    assert len(created) == 3
    assert len(all_jobs(store)) == 5
    state = second.registry.require("tick")
    assert state.last_fire_at == int(clock.now()) - 30
    assert state.next_fire_at == int(clock.now()) - 30 + 300


# catch-up after downtime ---------------------------------------------------------------


def _after_gap(catch_up: str, gap: float, **options: Any) -> tuple[list[int], float]:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    scheduler = Scheduler(make_app(store, clock, catch_up), **options)
    scheduler.run_once(clock.now())
    before = set(fire_times(store))
    clock.advance(gap)
    created = scheduler.run_once(clock.now())
    after = fire_times(store)
    assert len(created) == len(after) - len(before)
    return sorted(set(after) - before), clock.now()


def test_catch_up_latest_enqueues_only_the_most_recent_missed_fire_time() -> None:
    times, now = _after_gap("latest", 2 * 3600)
    assert times == [int(now) - 30]


def test_catch_up_all_enqueues_every_fire_time_within_the_lookback() -> None:
    times, now = _after_gap("all", 2 * 3600)
    # (now - 1 h, now]: 12 five-minute boundaries
    assert times == list(range(int(now) - 30 - 11 * 300, int(now) - 30 + 1, 300))


def test_catch_up_all_is_bounded_by_max_catch_up() -> None:
    times, now = _after_gap("all", 2 * 3600, max_catch_up=3)
    assert times == [int(now) - 30 - 600, int(now) - 330, int(now) - 30]


def test_catch_up_skip_drops_fire_times_older_than_the_grace() -> None:
    times, _ = _after_gap("skip", 2 * 3600)
    assert times == [int(START) - 30 + 2 * 3600]
    times, _ = _after_gap("skip", 2 * 3600 + SKIP_GRACE)
    assert times == []


def test_a_later_pass_never_reaches_back_past_what_it_handled() -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    scheduler = Scheduler(make_app(store, clock, "all"))
    scheduler.run_once(clock.now())
    clock.advance(600)
    assert len(scheduler.run_once(clock.now())) == 2
    assert scheduler.run_once(clock.now()) == []


# DST ---------------------------------------------------------------------------------


def test_a_daily_run_in_the_spring_forward_gap_fires_once() -> None:
    # Europe/Berlin skips 02:00-03:00 on 2026-03-29
    clock = FakeClock(datetime(2026, 3, 28, 12, 0, tzinfo=UTC).timestamp())
    store = MemoryStore(clock=clock)
    app = App(store, settings=AppSettings(), clock=clock)

    @app.periodic("every day at 2:30 in Europe/Berlin", name="nightly")
    def nightly() -> None:
        return None

    schedulers = [Scheduler(app), Scheduler(app)]
    for _ in range(2 * 24 * 60):
        for scheduler in schedulers:
            scheduler.run_once(clock.now())
        clock.advance(60)
    zone = app.schedules["nightly"].zone
    days = Counter(
        datetime.fromtimestamp(ts, zone).date().isoformat() for ts in fire_times(store, "nightly")
    )
    assert days == {"2026-03-29": 1, "2026-03-30": 1}


# the loop ----------------------------------------------------------------------------


def test_run_makes_a_pass_and_returns_when_stop_is_set() -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    stop = threading.Event()
    stop.set()
    scheduler = Scheduler(make_app(store, clock))
    scheduler.run(stop)
    # the pass synced the schedule to the store and then gave the leader lease up
    state = scheduler.registry.require("tick")
    assert state.source == "code" and state.next_fire_at == int(START) - 30 + 300
    assert fire_times(store) == []
    assert scheduler.lease.owner() is None


def test_the_loop_sleeps_until_the_next_fire_time_but_at_most_a_second() -> None:
    clock = FakeClock(START)
    app = make_app(MemoryStore(clock=clock), clock)
    scheduler = Scheduler(app)
    assert scheduler.next_wake(START) == 1.0
    assert scheduler.next_wake(START + 269.75) == pytest.approx(0.25)


def test_entries_list_their_fire_times_in_a_window() -> None:
    app = App("memory://")

    def odd() -> None:
        return None

    app.periodic("every 90 seconds", name="odd")(odd)
    entry: PeriodicEntry = app.schedules["odd"]
    assert entry.fire_times(0, 300) == [90.0, 180.0, 270.0]
    assert entry.next_fire(270) == 360.0
