"""Time zones by IANA name, and the error every schedule refusal shares.

Below the scheduler and the conditions that both read zones (a :class:`TimeWindow`
condition, a schedule's ``tz``), so neither has to import the other to load one.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from conveyor.errors import InvalidOption

__all__ = ["ScheduleError", "load_zone"]


class ScheduleError(InvalidOption):
    """A schedule, cron field, time zone or preview option is invalid.

    ``field`` names what was wrong (``"minute field"``, ``"time zone"``, ``"schedule"``).
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(field, message)


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. ``Europe/Berlin``).

    Raises:
        ScheduleError: the name is not a known IANA time zone.
    """
    text = name.strip()
    if not text or len(text) > 64:
        raise ScheduleError("time zone", f"{name!r} is not an IANA time zone name")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(
            "time zone",
            f"unknown time zone {text!r}; use an IANA name such as Europe/Berlin, "
            "America/New_York or UTC",
        ) from None
