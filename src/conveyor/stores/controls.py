"""Shared rules of the job controls every driver implements: reprioritize, move, find_ids.

Kept beside the drivers so that the five of them agree on which jobs can be changed,
what input is refused, and how an id prefix becomes a range of ids.
"""

from __future__ import annotations

import re
from typing import Final

from conveyor.errors import InvalidOption
from conveyor.job import JobState
from conveyor.validation import priority as check_priority
from conveyor.validation import queue_name

S = JobState

MOVABLE_STATES: Final = frozenset({S.PENDING, S.SCHEDULED, S.RETRYING, S.BLOCKED})
"""States whose priority and queue can change: jobs that no worker holds and that have
not finished. A blocked job keeps its dependencies; it runs in its new queue (or at its
new priority) once they complete."""

MOVABLE_VALUES: Final = tuple(sorted(s.value for s in MOVABLE_STATES))
"""The same states as stored strings, for SQL and Lua."""

_UUID_GROUPS: Final = (8, 4, 4, 4, 12)
_HEX_DIGITS: Final = sum(_UUID_GROUPS)
_HEX: Final = re.compile(r"^[0-9a-f]*$")

FIND_IDS_MAX: Final = 1000
"""Largest ``limit`` of :meth:`Store.find_ids`."""

__all__ = [
    "FIND_IDS_MAX",
    "MOVABLE_STATES",
    "MOVABLE_VALUES",
    "check_find_limit",
    "check_priority",
    "check_queue",
    "normalize_prefix",
    "prefix_bounds",
]


def check_queue(queue: object) -> str:
    """The target queue of a move, checked like an enqueue's queue."""
    return queue_name(queue, "queue")


def check_find_limit(limit: int) -> int:
    """A ``find_ids`` limit from 1 to :data:`FIND_IDS_MAX`."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= FIND_IDS_MAX:
        raise InvalidOption("limit", f"must be an integer from 1 to {FIND_IDS_MAX}; got {limit!r}")
    return limit


def normalize_prefix(prefix: str) -> str:
    """The canonical (lower-case, dashed) form of an id prefix.

    Users copy ids with or without dashes and in either case; ids are stored as canonical
    UUID strings, so the prefix is put in that form before any comparison.

    Raises:
        InvalidOption: The text cannot start a job id.
    """
    digits = prefix.strip().lower().replace("-", "")
    if not digits or len(digits) > _HEX_DIGITS or not _HEX.match(digits):
        raise InvalidOption(
            "id",
            f"{prefix[:80]!r} is not a job id or id prefix; use the first characters of an id "
            "as shown by 'conveyor jobs list' (hexadecimal digits, dashes optional), "
            "e.g. 0190a3c4",
        )
    return _dashed(digits)


def _dashed(digits: str) -> str:
    parts: list[str] = []
    start = 0
    for size in _UUID_GROUPS:
        if start >= len(digits):
            break
        parts.append(digits[start : start + size])
        start += size
    return "-".join(parts)


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """The smallest and largest canonical ids that start with ``prefix`` (normalized).

    Both bounds are full UUID-shaped strings, so ``lower <= id <= upper`` selects exactly
    the ids with that prefix under any collation that orders hex digits as ASCII does:
    the dashes sit at the same places in every id and both bounds.
    """
    digits = prefix.replace("-", "")
    low = _dashed(digits + "0" * (_HEX_DIGITS - len(digits)))
    high = _dashed(digits + "f" * (_HEX_DIGITS - len(digits)))
    return low, high
