"""A small, strict grammar of English schedules compiled to cron, an interval or a one-off.

Nothing is guessed: text that matches none of the forms below is refused with a
message listing them. Accepted (case-insensitive, any spacing)::

    every second | every N seconds
    every minute | every N minutes
    every hour | every N hours [at :MM]
    every N hours between TIME and TIME
    daily at TIME | every day at TIME
    every weekday at TIME | every weekend at TIME
    every monday [, tuesday …] [and friday] at TIME
    on the 1st of every month at TIME | on the last day of every month at TIME
    once at YYYY-MM-DD TIME | once on YYYY-MM-DD at TIME

TIME is ``9:30``, ``09:30``, ``21:00``, ``7am``, ``7:30pm``, ``noon`` or ``midnight``.
Any form may end with `` in Zone/Name`` (an IANA zone). A counted unit that divides
its parent (``every 5 minutes``, ``every 2 hours``, ``every 30 seconds``) compiles to
cron; any other count (``every 90 seconds``, ``every 7 minutes``) to an interval
anchored at the Unix epoch. ``once …`` fires a single time (never, once it has passed).
"""

from __future__ import annotations

import re
from datetime import date, datetime

from conveyor.scheduler.cron import CronExpr, ScheduleError, load_zone
from conveyor.scheduler.recurrence import MAX_INTERVAL_SECONDS, Schedule, describe_interval

__all__ = ["ACCEPTED_FORMS", "parse_natural", "parse_schedule"]

ACCEPTED_FORMS = (
    "every N seconds|minutes|hours (e.g. 'every 5 minutes', 'every minute', 'every 90 seconds')",
    "every hour at :MM (e.g. 'every hour at :15')",
    "every N hours between TIME and TIME (e.g. 'every 2 hours between 8:00 and 18:00')",
    "daily at TIME / every day at TIME (e.g. 'daily at 9:30')",
    "every weekday at TIME / every weekend at TIME",
    "every DAY[, DAY] [and DAY] at TIME (e.g. 'every monday and thursday at 18:00')",
    "on the Nth of every month at TIME / on the last day of every month at TIME",
    "once at YYYY-MM-DD TIME / once on YYYY-MM-DD at TIME (a one-off)",
    "TIME is 9:30, 21:00, 7am, 7:30pm, noon or midnight; add ' in Zone/Name' for a time zone",
    "or a cron expression ('30 9 * * 1-5', 6 fields with seconds, or @daily-style macros)",
)

MAX_TEXT_CHARS = 200

_DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_DAY = r"(?:sun|mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?)(?:day)?s?"
_TIME = r"(midnight|noon|\d{1,2}(?::\d{2})?\s*(?:am|pm)?)"
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
_PARENT = {"second": 60, "minute": 60, "hour": 24}

_EVERY_UNIT = re.compile(r"every (?:(\d+) )?(second|minute|hour)s?(?: at :(\d{2}))?")
_BETWEEN = re.compile(rf"every (\d+) hours? between {_TIME} and {_TIME}")
_DAILY = re.compile(rf"(?:daily|every day) at {_TIME}")
_WEEKDAY = re.compile(rf"every (weekday|weekend)s? at {_TIME}")
_DAYS = re.compile(rf"every ({_DAY}(?:(?:,| and|, and) {_DAY})*) at {_TIME}")
_MONTHLY = re.compile(rf"on the (\d{{1,2}})(?:st|nd|rd|th) of every month at {_TIME}")
_LAST_DAY = re.compile(rf"on the last day of every month at {_TIME}")
_ONCE = re.compile(rf"once (?:at|on) (\d{{4}}-\d{{2}}-\d{{2}})(?:t| at | ){_TIME}")
_ZONE = re.compile(r"^(.*?)\s+in\s+([A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*)$", re.DOTALL)


def _refuse(text: str) -> ScheduleError:
    forms = "; ".join(ACCEPTED_FORMS)
    return ScheduleError("schedule", f"cannot understand {text!r}; accepted forms: {forms}")


def _time(token: str) -> tuple[int, int]:
    """``(hour, minute)`` of a TIME token."""
    token = token.replace(" ", "")
    if token == "midnight":
        return 0, 0
    if token == "noon":
        return 12, 0
    match = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?(am|pm)?", token)
    if match is None or (match.group(2) is None and match.group(3) is None):
        raise ScheduleError("time", f"{token!r} is not a time; write 9:30, 21:00, 7am or 7:30pm")
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if match.group(3):
        if not 1 <= hour <= 12:
            raise ScheduleError("time", f"{token!r}: with am/pm the hour must be 1-12")
        hour = hour % 12 + (12 if match.group(3) == "pm" else 0)
    if hour > 23 or minute > 59:
        raise ScheduleError("time", f"{token!r} is out of range 00:00-23:59")
    return hour, minute


def _day_number(token: str) -> int:
    for number, name in enumerate(_DAY_NAMES):
        if token.startswith(name[:3]):
            return number
    raise ScheduleError("day", f"{token!r} is not a day name")


