"""Cron expressions evaluated in an IANA time zone, with explicit DST rules.

Matching is done by the cronsim library on *naive wall-clock times*; this module
then maps each wall time to a real instant in the zone:

* a wall time inside a spring-forward gap (e.g. 02:30 in Europe/Berlin on the last
  Sunday of March) fires once, at the first valid instant after the gap (03:00 CEST);
  several wall times in one gap collapse into that one fire;
* a wall time inside an autumn overlap fires once, at its first occurrence, when the
  expression names a fixed minute and hour (``30 2 * * *``);
* when the minute or hour field starts with ``*`` (``0 * * * *``, ``*/15 * * * *``,
  ``0 */2 * * *``) the schedule follows elapsed time, so a wall time in the overlap
  fires at both of its occurrences: every matching UTC instant fires exactly once.

Everything here is a pure function of its arguments: no I/O, no module state.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
from cronsim.explain import explain

from conveyor.zones import ScheduleError, load_zone

__all__ = ["MACROS", "NEVER_FIRES_YEARS", "CronExpr", "ScheduleError", "load_zone"]

MAX_EXPRESSION_CHARS = 200
"""Longer expressions are refused before any parsing."""

NEVER_FIRES_YEARS = 30
"""An expression with no fire time in this many years is refused as never firing.

Thirty years covers the 28-year cycle of weekdays against leap days, so rare but real
expressions (``0 0 * 2 MON#5``) are accepted.
"""

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_start: int = 0

    @property
    def label(self) -> str:
        return f"{self.name} field"

    def value(self, token: str) -> int:
        if self.names and token in self.names:
            return self.names.index(token) + self.names_start
        if not token.isdigit() or not token.isascii():
            hint = f" or one of {', '.join(self.names)}" if self.names else ""
            raise ScheduleError(self.label, f"{token!r} is not a number{hint}")
        number = int(token)
        if not self.low <= number <= self.high:
            raise ScheduleError(self.label, f"{number} is out of range {self.low}-{self.high}")
        return number


_SECOND = _FieldSpec("second", 0, 59)
_MINUTE = _FieldSpec("minute", 0, 59)
_HOUR = _FieldSpec("hour", 0, 23)
_DOM = _FieldSpec("day-of-month", 1, 31)
_MONTH = _FieldSpec("month", 1, 12, _MONTHS, 1)
_DOW = _FieldSpec("day-of-week", 0, 7, _DAYS, 0)
_FIVE = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW)
_SIX = (_SECOND, *_FIVE)
_FIELD_HELP = (
    "expected 5 fields (minute hour day-of-month month day-of-week), 6 with seconds "
    "first, or a macro (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)"
)


def _check_term(spec: _FieldSpec, term: str) -> None:
    if term == "":
        raise ScheduleError(spec.label, "empty list item (two commas in a row?)")
    if spec is _DOM and term in ("L", "LW"):
        return
    if spec is _DOW:
        last = re.fullmatch(r"([A-Z0-9]+)L", term)
        if last:
            spec.value(last.group(1))
            return
        nth = re.fullmatch(r"([A-Z0-9]+)#(.*)", term)
        if nth:
            spec.value(nth.group(1))
            if nth.group(2) not in ("1", "2", "3", "4", "5"):
                raise ScheduleError(spec.label, f"#{nth.group(2)} must be #1 to #5")
            return
    base, slash, step = term.partition("/")
    if slash:
        if not step.isdigit() or not step.isascii():
            raise ScheduleError(spec.label, f"step {step!r} is not a number")
        if int(step) == 0:
            raise ScheduleError(spec.label, "step 0 must be at least 1")
        if int(step) > spec.high - spec.low + 1:
            raise ScheduleError(
                spec.label, f"step {int(step)} is larger than the range {spec.low}-{spec.high}"
            )
    if base == "*":
        return
    start, dash, end = base.partition("-")
    first = spec.value(start)
    if dash:
        last_value = spec.value(end)
        if last_value < first:
            raise ScheduleError(spec.label, f"range {base} runs backwards")


def _check_fields(fields: list[str]) -> None:
    specs = _SIX if len(fields) == 6 else _FIVE
    for spec, field in zip(specs, fields, strict=True):
        for term in field.split(","):
            _check_term(spec, term)


def check_after(after: datetime, n: int) -> None:
    """Refuse a preview start without a UTC offset or out of range, or a count below one."""
    if after.tzinfo is None or after.utcoffset() is None:
        raise ScheduleError("after", "must carry a UTC offset (e.g. 2026-03-29T00:00:00+01:00)")
    if n < 1:
        raise ScheduleError("count", f"{n} must be at least 1")
    if not 1970 <= after.year <= 9000:
        raise ScheduleError("after", f"year {after.year} is out of range 1970-9000")


def _is_imaginary(wall: datetime, tz: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=tz, fold=0)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first real instant after the DST gap that holds the imaginary ``wall``."""
    one = int(wall.replace(tzinfo=tz, fold=0).timestamp())
    two = int(wall.replace(tzinfo=tz, fold=1).timestamp())
    low, high = min(one, two), max(one, two)
    while high - low > 1:
        middle = (low + high) // 2
        local = datetime.fromtimestamp(middle, tz).replace(tzinfo=None)
        if local >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, tz)


