"""Argument checking at enqueue: the fast positional path agrees with inspect's bind."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from conveyor import App, InvalidOption
from conveyor.config import AppSettings
from conveyor.stores.memory import MemoryStore
from conveyor.task import parameters_text


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


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("piped", [False, True])
def test_every_refusal_has_a_precise_reason(fn: Callable[..., Any], piped: bool) -> None:
    app = App(MemoryStore(), settings=AppSettings())
    task = app.task(name=fn.__name__)(fn)
    for args, kwargs in CALLS:
        if binds(fn, ((None,) if piped else ()) + args, kwargs):
            continue
        with pytest.raises(InvalidOption) as info:
            task.check_arguments(args, kwargs, piped)
        message = str(info.value)
        assert any(
            reason in message
            for reason in (
                "unexpected keyword argument",
                "positional-only",
                "too many positional arguments",
                "multiple values",
                "missing a required argument",
                "missing required arguments",
            )
        ), message
        assert f"it takes {parameters_text(inspect.signature(fn))}" in message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.enqueue(1, c=2), r"unexpected keyword argument 'c'; it takes \(a, b\)$"),
        (lambda t: t.enqueue(1, bb=2), r"unexpected keyword argument 'bb' \(did you mean 'b'\?\)"),
        (lambda t: t.enqueue(a=1, b=2, c=3), "unexpected keyword argument 'c'"),
        (lambda t: t.enqueue(1, 2, 3), "too many positional arguments: takes at most 2, got 3"),
        (lambda t: t.enqueue(1), "missing a required argument: 'b'"),
        (lambda t: t.enqueue(), "missing required arguments: 'a', 'b'"),
        (lambda t: t.enqueue(1, a=1), "multiple values for argument 'a'"),
    ],
)
def test_enqueue_names_what_is_wrong(call: Callable[[Any], Any], message: str) -> None:
    app = App(MemoryStore(), settings=AppSettings())
    task = app.task(name="two")(two)
    with pytest.raises(InvalidOption, match=message):
        call(task)


def test_chained_call_with_too_many_arguments_says_one_is_piped() -> None:
    app = App(MemoryStore(), settings=AppSettings())
    task = app.task(name="two")(two)
    with pytest.raises(InvalidOption, match="previous job's result in the chain"):
        task.check_arguments((1, 2), {}, True)


def test_positional_only_parameter_by_keyword() -> None:
    app = App(MemoryStore(), settings=AppSettings())
    task = app.task(name="positional_only")(positional_only)
    with pytest.raises(InvalidOption, match="'a' is positional-only"):
        task.enqueue(a=1, b=2)


def test_required_keyword_only_is_named() -> None:
    app = App(MemoryStore(), settings=AppSettings())
    task = app.task(name="required_keyword")(required_keyword)
    with pytest.raises(InvalidOption, match="missing a required argument: 'flag'"):
        task.enqueue(1)


def test_with_options_names_an_unknown_option() -> None:
    app = App(MemoryStore(), settings=AppSettings())
    task = app.task(name="two")(two)
    with pytest.raises(InvalidOption, match="prioirty: unknown option; did you mean 'priority'"):
        task.with_options(prioirty=1)
    with pytest.raises(
        InvalidOption, match="zzz: unknown option; options are conditions, connection, delay"
    ):
        task.with_options(zzz=1)
    with pytest.raises(InvalidOption, match=r"'b' is an argument of two: pass it to .enqueue\(b="):
        task.with_options(b=2)
    with pytest.raises(InvalidOption, match="'b' is an argument of two"):
        task.s(1).with_options(b=2)
