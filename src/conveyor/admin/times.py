"""Times as operators type them (ISO-8601 or "15m ago") and as JSON shows them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from conveyor import durations

parse_duration = durations.parse_duration
"""Seconds in ``"90"``, ``"90s"``, ``"15m"``, ``"2h"``; see :mod:`conveyor.durations`."""


def parse_time(text: str, now: float) -> float:
    """An instant as epoch seconds: ISO-8601 with an offset, or a duration meaning that long ago.

    ``"2026-01-01T00:00:00+00:00"`` and ``"2026-01-01T00:00:00Z"`` are absolute;
    ``"15m"``, ``"2h"``, ``"3d"``, ``"90s"`` mean ``now`` minus that much.

    Raises:
        ValueError: The text is neither, or an ISO time has no offset.
    """
    stripped = text.strip()
    if durations.is_duration(stripped):
        return now - parse_duration(stripped)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; use ISO-8601 with an offset "
            "(2026-01-01T09:30:00+00:00) or a duration ago (90s, 15m, 2h, 3d)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{text!r} has no time zone; add an offset such as +00:00 or Z "
            f"(e.g. {moment.isoformat()}+00:00)"
        )
    return moment.timestamp()


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string (None stays None)."""
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat()


def age(now: float, ts: float) -> float:
    """Seconds from ``ts`` to ``now``, never negative (clocks of two hosts may disagree)."""
    return max(now - ts, 0.0)
