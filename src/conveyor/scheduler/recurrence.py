"""Recurrences: fixed intervals anchored to an epoch, one-off times, and the
:class:`Schedule` value.

An interval of ``s`` seconds fires at ``anchor + k * s`` for whole ``k``; the next fire
time after any instant is computed from the anchor, never from the previous run, so
it does not drift however late a run was. Intervals count elapsed seconds, so DST
changes do not affect them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from conveyor.scheduler.cron import CronExpr, ScheduleError, check_after, load_zone, wall_instant

__all__ = ["EPOCH", "MAX_INTERVAL_SECONDS", "Interval", "Once", "Schedule", "describe_interval"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""The default anchor of interval recurrences."""

MAX_INTERVAL_SECONDS = 366 * 24 * 3600
"""The longest interval accepted (one leap year)."""


@dataclass(frozen=True)
class Interval:
    """Every ``seconds`` seconds, at ``anchor + k * seconds``."""

    seconds: int
    anchor: datetime = EPOCH

    def __post_init__(self) -> None:
        if not 1 <= self.seconds <= MAX_INTERVAL_SECONDS:
            raise ScheduleError(
                "interval", f"{self.seconds} seconds is out of range 1-{MAX_INTERVAL_SECONDS}"
            )
        if self.anchor.tzinfo is None:
            raise ScheduleError("anchor", "must carry a UTC offset")

    def next_after(self, after: datetime, tz: ZoneInfo, n: int = 1) -> list[datetime]:
        """The first ``n`` fire times strictly after ``after``, as aware datetimes in ``tz``."""
        check_after(after, n)
        elapsed = after - self.anchor
        step = timedelta(seconds=self.seconds)
        k = elapsed // step + 1
        return [(self.anchor + (k + i) * step).astimezone(tz) for i in range(n)]


@dataclass(frozen=True)
class Once:
    """A single wall time in the schedule's zone (``once at 2026-12-24 18:00``).

    DST follows the cron rules: a wall time inside a spring-forward gap fires at the
    first instant after the gap, one inside an autumn overlap at its first occurrence.
    """

    wall: datetime

    def __post_init__(self) -> None:
        if self.wall.tzinfo is not None:
            raise ScheduleError("once", "a one-off time is a wall time, without an offset")

    def next_after(self, after: datetime, tz: ZoneInfo, n: int = 1) -> list[datetime]:
        """The fire time if it is strictly after ``after`` (a list of at most one)."""
        check_after(after, n)
        moment = wall_instant(self.wall, tz)
        return [moment.astimezone(tz)] if moment.astimezone(UTC) > after.astimezone(UTC) else []


def describe_interval(seconds: int) -> str:
    """``Every 90 seconds``, ``Every 2 hours``, ``Every 7 minutes``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    return "Every second" if seconds == 1 else f"Every {seconds} seconds"


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: exactly one of ``cron``, ``interval_seconds`` and ``once`` is set.

    ``tz`` is the zone named in the text (``… in Europe/Berlin``) or None. ``once`` is the
    wall time of a one-off schedule (ISO 8601 without offset), which fires at most once.
    """

    cron: str | None
    interval_seconds: int | None
    tz: str | None
    description: str
    once: str | None = None

    def __post_init__(self) -> None:
        kinds = (self.cron, self.interval_seconds, self.once)
        if sum(kind is not None for kind in kinds) != 1:
            raise ScheduleError("schedule", "exactly one of cron, interval_seconds and once is set")

    def zone(self, default: str = "UTC") -> ZoneInfo:
        """The schedule's own zone, else ``default``."""
        return load_zone(self.tz or default)

    def next_after(self, after: datetime, tz: ZoneInfo, n: int = 1) -> list[datetime]:
        """The first ``n`` fire times strictly after ``after`` in ``tz`` (a one-off has at
        most one, and none once it has passed)."""
        if self.cron is not None:
            return CronExpr.parse(self.cron).next_after(after, tz, n)
        if self.once is not None:
            return Once(datetime.fromisoformat(self.once)).next_after(after, tz, n)
        assert self.interval_seconds is not None
        return Interval(self.interval_seconds).next_after(after, tz, n)

    def to_dict(self) -> dict[str, object]:
        """``{"cron", "interval_seconds", "once", "tz", "description"}``."""
        return {
            "cron": self.cron,
            "interval_seconds": self.interval_seconds,
            "once": self.once,
            "tz": self.tz,
            "description": self.description,
        }
