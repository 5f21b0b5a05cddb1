"""Schedules kept in the store: app.schedule, pause/resume, run state, and the scheduler
running them next to code-defined ones."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from conveyor import App, FakeClock, InvalidOption
from conveyor.config import AppSettings
from conveyor.errors import InvalidJob, UnknownTask
from conveyor.scheduler.registry import (
    NAMESPACE,
    ScheduleExists,
    ScheduleNotFound,
    ScheduleRegistry,
    StoredSchedule,
)
from conveyor.scheduler.service import Scheduler
from conveyor.stores.base import JobQuery
from conveyor.stores.memory import MemoryStore

START = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC).timestamp()
"""30 s past a 5-minute boundary."""


def make_app(clock: FakeClock, store: MemoryStore | None = None) -> App:
    app = App(store or MemoryStore(clock=clock), settings=AppSettings(), clock=clock)

    @app.task(name="t.ping")
    def ping(target: str, times: int = 1) -> str:
        return target * times

    return app


def enqueued(app: App) -> list[tuple[str | None, list[object]]]:
    jobs = app.store.search(JobQuery(limit=1000, newest_first=False)).items
    return [(job.unique_key, app.decode_payload(job).args) for job in jobs]


def test_app_schedule_is_stored_checked_and_run_by_the_scheduler() -> None:
    clock = FakeClock(START)
    app = make_app(clock)
    stored = app.schedule(
        "t.ping", "every 5 minutes", name="pinger", args=["a"], kwargs={"times": 2}
    )
    assert stored.source == "store" and stored.tz == "UTC" and stored.created_at == START
    scheduler = Scheduler(app)
    assert scheduler.run_once(clock.now()) == []  # created after the last boundary
    clock.advance(270)
    assert len(scheduler.run_once(clock.now())) == 1
    first = int(START) - 30 + 300
    assert enqueued(app) == [(f"periodic:pinger:{first}", ["a"])]
    state = scheduler.registry.require("pinger")
    assert state.last_fire_at == first and state.next_fire_at == first + 300
    assert state.last_job_id is not None


def test_app_schedule_refuses_bad_input_and_stores_nothing() -> None:
    app = make_app(FakeClock(START))
    with pytest.raises(InvalidOption, match="missing a required argument"):
        app.schedule("t.ping", "every 5 minutes")
    with pytest.raises(UnknownTask, match=r"no task named 't\.nope'"):
        app.schedule("t.nope", "every 5 minutes")
    with pytest.raises(InvalidOption, match="catch_up"):
        app.schedule("t.ping", "every 5 minutes", args=["a"], catch_up="never")
    with pytest.raises(InvalidOption, match="tz"):
        app.schedule("t.ping", "every day at 9:00 in Europe/Paris", args=["a"], tz="Asia/Tokyo")
    with pytest.raises(InvalidJob, match=r"args\[0\]"):
        app.schedule("t.ping", "every 5 minutes", args=[object()])
    assert ScheduleRegistry(app.store).list() == []


def test_paused_schedules_do_not_run_and_resume_does_not_catch_up() -> None:
    clock = FakeClock(START)
    app = make_app(clock)
    app.schedule("t.ping", "every 5 minutes", name="p", args=["x"], catch_up="all")
    scheduler = Scheduler(app)
    scheduler.run_once(clock.now())
    scheduler.registry.set_paused("p", True)
    clock.advance(1800)  # six fire times go by while paused
    assert scheduler.run_once(clock.now()) == []
    scheduler.registry.set_paused("p", False)
    assert scheduler.run_once(clock.now()) == []  # the paused ones stay skipped
    clock.advance(300)
    assert len(scheduler.run_once(clock.now())) == 1
    assert len(enqueued(app)) == 1


def test_a_new_standby_catches_up_from_the_stored_last_run() -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock)
    first = make_app(clock, store)
    first.schedule("t.ping", "every 5 minutes", name="p", args=["x"], catch_up="all")
    Scheduler(first).run_once(clock.now())
    clock.advance(300)
    assert len(Scheduler(first).run_once(clock.now())) == 1
    clock.advance(1200 + 30)  # nobody ran for four fire times; leases long expired
    later = Scheduler(make_app(clock, store))
    assert len(later.run_once(clock.now())) == 4
    keys = [key for key, _ in enqueued(first)]
    assert len(keys) == len(set(keys)) == 5


def test_a_schedule_for_a_task_this_app_lacks_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(START)
    app = make_app(clock)
    ScheduleRegistry(app.store).add(
        StoredSchedule(name="foreign", task="other.task", expression="every minute")
    )
    scheduler = Scheduler(app)
    with caplog.at_level(logging.ERROR, logger="conveyor.scheduler"):
        for _ in range(3):
            assert scheduler.run_once(clock.now()) == []
            clock.advance(60)
    messages = [r.getMessage() for r in caplog.records if "foreign" in r.getMessage()]
    assert messages == [
        "schedule foreign cannot run here: task 'other.task' is not registered in this app"
    ]


def test_add_refuses_taken_names_and_replace_keeps_run_state() -> None:
    clock = FakeClock(START)
    app = make_app(clock)
    registry = ScheduleRegistry(app.store)
    app.schedule("t.ping", "every 5 minutes", name="p", args=["x"])
    with pytest.raises(ScheduleExists):
        registry.add(StoredSchedule(name="p", task="t.ping", expression="@daily"))
    registry.mark("p", last_fire_at=START - 30, last_job_id="j1", next_fire_at=START + 270)
    registry.set_paused("p", True)
    clock.advance(10)
    same = app.schedule("t.ping", "every 5 minutes", name="p", args=["y"])
    assert same.args == ["y"] and same.paused and same.last_fire_at == START - 30
    assert same.created_at == START, "same timing: the creation time stays"
    changed = app.schedule("t.ping", "every 10 minutes", name="p", args=["y"])
    assert changed.created_at == START + 10 and changed.next_fire_at is None
    assert changed.paused, "a pause survives a redefinition"


def test_mark_never_moves_the_last_run_backwards() -> None:
    clock = FakeClock(START)
    app = make_app(clock)
    registry = ScheduleRegistry(app.store)
    app.schedule("t.ping", "every 5 minutes", name="p", args=["x"])
    registry.mark("p", last_fire_at=2000.0, last_job_id="new", next_fire_at=2300.0)
    kept = registry.mark("p", last_fire_at=1000.0, last_job_id="old", next_fire_at=2300.0)
    assert (kept.last_fire_at, kept.last_job_id) == (2000.0, "new")


def test_unknown_names_and_damaged_records() -> None:
    clock = FakeClock(START)
    app = make_app(clock)
    registry = ScheduleRegistry(app.store)
    with pytest.raises(ScheduleNotFound):
        registry.set_paused("ghost", True)
    with pytest.raises(ScheduleNotFound):
        registry.remove("ghost")
    app.store.put_record(NAMESPACE, "broken", b"{not json", expect_version=None)
    app.schedule("t.ping", "@hourly", name="fine", args=["x"])
    assert [s.name for s in registry.list()] == ["fine"]
    assert Scheduler(app).run_once(clock.now()) == []  # the damaged one does not stop a pass


def test_a_one_off_schedule_fires_once_and_then_has_no_next_run() -> None:
    clock = FakeClock(START)
    app = make_app(clock)
    when = datetime.fromtimestamp(START + 600, UTC)
    app.schedule("t.ping", f"once at {when:%Y-%m-%d %H:%M}", name="launch", args=["go"])
    scheduler = Scheduler(app)
    assert scheduler.run_once(clock.now()) == []
    assert scheduler.registry.require("launch").next_fire_at == int(START) - 30 + 600
    created: list[str] = []
    for _ in range(40):  # twenty minutes in 30 s passes
        clock.advance(30)
        created += scheduler.run_once(clock.now())
    assert len(created) == 1
    assert enqueued(app) == [(f"periodic:launch:{int(START) - 30 + 600}", ["go"])]
    state = scheduler.registry.require("launch")
    assert state.last_fire_at == int(START) - 30 + 600 and state.next_fire_at is None
    assert scheduler.next_wake(clock.now()) == 1.0
