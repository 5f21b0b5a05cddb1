"""Rate limits and concurrency limits: what they are and which bucket a job counts in.

A limit belongs to a task (``@app.task(limits=[...])``), to a queue
(``app.limit_queue("emails", ...)``) or to a named bucket shared by several tasks
(``name="smtp"``). With ``key`` each value of the key (for example each tenant) gets its
own bucket: ``key="tenant"`` reads the job's ``tenant`` argument, a callable receives the
job's arguments and returns the key.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.errors import InvalidOption

KeyFunction = Callable[..., object]
"""Called with the job's arguments (``*args, **kwargs``); returns the bucket key."""

PERIODS: Mapping[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([a-z]+)\s*$")
KEY_MAX = 200
RATE_LIMIT_MAX = 10_000
"""Most starts a rate window may hold: the window keeps each start in one store record."""


def _positive_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOption(field, f"must be a positive integer, not {value!r}")
    return value


def _positive_seconds(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidOption(field, f"must be a positive number of seconds, not {value!r}")
    if value <= 0:
        raise InvalidOption(field, f"must be a positive number of seconds, not {value!r}")
    return float(value)


def _check_key(key: str | KeyFunction | None) -> None:
    if key is None or callable(key):
        return
    if not isinstance(key, str) or not key.isidentifier():
        raise InvalidOption(
            "key", f"must be an argument name or a function of the job's arguments, not {key!r}"
        )


def _check_name(name: str | None) -> None:
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
        raise InvalidOption(
            "name", f"must be a non-empty string of at most 200 characters: {name!r}"
        )


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` jobs start in any window of ``per`` seconds.

    Each start takes a token that comes back exactly ``per`` seconds later (a sliding
    window), so no window of ``per`` seconds ever sees more than ``limit`` starts.
    """

    limit: int
    per: float = 1.0
    key: str | KeyFunction | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if _positive_int(self.limit, "limit") > RATE_LIMIT_MAX:
            raise InvalidOption(
                "limit",
                f"{self.limit} is more than {RATE_LIMIT_MAX} starts per window; use a shorter "
                "period (e.g. '100/s' rather than '360000/h')",
            )
        object.__setattr__(self, "per", _positive_seconds(self.per, "per"))
        _check_key(self.key)
        _check_name(self.name)

    def describe(self) -> str:
        """``10/60s``-style summary."""
        return f"{self.limit}/{self.per:g}s"


@dataclass(frozen=True, slots=True)
class Concurrency:
    """At most ``limit`` jobs of the bucket run at once, across every worker and node.

    A job over the limit is put back and tried again after ``retry_after`` seconds
    (plus a little jitter); a slot held by a worker that died frees itself when the
    worker's lease would have expired.
    """

    limit: int
    key: str | KeyFunction | None = None
    name: str | None = None
    retry_after: float = 1.0

    def __post_init__(self) -> None:
        _positive_int(self.limit, "limit")
        object.__setattr__(self, "retry_after", _positive_seconds(self.retry_after, "retry_after"))
        _check_key(self.key)
        _check_name(self.name)

    def describe(self) -> str:
        """``max 3 at once`` summary."""
        return f"max {self.limit} at once"


Limit = RateLimit | Concurrency


def parse_rate(text: str, *, key: str | KeyFunction | None = None) -> RateLimit:
    """``"10/s"``, ``"100/m"``, ``"5/h"``, ``"1000/d"``, ``"3/10s"`` → :class:`RateLimit`.

    Raises:
        InvalidOption: the text is not ``<count>/<period>``.
    """
    match = _RATE.match(text.lower()) if isinstance(text, str) else None
    unit = PERIODS.get(match.group(3)) if match else None
    if match is None or unit is None:
        raise InvalidOption(
            "rate_limit",
            f"{text!r} is not a rate; write <count>/<period> such as '10/s', '100/m', "
            "'5/h', '1000/d' or '3/10s'",
        )
    count = int(match.group(1))
    multiple = float(match.group(2)) if match.group(2) else 1.0
    return RateLimit(count, per=multiple * unit, key=key)


def check_limits(limits: object, field: str = "limits") -> tuple[Limit, ...]:
    """Validate a sequence of limits (``"10/s"`` strings become :class:`RateLimit`)."""
    if isinstance(limits, RateLimit | Concurrency | str):
        limits = (limits,)
    if not isinstance(limits, Sequence):
        raise InvalidOption(field, "must be a list of RateLimit/Concurrency (or '10/s' strings)")
    checked: list[Limit] = []
    for item in limits:
        if isinstance(item, str):
            checked.append(parse_rate(item))
        elif isinstance(item, RateLimit | Concurrency):
            checked.append(item)
        else:
            raise InvalidOption(field, f"{item!r} is not a RateLimit, Concurrency or '10/s' string")
    return tuple(checked)


def key_names_no_parameter(limit: Limit, signature: inspect.Signature) -> bool:
    """Whether ``limit``'s key is an argument name the function cannot receive (every
    job would then share one bucket: the key's value would always be missing)."""
    if not isinstance(limit.key, str):
        return False
    params = signature.parameters
    if limit.key in params:
        return False
    return not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def check_limit_keys(limits: Sequence[Limit], signature: inspect.Signature, task: str) -> None:
    """Refuse a limit whose ``key`` names no parameter of the task.

    Raises:
        InvalidOption: naming the key and the task's parameters.
    """
    for limit in limits:
        if key_names_no_parameter(limit, signature):
            names = ", ".join(signature.parameters) or "none"
            raise InvalidOption(
                "limits",
                f"key {limit.key!r} of {limit!r} names no parameter of task {task!r} "
                f"(its parameters: {names}); use one of them or a function of the arguments",
            )


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit resolved for one job: the record it is counted in."""

    kind: str
    """``rate`` or ``slots``."""
    key: str
    limit: Limit


@dataclass(frozen=True, slots=True)
class JobArguments:
    """A job's decoded arguments, with ``named`` also holding positional ones by name."""

    args: Sequence[Any]
    kwargs: Mapping[str, Any]
    named: Mapping[str, Any]

    @classmethod
    def bind(
        cls, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> JobArguments:
        """Bind to ``fn``'s signature so a key given as an argument name finds it whether
        it was passed by position or by name (defaults included)."""
        named = dict(kwargs)
        try:
            bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        except (TypeError, ValueError):
            return cls(args, kwargs, named)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            named.setdefault(name, value)
        return cls(args, kwargs, named)


def bucket_key(limit: Limit, owner: str, arguments: Callable[[], JobArguments]) -> str:
    """The record key of ``limit`` for one job: its name (else ``owner``), then the job's
    key value. ``arguments`` decodes the job's arguments, only when a key needs them."""
    base = limit.name or owner
    if limit.key is None:
        return base
    job_args = arguments()
    if isinstance(limit.key, str):
        value = job_args.named.get(limit.key)
    else:
        value = limit.key(*job_args.args, **job_args.kwargs)
    text = "" if value is None else str(value)
    return f"{base}|{text[:KEY_MAX]}"
