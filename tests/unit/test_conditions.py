"""Conditions: each one's run / defer / skip, exact time-window delays, specs and validation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tests.stores.support import claim_one, error_for

from conveyor import App, FakeClock
from conveyor.conditions import (
    CONDITION_KINDS,
    Condition,
    ConditionContext,
    Decision,
    FreeMemory,
    JobStateIs,
    Predicate,
    QueueDepth,
    SystemLoad,
    TimeWindow,
    check_conditions,
    condition_from_spec,
    evaluate,
)
from conveyor.config import AppSettings
from conveyor.coordination.limits import JobArguments
from conveyor.errors import InvalidOption
from conveyor.job import Job
from conveyor.stores.base import Completion
from conveyor.stores.memory import MemoryStore

PARIS = ZoneInfo("Europe/Paris")
HOUR = 3600.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def app(clock: FakeClock) -> App:
    return App(MemoryStore(clock=clock), settings=AppSettings(), clock=clock)


def work(n: int = 0) -> None:
    return None


def some_job(app: App, queue: str = "default") -> Job:
    task = app.tasks.get("tests.work") or app.task(name="tests.work")(work)
    handle = task.with_options(queue=queue).enqueue()
    job = app.store.get(handle.id)
    assert job is not None
    return job


def context(app: App, job: Job, now: float | None = None) -> ConditionContext:
    return ConditionContext(
        job,
        app.store,
        app.clock.now() if now is None else now,
        lambda: JobArguments([], {}, {}),
        app.predicates,
    )


def at(text: str, zone: ZoneInfo = PARIS) -> float:
    """Epoch seconds of a wall time in ``zone`` (``2026-01-05 08:30``)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def check_at(app: App, condition: Condition, when: float) -> Decision | None:
    return condition.check(context(app, some_job(app), now=when))


# time windows ---------------------------------------------------------------------------

OFFICE = TimeWindow("09:00", "17:00", tz="Europe/Paris")


@pytest.mark.parametrize("wall", ["2026-01-05 09:00", "2026-01-05 12:30", "2026-01-05 16:59"])
def test_time_window_runs_inside(app: App, wall: str) -> None:
    assert check_at(app, OFFICE, at(wall)) is None


@pytest.mark.parametrize(
    ("wall", "hours_to_open"),
    [
        ("2026-01-05 08:30", 0.5),  # Monday morning: opens at 09:00 today
        ("2026-01-05 17:00", 16.0),  # end is exclusive: opens at 09:00 tomorrow
        ("2026-01-05 23:15", 9.75),
        ("2026-01-06 00:00", 9.0),
    ],
)
def test_time_window_defers_until_exactly_the_next_opening(
    app: App, wall: str, hours_to_open: float
) -> None:
    decision = check_at(app, OFFICE, at(wall))
    assert decision is not None and decision.action == "defer"
    assert decision.condition == "time_window"
    assert decision.delay == pytest.approx(hours_to_open * HOUR)
    assert "09:00-17:00" in decision.reason and "Europe/Paris" in decision.reason
    assert OFFICE.next_open(at(wall)) == pytest.approx(at(wall) + hours_to_open * HOUR)


def test_time_window_is_judged_in_its_zone_not_utc(app: App) -> None:
    window = TimeWindow("09:00", "10:00", tz="America/New_York")
    nine_thirty_new_york = at("2026-01-05 09:30", ZoneInfo("America/New_York"))
    assert check_at(app, window, nine_thirty_new_york) is None
    nine_thirty_utc = at("2026-01-05 09:30", ZoneInfo("UTC"))  # 04:30 in New York
    decision = check_at(app, window, nine_thirty_utc)
    assert decision is not None and decision.delay == pytest.approx(4.5 * HOUR)


def test_time_window_days(app: App) -> None:
    early_week = TimeWindow("09:00", "17:00", tz="Europe/Paris", days=("Mon", "tuesday"))
    assert early_week.days == ("mon", "tue")
    assert check_at(app, early_week, at("2026-01-06 10:00")) is None  # Tuesday
    decision = check_at(app, early_week, at("2026-01-07 10:00"))  # Wednesday
    assert decision is not None
    # next opening: Monday 2026-01-12 09:00 (4 days 23 hours later)
    assert decision.delay == pytest.approx(4 * 24 * HOUR + 23 * HOUR)


