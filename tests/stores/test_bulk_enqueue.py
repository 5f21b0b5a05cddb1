"""Bulk enqueue through the public API on every driver: ``task.enqueue_many`` and
``app.enqueue_many`` store a batch atomically and return handles in order."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import App, InvalidOption, JobState, SerializationError, UnknownDependency
from conveyor.clock import FakeClock
from conveyor.config import AppSettings
from conveyor.stores.base import JobQuery, Store
from conveyor.task import Task


def stored(store: Store) -> int:
    return store.search(JobQuery(limit=1)).total


@pytest.fixture
def app(store: Store, clock: FakeClock) -> App:
    return App(store, settings=AppSettings(), clock=clock)


@pytest.fixture
def add(app: App) -> Task[Any, int]:
    @app.task
    def add(a: int, b: int = 0) -> int:
        return a + b

    return add


def test_task_enqueue_many_returns_handles_in_order(app: App, add: Task[Any, int]) -> None:
    handles = add.enqueue_many([(1, 2), (3, 4), [5], ((6,), {"b": 7}), ((), {"a": 8})])
    assert len(handles) == 5 and len({h.id for h in handles}) == 5
    payloads = [(p.args, p.kwargs) for p in (h.get().payload() for h in handles)]
    assert payloads == [
        ([1, 2], {}),
        ([3, 4], {}),
        ([5], {}),
        ([6], {"b": 7}),
        ([], {"a": 8}),
    ]
    assert all(h.get().job.task == add.name for h in handles)
    assert stored(app.store) == 5


def test_task_enqueue_many_keeps_bound_options(app: App, add: Task[Any, int]) -> None:
    handles = add.with_options(queue="bulk", priority=7, tags=["batch"]).enqueue_many([(1,), (2,)])
    for handle in handles:
        job = handle.get().job
        assert (job.queue, job.priority, job.tags) == ("bulk", 7, ("batch",))


def test_app_enqueue_many_takes_signatures_with_their_options(
    app: App, add: Task[Any, int]
) -> None:
    @app.task
    def mul(a: int, b: int) -> int:
        return a * b

    handles = app.enqueue_many([add.s(1, 2), mul.s(3, b=4).with_options(queue="math", delay=60)])
    first, second = (h.get().job for h in handles)
    assert (first.task, first.queue, first.state) == (add.name, "default", JobState.PENDING)
    assert (second.task, second.queue, second.state) == (mul.name, "math", JobState.SCHEDULED)
    assert handles[1].get().payload().kwargs == {"b": 4}


def test_a_bad_item_refuses_the_whole_batch(app: App, add: Task[Any, int]) -> None:
    with pytest.raises(SerializationError, match=r"args\[0\]") as info:
        add.enqueue_many([(1, 2), (3, 4), ({1, 2},)])
    assert "calls[2]" in " ".join(getattr(info.value, "__notes__", []))
    with pytest.raises(InvalidOption, match="too many positional"):
        add.enqueue_many([(1, 2), (1, 2, 3)])
    with pytest.raises(InvalidOption, match=r"signatures\[1\]"):
        app.enqueue_many([add.s(1), "add(2)"])  # type: ignore[list-item]
    assert stored(app.store) == 0


def test_a_store_refusal_stores_nothing(app: App, add: Task[Any, int]) -> None:
    missing = "0190c3b4-0000-7000-8000-000000000000"
    with pytest.raises(UnknownDependency):
        app.enqueue_many([add.s(1), add.s(2).with_options(depends_on=[missing])])
    assert stored(app.store) == 0


def test_duplicates_come_back_as_duplicates_in_order(app: App, add: Task[Any, int]) -> None:
    first = add.with_options(unique_key="only").enqueue(1)
    handles = app.enqueue_many([add.s(2), add.s(3).with_options(unique_key="only")])
    assert [h.duplicate for h in handles] == [False, True]
    assert handles[1].id == first.id


def test_empty_batch_stores_nothing(app: App, add: Task[Any, int]) -> None:
    assert add.enqueue_many([]) == []
    assert app.enqueue_many([]) == []
    assert stored(app.store) == 0
