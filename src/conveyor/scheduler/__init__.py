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

from conveyor.scheduler.cron import MACROS, CronExpr, ScheduleError, load_zone
from conveyor.scheduler.natural import ACCEPTED_FORMS, parse_natural, parse_schedule
from conveyor.scheduler.recurrence import EPOCH, Interval, Schedule, describe_interval

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
