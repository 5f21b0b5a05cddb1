"""The scheduler service: enqueue each code-defined periodic entry at its fire times.

Any number of :class:`Scheduler` processes may run against one store. Each fire time
is enqueued with the unique key ``periodic:<name>:<epoch seconds>``, held by the store
for ``lookback + 1 day``; the store enforces unique keys atomically, so whichever
process comes first creates the job and the others get a duplicate result back.

Fire times considered on each pass are those in ``(now - lookback, now]`` that this
instance has not handled yet; the entry's catch-up policy then picks which to enqueue:

* ``skip``: only fire times at most :data:`SKIP_GRACE` seconds old;
* ``latest``: only the most recent one;
* ``all``: every one, the most recent ``max_catch_up`` at most.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, get_args
from zoneinfo import ZoneInfo

from conveyor.errors import ConveyorError, InvalidOption
from conveyor.scheduler.cron import ScheduleError, load_zone
from conveyor.scheduler.natural import parse_schedule
from conveyor.scheduler.recurrence import Schedule

if TYPE_CHECKING:
    from conveyor.app import App
    from conveyor.task import Task

__all__ = [
    "DEFAULT_LOOKBACK",
    "DEFAULT_MAX_CATCH_UP",
    "SKIP_GRACE",
    "CatchUp",
    "PeriodicEntry",
    "Scheduler",
    "unique_key",
]

log = logging.getLogger("conveyor.scheduler")

CatchUp = Literal["skip", "latest", "all"]
CATCH_UP_POLICIES: tuple[str, ...] = get_args(CatchUp)

DEFAULT_LOOKBACK = 3600.0
"""Seconds back from now in which missed fire times are still considered."""
DEFAULT_MAX_CATCH_UP = 100
"""Most fire times one entry enqueues in one pass (policy ``all``)."""
SKIP_GRACE = 60.0
"""Policy ``skip``: fire times older than this many seconds are not enqueued."""
UNIQUE_MARGIN = 86400.0
"""Unique keys are held for ``lookback`` plus this long."""
MAX_IDLE = 1.0
"""The service loop never sleeps longer than this many seconds."""
_MAX_BATCH = 512


@dataclass(frozen=True, slots=True)
class PeriodicEntry:
    """A task enqueued on a schedule (see :meth:`conveyor.app.App.periodic`)."""

    name: str
    task: Task[Any, Any]
    expression: str
    schedule: Schedule
    zone: ZoneInfo
    catch_up: CatchUp = "latest"
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        name: str,
        task: Task[Any, Any],
        expression: str,
        *,
        tz: str | None = None,
        catch_up: str = "latest",
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> PeriodicEntry:
        """Parse and check everything now, so a bad entry fails where it is declared.

        The zone is the one named in the expression (``… in Europe/Berlin``), else
        ``tz``, else UTC; naming two different zones is refused.

        Raises:
            ScheduleError: the expression or the zone is not understood.
            InvalidOption: unknown ``catch_up``, or arguments the task cannot take.
        """
        if not isinstance(expression, str):
            raise ScheduleError("schedule", "must be a string, e.g. 'every 5 minutes'")
        schedule = parse_schedule(expression)
        if tz is not None:
            load_zone(tz)
            if schedule.tz is not None and tz.strip() != schedule.tz:
                raise ScheduleError(
                    "tz", f"{tz!r} differs from the zone {schedule.tz!r} named in the expression"
                )
        zone = load_zone(schedule.tz or (tz.strip() if tz else "UTC"))
        if catch_up not in CATCH_UP_POLICIES:
            raise InvalidOption(
                "catch_up", f"{catch_up!r} is not one of {', '.join(CATCH_UP_POLICIES)}"
            )
        frozen_args = tuple(args)
        frozen_kwargs = dict(kwargs or {})
        task.check_arguments(frozen_args, frozen_kwargs, False)
        policy: CatchUp = "skip" if catch_up == "skip" else "all" if catch_up == "all" else "latest"
        return cls(name, task, expression, schedule, zone, policy, frozen_args, frozen_kwargs)

    def fire_times(self, after: float, until: float) -> list[float]:
        """Fire times (epoch seconds) in ``(after, until]``, oldest first."""
        found: list[float] = []
        cursor = datetime.fromtimestamp(after, UTC)
        size = 2
        while True:
            batch = self.schedule.next_after(cursor, self.zone, size)
            for moment in batch:
                ts = moment.timestamp()
                if ts > until:
                    return found
                found.append(ts)
            cursor = batch[-1]
            size = min(size * 4, _MAX_BATCH)

    def next_fire(self, after: float) -> float:
        """The first fire time strictly after ``after`` (epoch seconds)."""
        cursor = datetime.fromtimestamp(after, UTC)
        return self.schedule.next_after(cursor, self.zone, 1)[0].timestamp()


def unique_key(name: str, fire_ts: float) -> str:
    """The unique key of one fire time of the entry ``name``."""
    return f"periodic:{name}:{int(fire_ts)}"


class Scheduler:
    """Enqueues the app's periodic entries (``app.schedules``) when they are due.

    Safe to run in any number of processes at once: each fire time becomes one job.
    """

    def __init__(
        self,
        app: App,
        *,
        lookback: float = DEFAULT_LOOKBACK,
        max_catch_up: int = DEFAULT_MAX_CATCH_UP,
    ) -> None:
        if isinstance(lookback, bool) or not math.isfinite(lookback) or lookback <= 0:
            raise InvalidOption("lookback", f"must be a positive number of seconds, not {lookback}")
        if isinstance(max_catch_up, bool) or not isinstance(max_catch_up, int) or max_catch_up < 1:
            raise InvalidOption("max_catch_up", f"must be a positive integer, not {max_catch_up}")
        self.app = app
        self.lookback = float(lookback)
        self.max_catch_up = max_catch_up
        self._handled: dict[str, float] = {}
        """Per entry: fire times up to this one were dealt with by this instance."""

    def due(self, entry: PeriodicEntry, now: float) -> list[float]:
        """The fire times of ``entry`` to enqueue at ``now`` under its catch-up policy."""
        start = now - self.lookback
        start = max(start, self._handled.get(entry.name, start))
        times = entry.fire_times(start, now)
        if entry.catch_up == "latest":
            return times[-1:]
        if entry.catch_up == "skip":
            times = [ts for ts in times if now - ts <= SKIP_GRACE]
        return times[-self.max_catch_up :]

    def run_once(self, now: float) -> list[str]:
        """Enqueue every entry's due fire times; return the ids of jobs created now.

        A fire time another process already enqueued comes back as a duplicate and is
        not returned. An entry whose enqueue fails is logged and retried next pass.
        """
        created: list[str] = []
        for entry in list(self.app.schedules.values()):
            try:
                created.extend(self._run_entry(entry, now))
            except ConveyorError:
                log.exception("periodic %s: enqueue failed; will retry", entry.name)
        return created

    def _run_entry(self, entry: PeriodicEntry, now: float) -> list[str]:
        created: list[str] = []
        for fire_ts in self.due(entry, now):
            key = unique_key(entry.name, fire_ts)
            options = entry.task.job_options.merged(
                unique_key=key, unique_for=self.lookback + UNIQUE_MARGIN
            )
            handle = self.app.enqueue_task(entry.task, entry.args, dict(entry.kwargs), options)
            fired = datetime.fromtimestamp(fire_ts, entry.zone).isoformat()
            if handle.duplicate:
                log.debug("periodic %s at %s: already enqueued as %s", entry.name, fired, handle.id)
            else:
                log.info("periodic %s at %s: enqueued job %s", entry.name, fired, handle.id)
                created.append(handle.id)
        self._handled[entry.name] = now
        return created

    def next_wake(self, now: float) -> float:
        """Seconds to sleep after a pass at ``now``: until the next fire time, at most 1 s."""
        delay = MAX_IDLE
        for entry in self.app.schedules.values():
            delay = min(delay, entry.next_fire(now) - now)
        return max(0.0, delay)

    def run(self, stop: threading.Event) -> None:
        """Pass after pass until ``stop`` is set (at least one pass is made); the time
        comes from ``app.clock``."""
        read_now = self.app.clock.now
        log.info(
            "scheduler started: %d periodic entr%s",
            len(self.app.schedules),
            "y" if len(self.app.schedules) == 1 else "ies",
        )
        while True:
            current = read_now()
            try:
                self.run_once(current)
                delay = self.next_wake(read_now())
            except Exception:
                log.exception("scheduler pass failed; retrying in %.0f s", MAX_IDLE)
                delay = MAX_IDLE
            if stop.wait(delay):
                break
        log.info("scheduler stopped")