def test_time_window_spanning_midnight(app: App) -> None:
    night = TimeWindow("22:00", "06:00", tz="Europe/Paris", days=("fri",))
    assert check_at(app, night, at("2026-01-09 23:00")) is None  # Friday night
    assert check_at(app, night, at("2026-01-10 03:00")) is None  # its part after midnight
    for wall, hours in [
        ("2026-01-09 21:00", 1.0),  # Friday evening, before it opens
        ("2026-01-10 06:00", 6 * 24 + 16.0),  # Saturday 06:00: closed until next Friday 22:00
        ("2026-01-10 22:30", 6 * 24 - 0.5),  # Saturday night is not in the window
        ("2026-01-09 03:00", 19.0),  # Friday 03:00 belongs to Thursday's night (not listed)
    ]:
        decision = check_at(app, night, at(wall))
        assert decision is not None and decision.action == "defer", wall
        assert decision.delay == pytest.approx(hours * HOUR), wall


def test_time_window_every_night_spanning_midnight(app: App) -> None:
    night = TimeWindow("22:00", "06:00", tz="UTC")
    assert check_at(app, night, at("2026-01-05 05:59", ZoneInfo("UTC"))) is None
    decision = check_at(app, night, at("2026-01-05 06:00", ZoneInfo("UTC")))
    assert decision is not None and decision.delay == pytest.approx(16 * HOUR)


def test_time_window_across_daylight_saving_changes(app: App) -> None:
    # Paris goes from UTC+1 to UTC+2 in the night of 2026-03-28 to 29: the night is an hour short
    decision = check_at(app, OFFICE, at("2026-03-28 18:00"))
    assert decision is not None and decision.delay == pytest.approx(14 * HOUR)
    assert datetime.fromtimestamp(at("2026-03-28 18:00") + 14 * HOUR, PARIS).hour == 9
    # and back to UTC+1 in the night of 2026-10-24 to 25: an hour long
    decision = check_at(app, OFFICE, at("2026-10-24 18:00"))
    assert decision is not None and decision.delay == pytest.approx(16 * HOUR)


def test_time_window_otherwise_skip(app: App) -> None:
    window = TimeWindow("09:00", "17:00", tz="Europe/Paris", otherwise="skip")
    decision = check_at(app, window, at("2026-01-05 18:00"))
    assert decision is not None and decision.action == "skip" and decision.delay is None


def test_time_window_may_end_at_midnight_and_includes_the_last_minute(app: App) -> None:
    evening = TimeWindow("18:00", "24:00", tz="Europe/Paris")
    assert check_at(app, evening, at("2026-01-05 23:59")) is None
    decision = check_at(app, evening, at("2026-01-06 00:00"))
    assert decision is not None and decision.delay == 18 * 3600.0
    assert check_at(app, TimeWindow(tz="Europe/Paris"), at("2026-01-05 23:59")) is None
    with pytest.raises(InvalidOption) as caught:
        TimeWindow("24:00", "06:00")
    assert caught.value.option == "start"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": "9:00", "end": "25:00"}, "end"),
        ({"start": "9h", "end": "17:00"}, "start"),
        ({"start": "09:60", "end": "17:00"}, "start"),
        ({"start": "10:00", "end": "10:00"}, "end"),
        ({"tz": "Mars/Olympus"}, "time zone"),
        ({"days": ()}, "days"),
        ({"days": ("mon", "someday")}, "days"),
        ({"days": "mon"}, "days"),
        ({"otherwise": "fail"}, "otherwise"),
        ({"delay": 0}, "delay"),
        ({"delay": float("nan")}, "delay"),
    ],
)
def test_time_window_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        TimeWindow(**kwargs)
    assert caught.value.option == field


# queue depth ----------------------------------------------------------------------------