def _every_unit(count_text: str | None, unit: str, at: str | None) -> tuple[str | None, int]:
    """``(cron or None, interval seconds)`` of ``every [N] unit [at :MM]``."""
    count = 1 if count_text is None else int(count_text)
    if count < 1:
        raise ScheduleError("schedule", f"every {count} {unit}s: the count must be at least 1")
    if at is not None and unit != "hour":
        raise ScheduleError("schedule", "'at :MM' only follows 'every hour' or 'every N hours'")
    minute = 0 if at is None else int(at)
    if minute > 59:
        raise ScheduleError("minute", f"{at} is out of range 00-59")
    seconds = count * _UNIT_SECONDS[unit]
    if seconds > MAX_INTERVAL_SECONDS:
        raise ScheduleError("interval", f"{seconds} seconds is longer than one year")
    if _PARENT[unit] % count:
        if at is not None:
            raise ScheduleError(
                "schedule", f"'at :MM' needs an hour count that divides 24, not {count}"
            )
        return None, seconds
    step = "*" if count == 1 else f"*/{count}"
    if unit == "second":
        return f"{step} * * * * *", seconds
    if unit == "minute":
        return f"{step} * * * *", seconds
    return f"{minute} {step} * * *", seconds


def _compile(body: str) -> tuple[str | None, int | None]:
    """``(cron, interval)`` of a lower-case body without its zone suffix."""
    if match := _EVERY_UNIT.fullmatch(body):
        cron, seconds = _every_unit(match.group(1), match.group(2), match.group(3))
        return cron, None if cron else seconds
    if match := _BETWEEN.fullmatch(body):
        step = int(match.group(1))
        (start_h, start_m), (end_h, end_m) = _time(match.group(2)), _time(match.group(3))
        last_h = end_h if start_m <= end_m else end_h - 1
        if not 1 <= step <= 23 or last_h < start_h:
            raise ScheduleError(
                "schedule", "between START and END needs START before END and 1-23 hours"
            )
        hours = f"{start_h}-{last_h}" + (f"/{step}" if step > 1 else "")
        return f"{start_m} {hours} * * *", None
    if match := _DAILY.fullmatch(body):
        hour, minute = _time(match.group(1))
        return f"{minute} {hour} * * *", None
    if match := _WEEKDAY.fullmatch(body):
        hour, minute = _time(match.group(2))
        days = "1-5" if match.group(1) == "weekday" else "0,6"
        return f"{minute} {hour} * * {days}", None
    if match := _DAYS.fullmatch(body):
        names = re.split(r",\s*and\s+|,\s*|\s+and\s+", match.group(1))
        numbers = sorted({_day_number(name.strip()) for name in names})
        hour, minute = _time(match.group(2))
        return f"{minute} {hour} * * {','.join(map(str, numbers))}", None
    if match := _MONTHLY.fullmatch(body):
        day = int(match.group(1))
        if not 1 <= day <= 31:
            raise ScheduleError("day-of-month", f"{day} is out of range 1-31")
        hour, minute = _time(match.group(2))
        return f"{minute} {hour} {day} * *", None
    if match := _LAST_DAY.fullmatch(body):
        hour, minute = _time(match.group(1))
        return f"{minute} {hour} L * *", None
    raise _refuse(body)


def _one_off(date_text: str, time_text: str) -> datetime:
    """The wall time of ``once at DATE TIME``; the date must exist."""
    try:
        day = date.fromisoformat(date_text)
    except ValueError:
        raise ScheduleError("date", f"{date_text!r} is not a date (YYYY-MM-DD)") from None
    if not 1970 <= day.year <= 9000:
        raise ScheduleError("date", f"year {day.year} is out of range 1970-9000")
    hour, minute = _time(time_text)
    return datetime(day.year, day.month, day.day, hour, minute)


def _split_zone(text: str) -> tuple[str, str | None]:
    match = _ZONE.match(text)
    if match is None:
        return text, None
    load_zone(match.group(2))
    return match.group(1).strip(), match.group(2)


def _describe(cron: str | None, interval: int | None, tz: str | None) -> str:
    text = CronExpr.parse(cron).describe() if cron else describe_interval(interval or 0)
    return f"{text} ({tz})" if tz else text


def parse_natural(text: str) -> Schedule:
    """Compile an English schedule (see the module docstring) to a :class:`Schedule`.

    Raises:
        ScheduleError: the text matches no accepted form (the message lists them), a
            time or day is out of range, or the zone is unknown.
    """
    if len(text) > MAX_TEXT_CHARS:
        raise ScheduleError("schedule", f"longer than {MAX_TEXT_CHARS} characters")
    body, tz = _split_zone(" ".join(text.split()))
    if match := _ONCE.fullmatch(body.lower()):
        wall = _one_off(match.group(1), match.group(2))
        described = f"Once, on {wall:%Y-%m-%d} at {wall:%H:%M}" + (f" ({tz})" if tz else "")
        return Schedule(None, None, tz, described, wall.isoformat())
    cron, interval = _compile(body.lower())
    if cron is not None:
        cron = CronExpr.parse(cron).normalised
    return Schedule(cron, interval, tz, _describe(cron, interval, tz))


def parse_schedule(text: str) -> Schedule:
    """A cron expression, a macro or an English schedule, each with an optional `` in Zone``.

    Raises:
        ScheduleError: nothing accepted matches; the message names the field or lists
            the accepted forms.
    """
    if len(text) > MAX_TEXT_CHARS:
        raise ScheduleError("schedule", f"longer than {MAX_TEXT_CHARS} characters")
    collapsed = " ".join(text.split())
    if not collapsed:
        raise ScheduleError("schedule", "empty; " + "; ".join(ACCEPTED_FORMS))
    body, tz = _split_zone(collapsed)
    if body[0] in "0123456789*?@":
        cron = CronExpr.parse(body).normalised
        return Schedule(cron, None, tz, _describe(cron, None, tz))
    return parse_natural(collapsed)
