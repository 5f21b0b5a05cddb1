"""Checks for job options at the boundary; each failure names the option and the fix."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Final

from conveyor.errors import InvalidOption

QUEUE_NAME: Final = re.compile(r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$")
QUEUE_NAME_MAX: Final = 64
TAG: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?$")
TAG_MAX: Final = 64
TAGS_MAX: Final = 32
KEY_MAX: Final = 255
TASK_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
TASK_NAME_MAX: Final = 200
PRIORITY_MIN: Final = -100
PRIORITY_MAX: Final = 100
MAX_ATTEMPTS_LIMIT: Final = 1000

PRIORITY_LEVELS: Final = {"critical": 30, "high": 20, "normal": 0, "low": -20}


def queue_name(value: object, option: str = "queue") -> str:
    """A queue name: lower-case letters and digits joined by ``-``/``_``, at most 64 chars."""
    if not isinstance(value, str):
        raise InvalidOption(option, f"must be a string, got {type(value).__name__}")
    if len(value) > QUEUE_NAME_MAX or not QUEUE_NAME.match(value):
        raise InvalidOption(
            option,
            f"{value[:80]!r} is not a valid queue name; use lower-case letters and digits "
            f"joined by '-' or '_' (at most {QUEUE_NAME_MAX} characters), e.g. 'emails'",
        )
    return value


def task_name(value: object) -> str:
    """A task name: a dotted Python-like identifier."""
    if not isinstance(value, str) or len(value) > TASK_NAME_MAX or not TASK_NAME.match(value):
        raise InvalidOption("task", f"{value!r} is not a valid task name (e.g. 'billing.charge')")
    return value


def priority(value: object) -> int:
    """An integer priority in range, or a named level (critical/high/normal/low)."""
    if isinstance(value, str) and value in PRIORITY_LEVELS:
        return PRIORITY_LEVELS[value]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOption(
            "priority",
            f"must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX} or one of "
            f"{', '.join(PRIORITY_LEVELS)}; got {value!r}",
        )
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise InvalidOption(
            "priority",
            f"{value} is out of range {PRIORITY_MIN}..{PRIORITY_MAX} (higher runs first)",
        )
    return value


def max_attempts(value: object) -> int:
    """At least one attempt, at most :data:`MAX_ATTEMPTS_LIMIT`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOption("max_attempts", f"must be an integer, got {value!r}")
    if not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise InvalidOption("max_attempts", f"must be 1..{MAX_ATTEMPTS_LIMIT}, got {value}")
    return value


def seconds(
    value: object, option: str, *, allow_none: bool = True, positive: bool = True
) -> float | None:
    """A finite number of seconds (strictly positive unless ``positive`` is False)."""
    if value is None:
        if allow_none:
            return None
        raise InvalidOption(option, "is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidOption(option, f"must be a number of seconds, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidOption(option, f"must be finite, got {value!r}")
    if positive and number <= 0:
        raise InvalidOption(option, f"must be greater than 0, got {value!r}")
    return number


def key(value: object, option: str) -> str | None:
    """A unique or idempotency key: a non-empty string of at most 255 characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > KEY_MAX:
        raise InvalidOption(option, f"must be a non-empty string of at most {KEY_MAX} characters")
    if "\x00" in value:
        raise InvalidOption(option, "must not contain NUL characters")
    return value


def tags(values: Iterable[object] | None) -> tuple[str, ...]:
    """At most 32 tags, each letters/digits with ``_.:-`` inside, at most 64 chars."""
    if values is None:
        return ()
    if isinstance(values, str):
        raise InvalidOption("tags", "must be a list of strings, not one string")
    result: list[str] = []
    for index, tag in enumerate(values):
        if not isinstance(tag, str) or len(tag) > TAG_MAX or not TAG.match(tag):
            raise InvalidOption(
                f"tags[{index}]",
                f"{tag!r} is not a valid tag; use letters, digits and _ . : - "
                f"(at most {TAG_MAX} characters)",
            )
        if tag not in result:
            result.append(tag)
    if len(result) > TAGS_MAX:
        raise InvalidOption("tags", f"at most {TAGS_MAX} tags, got {len(result)}")
    return tuple(result)