def test_queue_depth_max_and_min(app: App) -> None:
    job = some_job(app, queue="reports")  # this job is pending too until claimed
    for _ in range(2):
        some_job(app, queue="reports")
    some_job(app, queue="elsewhere")
    ctx = context(app, job)
    assert QueueDepth(max=3).check(ctx) is None
    over = QueueDepth(max=2, delay=12).check(ctx)
    assert over is not None and over.action == "defer" and over.delay == 12.0
    assert "3 pending" in over.reason and "max 2" in over.reason
    assert QueueDepth(min=3).check(ctx) is None
    under = QueueDepth(min=4, otherwise="skip").check(ctx)
    assert under is not None and under.action == "skip" and "min 4" in under.reason
    other = QueueDepth(max=0, queue="elsewhere").check(ctx)
    assert other is not None and "'elsewhere'" in other.reason
    assert QueueDepth(max=0, queue="empty").check(ctx) is None
    assert QueueDepth(min=1, max=3).check(ctx) is None


def test_queue_depth_counts_only_pending_jobs(app: App, clock: FakeClock) -> None:
    job = some_job(app, queue="reports")
    claim_one(app.store, job.id, queue="reports")
    assert QueueDepth(max=0, queue="reports").check(context(app, job)) is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({}, "max"), ({"max": -1}, "max"), ({"min": "3"}, "min"), ({"max": 1, "delay": -5}, "delay")],
)
def test_queue_depth_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        QueueDepth(**kwargs)
    assert caught.value.option == field


# machine --------------------------------------------------------------------------------


def test_system_load(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context(app, some_job(app))
    monkeypatch.setattr("conveyor.conditions.load_per_cpu", lambda: 0.75)
    assert SystemLoad(max_per_cpu=0.8).check(ctx) is None
    assert SystemLoad(max_per_cpu=0.75).check(ctx) is None
    monkeypatch.setattr("conveyor.conditions.load_per_cpu", lambda: 1.5)
    decision = SystemLoad(max_per_cpu=0.8, delay=7).check(ctx)
    assert decision == Decision("defer", "load 1.50 per CPU is above 0.8", "system_load", 7.0)
    skip = SystemLoad(max_per_cpu=0.8, otherwise="skip").check(ctx)
    assert skip is not None and skip.action == "skip"


def test_free_memory(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context(app, some_job(app))
    monkeypatch.setattr("conveyor.conditions.available_memory", lambda: 512 << 20)
    assert FreeMemory(min_mb=512).check(ctx) is None
    decision = FreeMemory(min_mb=513).check(ctx)
    assert decision == Decision("defer", "512 MiB available, below 513 MiB", "free_memory", 30.0)


def test_machine_readings_are_sane() -> None:
    from conveyor.conditions import available_memory, load_per_cpu

    assert load_per_cpu() >= 0.0
    assert available_memory() > 0


# other jobs -----------------------------------------------------------------------------


def test_job_state_is(app: App, clock: FakeClock) -> None:
    waiter = some_job(app, queue="waiters")
    other = some_job(app)
    ctx = context(app, waiter)
    condition = JobStateIs(other.id)
    pending = condition.check(ctx)
    assert pending is not None and pending.action == "defer" and pending.delay == 10.0
    assert f"job {other.id} is pending, not completed" == pending.reason
    lease = claim_one(app.store, other.id)
    processing = condition.check(ctx)
    assert processing is not None and processing.action == "defer"
    app.store.complete([Completion(lease, None)])
    assert condition.check(ctx) is None


def test_job_state_is_skips_when_the_other_ended_otherwise(app: App, clock: FakeClock) -> None:
    waiter = some_job(app, queue="waiters")
    other = some_job(app)
    lease = claim_one(app.store, other.id)
    app.store.fail(lease, error_for(lease, clock), retry_at=None)
    decision = JobStateIs(other.id).check(context(app, waiter))
    assert decision is not None and decision.action == "skip"
    assert "ended failed, not completed" in decision.reason
    assert JobStateIs(other.id, states=("failed", "cancelled")).check(context(app, waiter)) is None


def test_job_state_is_waits_for_any_listed_state(app: App) -> None:
    waiter = some_job(app, queue="waiters")
    other = some_job(app)
    app.store.cancel([other.id])
    one_state = JobStateIs(other.id, states="cancelled")  # type: ignore[arg-type]
    assert one_state.states == ("cancelled",)
    assert one_state.check(context(app, waiter)) is None
    decision = JobStateIs(other.id, states=("completed", "failed")).check(context(app, waiter))
    assert decision is not None and decision.action == "skip"


def test_job_state_is_skips_a_missing_job(app: App) -> None:
    decision = JobStateIs("no-such-job").check(context(app, some_job(app)))
    assert decision == Decision("skip", "job no-such-job does not exist", "job_state")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "job_id"),
        ({"job_id": 5}, "job_id"),
        ({"job_id": "x", "states": ()}, "states"),
        ({"job_id": "x", "states": ("done",)}, "states"),
        ({"job_id": "x", "otherwise": "later"}, "otherwise"),
    ],
)
def test_job_state_is_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        JobStateIs(**kwargs)
    assert caught.value.option == field


