"""The task API and bad input at the enqueue boundary (RELIABILITY.md §8)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conveyor import (
    App,
    DependencyCycle,
    FakeClock,
    IdempotencyConflict,
    InvalidOption,
    JobState,
    PayloadTooComplex,
    PayloadTooLarge,
    SerializationError,
    UnknownDependency,
    UnknownTask,
)
from conveyor.config import AppSettings
from conveyor.stores.memory import MemoryStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def app(clock: FakeClock) -> App:
    return App(MemoryStore(clock=clock), settings=AppSettings(max_payload_bytes=4096), clock=clock)


def count(app: App) -> int:
    store = app.store
    assert isinstance(store, MemoryStore)
    return len(store.all_jobs())


def test_enqueue_and_options(app: App, clock: FakeClock) -> None:
    @app.task(queue="emails", priority="high", max_attempts=5, tags=["mail"])
    def send(to: str, body: str = "") -> str:
        return to

    handle = send.enqueue("a@example.com", body="hi")
    job = app.get_job(handle.id).job
    assert (job.queue, job.priority, job.max_attempts, job.state) == (
        "emails",
        20,
        5,
        JobState.PENDING,
    )
    assert job.tags == ("mail",)
    assert app.get_job(handle.id).payload().kwargs == {"body": "hi"}

    later = send.with_options(delay=60, priority=3, queue="bulk", tags=["x"]).enqueue("b")
    job = app.get_job(later.id).job
    assert job.state is JobState.SCHEDULED and job.run_at == clock.now() + 60
    assert (job.queue, job.priority, job.tags) == ("bulk", 3, ("mail", "x"))


def test_run_at_and_negative_delay(app: App, clock: FakeClock) -> None:
    @app.task
    def t() -> None: ...

    when = datetime.fromtimestamp(clock.now(), UTC) + timedelta(hours=1)
    assert app.get_job(t.with_options(run_at=when).enqueue().id).state is JobState.SCHEDULED
    assert app.get_job(t.with_options(delay=-5).enqueue().id).state is JobState.PENDING
    with pytest.raises(InvalidOption, match="naive datetime"):
        t.with_options(run_at=datetime(2030, 1, 1)).enqueue()


def test_run_sync_records_the_job(app: App) -> None:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    @app.task
    def bad() -> None:
        raise ValueError("nope")

    assert add.run_sync(2, 3) == 5
    done = app.store.search(__import__("conveyor.stores.base", fromlist=["JobQuery"]).JobQuery())
    assert [j.state for j in done.items] == [JobState.COMPLETED]
    assert app.decode_result(done.items[0]) == 5
    with pytest.raises(ValueError, match="nope"):
        bad.run_sync()
    failed = [j for j in app.store.search(done_query()).items if j.state is JobState.FAILED]
    assert len(failed) == 1 and failed[0].errors[0].type == "ValueError"


def done_query() -> Any:
    from conveyor.stores.base import JobQuery

    return JobQuery(limit=100)


def test_async_task_runs_sync(app: App) -> None:
    @app.task
    async def mul(a: int, b: int) -> int:
        return a * b

    assert mul.run_sync(6, 7) == 42


class Thing:
    pass


@pytest.mark.parametrize(
    ("args", "kwargs", "path"),
    [
        ((1, {"items": [0, 1, 2, {1, 2}]}), {}, r"args\[1\]\.items\[3\]"),
        ((object(),), {}, r"args\[0\]"),
        ((), {"data": b"raw"}, r"kwargs\.data"),
        ((), {"f": lambda: 1}, r"kwargs\.f"),
        ((Thing(),), {}, r"args\[0\]"),
        (({1: "a"},), {}, r"args\[0\]"),
        ((math.nan,), {}, r"args\[0\]"),
        ((), {"x": [math.inf]}, r"kwargs\.x\[0\]"),
        ((datetime(2030, 1, 1),), {}, r"args\[0\].*naive"),
        (("a\x00b",), {}, r"args\[0\]"),
        (("\ud800",), {}, r"args\[0\]"),
        ((2**64,), {}, r"args\[0\]"),
    ],
)
def test_unserializable_arguments_are_refused_with_their_path(
    app: App, args: tuple[Any, ...], kwargs: dict[str, Any], path: str
) -> None:
    @app.task
    def anything(*a: Any, **k: Any) -> None: ...

    with pytest.raises(SerializationError, match=path):
        anything.enqueue(*args, **kwargs)
    assert count(app) == 0


def test_big_integers_round_trip(app: App) -> None:
    @app.task
    def echo(*a: Any) -> None: ...

    values = [2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1]
    handle = echo.enqueue(*values)
    assert app.get_job(handle.id).payload().args == values


def test_size_and_depth_limits(app: App) -> None:
    @app.task
    def blob(data: Any) -> None: ...

    with pytest.raises(PayloadTooLarge, match="above the limit of 4096 bytes"):
        blob.enqueue("x" * 5000)
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(PayloadTooComplex):
        blob.enqueue(deep)
    assert count(app) == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": -1000}, "priority"),
        ({"priority": True}, "priority"),
        ({"priority": 1.5}, "priority"),
        ({"priority": "1"}, "priority"),
        ({"queue": "../../etc/passwd"}, "queue"),
        ({"queue": ""}, "queue"),
        ({"queue": "a" * 65}, "queue"),
        ({"queue": "qu\u0435ue"}, "queue"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 10**9}, "max_attempts"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"delay": math.nan}, "delay"),
        ({"tags": ["ok", "bad tag"]}, r"tags\[1\]"),
        ({"tags": [f"t{i}" for i in range(40)]}, "at most 32"),
        ({"tags": "single"}, "tags"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "k" * 256}, "idempotency_key"),
        ({"unique_for": -1}, "unique_for"),
        ({"depends_on": "abc"}, "depends_on"),
        ({"prioirty": 3}, "did you mean 'priority'"),
    ],
)
def test_invalid_options_are_refused(app: App, options: dict[str, Any], message: str) -> None:
    @app.task
    def t() -> None: ...

    with pytest.raises(InvalidOption, match=message):
        t.with_options(**options).enqueue()
    assert count(app) == 0


def test_arguments_must_fit_the_signature(app: App) -> None:
    @app.task
    def two(a: int, b: int) -> int:
        return a + b

    with pytest.raises(InvalidOption, match="missing a required argument"):
        two.enqueue(1)
    with pytest.raises(InvalidOption, match="unexpected keyword"):
        two.enqueue(1, 2, c=3)
    assert count(app) == 0


def test_unknown_task_and_dependency_errors(app: App) -> None:
    @app.task
    def t(x: int = 0) -> int:
        return x

    with pytest.raises(UnknownTask, match="no task named 'nope'"):
        app.enqueue("nope")
    with pytest.raises(UnknownDependency):
        t.with_options(depends_on=["0190aaaa-0000-7000-8000-000000000000"]).enqueue()
    assert count(app) == 0


def test_cycle_in_one_batch_stores_nothing(app: App) -> None:
    @app.task
    def t() -> None: ...

    a = app.build_job(t, (), {}, t.job_options)
    b = app.build_job(t, (), {}, t.job_options.merged(depends_on=[a.id]))
    a_cyclic = app.build_job(t, (), {}, t.job_options)
    a_cyclic = type(a_cyclic)(**{**_fields(a), "depends_on": (b.id,)})
    with pytest.raises(DependencyCycle):
        app.submit([a_cyclic, b])
    assert count(app) == 0


def _fields(job: Any) -> dict[str, Any]:
    return {name: getattr(job, name) for name in job.__dataclass_fields__}


def test_unique_and_idempotency_keys(app: App) -> None:
    @app.task
    def t(x: int) -> int:
        return x

    first = t.with_options(unique_key="nightly").enqueue(1)
    again = t.with_options(unique_key="nightly").enqueue(2)
    assert again.duplicate and again.id == first.id

    one = t.with_options(idempotency_key="order-42").enqueue(5)
    same = t.with_options(idempotency_key="order-42").enqueue(5)
    assert same.duplicate and same.id == one.id
    with pytest.raises(IdempotencyConflict, match="order-42"):
        t.with_options(idempotency_key="order-42").enqueue(6)
    assert count(app) == 2


def test_chain_links_jobs_by_dependency(app: App) -> None:
    @app.task
    def add(a: int, b: int = 0) -> int:
        return a + b

    handle = app.chain(add.s(1, 2), add.s(10), add.s(100)).enqueue()
    jobs = [app.get_job(i).job for i in handle.ids]
    assert [j.state for j in jobs] == [JobState.PENDING, JobState.BLOCKED, JobState.BLOCKED]
    assert jobs[1].depends_on == (jobs[0].id,) and jobs[2].depends_on == (jobs[1].id,)
    assert app.get_job(jobs[2].id).payload().piped_from == jobs[1].id

    @app.task
    def pair(a: int, b: int) -> int:
        return a * b

    app.chain(add.s(1, 2), add.s()).enqueue()  # the piped result fills ``a``
    with pytest.raises(InvalidOption, match="missing a required argument"):
        app.chain(add.s(1, 2), pair.s()).enqueue()


def test_duplicate_task_name_is_refused(app: App) -> None:
    @app.task(name="same")
    def one() -> None: ...

    with pytest.raises(InvalidOption, match="already registered"):

        @app.task(name="same")
        def two() -> None: ...


def test_a_dsn_passed_beside_explicit_settings_is_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Explicit settings are used as given, and the DSN given with them names the store
    (it once fell back to settings.store, the default ./conveyor.db)."""
    monkeypatch.chdir(tmp_path)
    app = App(f"sqlite:///{tmp_path / 'jobs.db'}", settings=AppSettings())
    assert app.settings.store.endswith("jobs.db")
    app.store.info()
    app.close()
    assert (tmp_path / "jobs.db").exists()
    assert not (tmp_path / "conveyor.db").exists()
