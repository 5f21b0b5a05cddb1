"""How ``task.enqueue_many`` reads its items: positional tuples and (args, kwargs) pairs,
and the one ambiguous case, pinned."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import App, InvalidOption
from conveyor.bulk import split_call
from conveyor.config import AppSettings
from conveyor.stores.memory import MemoryStore


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ((1, 2), ((1, 2), {})),
        ([1, 2], ([1, 2], {})),
        ((), ((), {})),
        (((1,), {"b": 2}), ((1,), {"b": 2})),
        (([1], {"b": 2}), ([1], {"b": 2})),  # a pair, though it could be two arguments
        ((([1], {"b": 2}), {}), (([1], {"b": 2}), {})),  # the spelling of two arguments
        ([(1,), {"b": 2}], ([(1,), {"b": 2}], {})),  # a list is never a pair
        (((1,), {"b": 2}, 3), (((1,), {"b": 2}, 3), {})),  # three items: positional
        (((1,), 2), (((1,), 2), {})),  # second item not a dict: positional
        (({"b": 2}, {"c": 3}), (({"b": 2}, {"c": 3}), {})),  # first not a sequence
    ],
)
def test_split_call(item: object, expected: tuple[Any, dict[str, Any]]) -> None:
    assert split_call(item, 0) == expected


@pytest.mark.parametrize("item", [1, "ab", {"a": 1}, None])
def test_items_that_are_not_calls_are_refused(item: object) -> None:
    with pytest.raises(InvalidOption, match=r"calls\[3\]: expected a tuple of positional"):
        split_call(item, 3)


def test_a_task_taking_a_list_and_a_dict_spells_its_items_as_pairs() -> None:
    app = App(MemoryStore(), settings=AppSettings())

    @app.task
    def merge(items: list[int], extra: dict[str, int]) -> None: ...

    with pytest.raises(InvalidOption, match="unexpected keyword argument 'b'"):
        merge.enqueue_many([([1], {"b": 2})])  # read as merge(1, b=2)
    (handle,) = merge.enqueue_many([(([1], {"b": 2}), {})])
    assert handle.get().payload().args == [[1], {"b": 2}]


def test_a_string_or_dict_instead_of_a_list_of_calls_is_refused() -> None:
    app = App(MemoryStore(), settings=AppSettings())

    @app.task
    def one(a: str) -> None: ...

    with pytest.raises(InvalidOption, match="list of calls"):
        one.enqueue_many("abc")
    with pytest.raises(InvalidOption, match="list of signatures"):
        app.enqueue_many(one.s("a"))  # type: ignore[arg-type]


def test_calls_may_come_from_a_generator() -> None:
    app = App(MemoryStore(), settings=AppSettings())

    @app.task
    def square(n: int) -> int:
        return n * n

    handles = square.enqueue_many((n,) for n in range(5))
    assert [h.get().payload().args for h in handles] == [[n] for n in range(5)]
    signatures = app.enqueue_many(square.s(n) for n in range(3))
    assert len(signatures) == 3


@pytest.mark.parametrize("given", [None, 5, 2.5])
def test_something_that_is_not_a_list_at_all_is_refused_clearly(given: object) -> None:
    app = App(MemoryStore(), settings=AppSettings())

    @app.task
    def one(a: int) -> None: ...

    # before the fix: TypeError "'NoneType' object is not iterable" from deep inside
    with pytest.raises(InvalidOption, match="list of calls"):
        one.enqueue_many(given)  # type: ignore[arg-type]
    with pytest.raises(InvalidOption, match="list of signatures"):
        app.enqueue_many(given)  # type: ignore[arg-type]
