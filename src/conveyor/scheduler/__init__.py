"""Schedules: cron and English recurrences in IANA time zones, and the periodic service.

* :class:`CronExpr` — 5- and 6-field cron and ``@daily``-style macros, DST-correct.
* :class:`Interval` — every N seconds, anchored to the Unix epoch so it never drifts.
* :func:`parse_natural` / :func:`parse_schedule` — the strict English grammar (and
  cron) compiled to a :class:`Schedule`.

Every refusal is a :class:`ScheduleError` (an :class:`~conveyor.errors.InvalidOption`,
so an :class:`~conveyor.errors.InvalidJob`) whose message names the faulty field.
:mod:`conveyor.scheduler.service` fires ``@app.periodic`` and stored schedules
(:mod:`conveyor.scheduler.registry`) exactly once per fire time through the stores'
unique keys, under a leader lease, with a catch-up policy. Rate limits and conditions
are in :mod:`conveyor.coordination` and :mod:`conveyor.conditions`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.scheduler.cron import MACROS, CronExpr, ScheduleError, load_zone
    from conveyor.scheduler.natural import ACCEPTED_FORMS, parse_natural, parse_schedule
    from conveyor.scheduler.recurrence import EPOCH, Interval, Schedule, describe_interval

_LAZY = {
    "MACROS": "cron",
    "CronExpr": "cron",
    "ScheduleError": "cron",
    "load_zone": "cron",
    "ACCEPTED_FORMS": "natural",
    "parse_natural": "natural",
    "parse_schedule": "natural",
    "EPOCH": "recurrence",
    "Interval": "recurrence",
    "Schedule": "recurrence",
    "describe_interval": "recurrence",
}
"""Names of the package, loaded on first use (the CLI imports the package without
needing the recurrence maths for most commands)."""

__all__ = [
    "ACCEPTED_FORMS",
    "EPOCH",
    "MACROS",
    "CronExpr",
    "Interval",
    "Schedule",
    "ScheduleError",
    "describe_interval",
    "load_zone",
    "parse_natural",
    "parse_schedule",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