# predicates -----------------------------------------------------------------------------


def test_predicate_returning_a_bool(app: App) -> None:
    allowed = {"value": True}
    seen: list[ConditionContext] = []

    @app.condition("business_open")
    def business_open(ctx: ConditionContext) -> bool:
        seen.append(ctx)
        return allowed["value"]

    ctx = context(app, some_job(app))
    assert Predicate("business_open").check(ctx) is None
    assert seen == [ctx]
    allowed["value"] = False
    skipped = Predicate("business_open").check(ctx)
    assert skipped == Decision("skip", "business_open returned False", "predicate")
    deferred = Predicate("business_open", otherwise="defer", delay=3).check(ctx)
    assert deferred == Decision("defer", "business_open returned False", "predicate", 3.0)


def test_predicate_named_after_the_function_returning_decisions(app: App) -> None:
    verdicts: list[object] = [
        Decision("run", "fine"),
        Decision("defer", "busy", "mine", 42.0),
        Decision("skip", "never", "mine"),
        Decision("defer", "later"),
        0,
        "yes",
    ]

    @app.condition()
    def gatekeeper(ctx: ConditionContext) -> object:
        return verdicts.pop(0)

    ctx = context(app, some_job(app))
    condition = Predicate("gatekeeper")
    assert condition.check(ctx) is None
    assert condition.check(ctx) == Decision("defer", "busy", "mine", 42.0)
    assert condition.check(ctx) == Decision("skip", "never", "mine")
    # a decision without source or delay gets the predicate's (not a 1 s poll)
    assert condition.check(ctx) == Decision("defer", "later", "predicate", 30.0)
    falsy = condition.check(ctx)
    assert falsy is not None and falsy.action == "skip"
    assert condition.check(ctx) is None


def test_predicate_not_registered_objects(app: App) -> None:
    decision = Predicate("ghost", otherwise="defer").check(context(app, some_job(app)))
    assert decision is not None and decision.action == "defer"
    assert "no condition registered as 'ghost'" in decision.reason


def test_predicate_sees_the_job_and_its_arguments(app: App) -> None:
    @app.condition("small")
    def small(ctx: ConditionContext) -> bool:
        return bool(ctx.arguments().named["n"] < 10 and ctx.job.queue == "default")

    job = some_job(app)
    for n, runs in ((3, True), (30, False)):
        bound = JobArguments([n], {}, {"n": n})
        ctx = ConditionContext(job, app.store, 0.0, partial(lambda b: b, bound), app.predicates)
        assert (Predicate("small").check(ctx) is None) is runs


def test_condition_names_are_unique_per_app(app: App) -> None:
    @app.condition("taken")
    def first(ctx: ConditionContext) -> bool:
        return True

    with pytest.raises(InvalidOption) as caught:

        @app.condition("taken")
        def second(ctx: ConditionContext) -> bool:
            return True

    assert caught.value.option == "name"
    assert app.condition("taken")(first) is first  # registering the same function is fine


