"""Argument checking at enqueue: the fast positional path agrees with inspect's bind."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from conveyor import App, InvalidOption
from conveyor.config import AppSettings
from conveyor.stores.memory import MemoryStore


def two(a: int, b: int) -> None: ...
def defaults(a: int, b: int = 1, c: int = 2) -> None: ...
def star(a: int, *rest: int) -> None: ...
def keyword_only(a: int, *, flag: bool = False) -> None: ...
def required_keyword(a: int, *, flag: bool) -> None: ...
def anything(*args: Any, **kwargs: Any) -> None: ...
def nothing() -> None: ...
def positional_only(a: int, /, b: int) -> None: ...


FUNCTIONS = [
    two,
    defaults,
    star,
    keyword_only,
    required_keyword,
    anything,
    nothing,
    positional_only,
]
CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1,), {}),
    ((1, 2), {}),
    ((1, 2, 3), {}),
    ((1, 2, 3, 4), {}),
    ((1,), {"b": 2}),
    ((), {"a": 1, "b": 2}),
    ((1,), {"flag": True}),
    ((1,), {"zzz": 1}),
]


def binds(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("piped", [False, True])
def test_check_arguments_agrees_with_bind(fn: Callable[..., Any], piped: bool) -> None:
    app = App(MemoryStore(), settings=AppSettings())
    task = app.task(name=fn.__name__)(fn)
    for args, kwargs in CALLS:
        expected = binds(fn, ((None,) if piped else ()) + args, kwargs)
        try:
            task.check_arguments(args, kwargs, piped)
            accepted = True
        except InvalidOption as exc:
            accepted = False
            assert fn.__name__ in str(exc)
        assert accepted == expected, (fn.__name__, args, kwargs, piped)


def test_bounds_survive_with_options() -> None:
    app = App(MemoryStore(), settings=AppSettings())
    task = app.task(name="defaults")(defaults)
    assert task.positional == (1, 3)
    assert task.with_options(priority=5).positional == (1, 3)
    with pytest.raises(InvalidOption, match="too many positional arguments"):
        task.with_options(priority=5).enqueue(1, 2, 3, 4)