def _instants(wall: datetime, tz: ZoneInfo, *, both_folds: bool) -> list[datetime]:
    """The real instants at which the wall time ``wall`` fires in ``tz``."""
    if _is_imaginary(wall, tz):
        return [_gap_end(wall, tz)]
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    if both_folds and first.utcoffset() != second.utcoffset():
        return [first.astimezone(tz), second.astimezone(tz)]
    return [first.astimezone(tz)]


def wall_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a one-off wall time fires at in ``tz``, by the same DST rules as cron:
    in a gap the first instant after it, in an overlap the first occurrence."""
    return _instants(wall, tz, both_folds=False)[0]


@dataclass(frozen=True)
class CronExpr:
    """A validated cron expression; build it with :meth:`parse`."""

    normalised: str
    """Upper-case fields separated by one space; macros expanded (``@daily`` → ``0 0 * * *``)."""

    @property
    def fields(self) -> list[str]:
        """The 5 or 6 fields."""
        return self.normalised.split(" ")

    @property
    def has_seconds(self) -> bool:
        """True for 6-field expressions (seconds first)."""
        return len(self.fields) == 6

    @property
    def follows_elapsed_time(self) -> bool:
        """True when the minute or hour field starts with ``*`` (fires at both overlap times)."""
        fields = self.fields[1:] if self.has_seconds else self.fields
        return fields[0].startswith("*") or fields[1].startswith("*")

    @classmethod
    def parse(cls, text: str) -> CronExpr:
        """Validate ``text`` (5 or 6 fields, or a macro) and normalise it.

        Raises:
            ScheduleError: the message names the faulty field, or says the expression
                never fires (no fire time in :data:`NEVER_FIRES_YEARS` years).
        """
        if len(text) > MAX_EXPRESSION_CHARS:
            raise ScheduleError("cron expression", f"longer than {MAX_EXPRESSION_CHARS} characters")
        stripped = text.strip()
        if not stripped:
            raise ScheduleError("cron expression", f"empty; {_FIELD_HELP}")
        if stripped.startswith("@"):
            macro = MACROS.get(stripped.lower())
            if macro is None:
                raise ScheduleError("cron expression", f"unknown macro {stripped!r}; {_FIELD_HELP}")
            stripped = macro
        fields = stripped.upper().split()
        if len(fields) not in (5, 6):
            raise ScheduleError("cron expression", f"{_FIELD_HELP}; got {len(fields)}")
        _check_fields(fields)
        normalised = " ".join(fields)
        try:
            first = next(CronSim(normalised, datetime(2000, 1, 1)), None)
        except CronSimError as exc:
            field = str(exc).removeprefix("Bad ")
            raise ScheduleError(
                f"{field} field" if field != str(exc) else "cron expression",
                f"{normalised!r} never fires (no month has that day)"
                if field == "day-of-month"
                else str(exc),
            ) from None
        if first is None or first.year >= 2000 + NEVER_FIRES_YEARS:
            raise ScheduleError(
                "cron expression",
                f"{normalised!r} never fires (no fire time in {NEVER_FIRES_YEARS} years)",
            )
        return cls(normalised)

    def describe(self) -> str:
        """English text, e.g. ``At 09:30 on Monday through Friday``."""
        return explain(self.normalised)

    def next_after(self, after: datetime, tz: ZoneInfo, n: int = 1) -> list[datetime]:
        """The first ``n`` fire times strictly after ``after``, as aware datetimes in ``tz``.

        DST: see the module docstring (gap → first instant after the gap; overlap →
        first occurrence, or both for ``*`` minute/hour fields; never twice per instant).

        Raises:
            ScheduleError: ``after`` is naive, ``n`` is not positive, or no fire time
                exists before the calendar ends.
        """
        check_after(after, n)
        start = after.astimezone(tz).replace(tzinfo=None)
        # Compare in UTC: aware datetimes sharing a tzinfo compare by wall time, ignoring fold.
        after_utc = after.astimezone(UTC)
        found = self._collect(start, tz, after_utc, n)
        if len(found) >= n:
            return [moment.astimezone(tz) for moment in found[:n]]
        raise ScheduleError(
            "cron expression", f"{self.normalised!r} has no fire time after {after.isoformat()}"
        )

    def _collect(self, start: datetime, tz: ZoneInfo, after: datetime, n: int) -> list[datetime]:
        """Sorted, distinct UTC fire instants strictly after ``after``: ``n`` of them, or
        fewer when the calendar (year 9999) or cronsim's 50-year search ends first."""
        both = self.follows_elapsed_time
        found: list[datetime] = []
        try:
            # Start 3 hours early: a wall time before ``start`` can have its second
            # (overlap) occurrence after ``after``.
            for wall in CronSim(self.normalised, start - timedelta(hours=3)):
                instants = [
                    moment.astimezone(UTC) for moment in _instants(wall, tz, both_folds=both)
                ]
                for moment in instants:
                    index = bisect.bisect_left(found, moment)
                    if moment > after and (index == len(found) or found[index] != moment):
                        found.insert(index, moment)
                # Later wall times never map before this one's first instant.
                if len(found) >= n and found[n - 1] <= instants[0]:
                    return found
        except (OverflowError, ValueError):
            return found
        return found