def test_predicate_validation() -> None:
    with pytest.raises(InvalidOption) as caught:
        Predicate("")
    assert caught.value.option == "name"
    with pytest.raises(InvalidOption):
        Predicate("x", otherwise="run")  # type: ignore[arg-type]


# evaluation and specs -------------------------------------------------------------------


def test_evaluate_returns_the_first_objection(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("conveyor.conditions.load_per_cpu", lambda: 9.0)
    ctx = context(app, some_job(app))
    checked: list[str] = []

    @app.condition("note")
    def note(ctx: ConditionContext) -> bool:
        checked.append("note")
        return True

    assert evaluate([Predicate("note"), QueueDepth(max=5)], ctx) is None
    decision = evaluate([SystemLoad(max_per_cpu=1), Predicate("note")], ctx)
    assert decision is not None and decision.condition == "system_load"
    assert checked == ["note"]  # the predicate after the objection was not called
    assert evaluate([], ctx) is None


SPECS: list[Condition] = [
    QueueDepth(max=5, min=1, queue="reports", otherwise="skip", delay=12),
    TimeWindow("22:00", "06:00", tz="Europe/Paris", days=("fri", "sat"), delay=5),
    SystemLoad(max_per_cpu=0.5),
    FreeMemory(min_mb=1024, otherwise="skip"),
    JobStateIs("job-1", states=("completed", "cancelled"), delay=2.5),
    Predicate("business_open", otherwise="defer"),
]


@pytest.mark.parametrize("condition", SPECS, ids=lambda c: c.kind)
def test_spec_round_trip(condition: Condition) -> None:
    import orjson

    spec = condition.to_spec()
    assert spec["kind"] == condition.kind
    stored = orjson.loads(orjson.dumps(spec))  # as it comes back from a job's payload
    rebuilt = condition_from_spec(stored)
    assert rebuilt == condition and type(rebuilt) is type(condition)


def test_every_kind_has_a_round_trip_case() -> None:
    assert {c.kind for c in SPECS} == set(CONDITION_KINDS)


@pytest.mark.parametrize(
    "spec",
    [None, [], "time_window", {}, {"kind": "moon_phase"}, {"kind": 3}],
)
def test_condition_from_spec_refuses_unknown(spec: object) -> None:
    with pytest.raises(InvalidOption) as caught:
        condition_from_spec(spec)
    assert caught.value.option == "conditions"


def test_condition_from_spec_validates_fields_and_ignores_unknown_ones() -> None:
    with pytest.raises(InvalidOption) as caught:
        condition_from_spec({"kind": "queue_depth", "max": -3})
    assert caught.value.option == "max"
    rebuilt = condition_from_spec({"kind": "system_load", "max_per_cpu": 2, "later": True})
    assert rebuilt == SystemLoad(max_per_cpu=2)


def test_check_conditions() -> None:
    single = SystemLoad()
    assert check_conditions(single) == (single,)
    assert check_conditions([single, FreeMemory()]) == (single, FreeMemory())
    bad: list[Callable[[], object]] = [
        lambda: check_conditions("time_window"),
        lambda: check_conditions([{"kind": "system_load"}]),
        lambda: check_conditions(5),
    ]
    for call in bad:
        with pytest.raises(InvalidOption) as caught:
            call()
        assert caught.value.option == "conditions"


def test_task_and_job_options_validate_conditions(app: App) -> None:
    with pytest.raises(InvalidOption):

        @app.task(conditions=["not a condition"])  # type: ignore[list-item]
        def bad() -> None:
            return None

    @app.task(name="tests.ok", conditions=[SystemLoad()])
    def ok() -> None:
        return None

    assert ok.options.conditions == (SystemLoad(),)
    with pytest.raises(InvalidOption):
        ok.with_options(conditions=[object()])


def test_utc_helper_is_consistent() -> None:
    assert at("2026-01-05 00:00", ZoneInfo("UTC")) == datetime(2026, 1, 5, tzinfo=UTC).timestamp()
