"""The scheduler service: enqueue every schedule at its fire times, exactly once.

Schedules come from code (``@app.periodic``) and from the store (``conveyor schedule
add``, ``app.schedule``); both keep their state (paused, last and next run) in the
store (:mod:`conveyor.scheduler.registry`).

Any number of :class:`Scheduler` processes may run against one store. One holds the
leader lease (:class:`~conveyor.coordination.lease.LeaderLease`) and does the work;
the others take over when its lease expires. Exactly-once does not rest on the lease:
each fire time is enqueued with the unique key ``periodic:<name>:<epoch seconds>``,
held by the store for ``lookback + 1 day``, so two leaders overlapping still create
one job per fire time.

Fire times considered on a pass are those in ``(start, now]`` where ``start`` is the
latest of: ``now - lookback``, the schedule's creation or last resumption, the last
fire time any instance enqueued, and what this instance already handled. The
schedule's catch-up policy then picks which to enqueue:

* ``skip``: only fire times at most :data:`SKIP_GRACE` seconds old;
* ``latest``: only the most recent one;
* ``all``: every one, the most recent ``max_catch_up`` at most.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args
from zoneinfo import ZoneInfo

from conveyor.coordination.lease import LeaderLease
from conveyor.errors import ConveyorError, InvalidOption
from conveyor.runtime import Producer
from conveyor.scheduler.defaults import (
    DEFAULT_LEADER_TTL,
    DEFAULT_LOOKBACK,
    DEFAULT_MAX_CATCH_UP,
    LEADER_LEASE,
    MAX_IDLE,
    SKIP_GRACE,
    UNIQUE_MARGIN,
)
from conveyor.scheduler.natural import parse_schedule
from conveyor.scheduler.recurrence import Schedule
from conveyor.scheduler.registry import ScheduleRegistry, StoredSchedule
from conveyor.zones import ScheduleError, load_zone

if TYPE_CHECKING:
    from conveyor.task import Task

__all__ = [
    "DEFAULT_LOOKBACK",
    "DEFAULT_MAX_CATCH_UP",
    "SKIP_GRACE",
    "CatchUp",
    "PeriodicEntry",
    "ScheduledApp",
    "Scheduler",
    "unique_key",
]

log = logging.getLogger("conveyor.scheduler")

CatchUp = Literal["skip", "latest", "all"]
CATCH_UP_POLICIES: tuple[str, ...] = get_args(CatchUp)

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
        schedule, zone, policy = parse_timing(expression, tz, catch_up)
        frozen_args = tuple(args)
        frozen_kwargs = dict(kwargs or {})
        task.check_arguments(frozen_args, frozen_kwargs, False)
        return cls(name, task, expression, schedule, zone, policy, frozen_args, frozen_kwargs)

    def fire_times(self, after: float, until: float) -> list[float]:
        """Fire times (epoch seconds) in ``(after, until]``, oldest first."""
        found: list[float] = []
        cursor = datetime.fromtimestamp(after, UTC)
        size = 2
        while True:
            batch = self.schedule.next_after(cursor, self.zone, size)
            if not batch:  # a one-off that has passed
                return found
            for moment in batch:
                ts = moment.timestamp()
                if ts > until:
                    return found
                found.append(ts)
            cursor = batch[-1]
            size = min(size * 4, _MAX_BATCH)

    def next_fire(self, after: float) -> float | None:
        """The first fire time strictly after ``after`` (epoch seconds); None when there
        is none (a one-off that has passed)."""
        cursor = datetime.fromtimestamp(after, UTC)
        upcoming = self.schedule.next_after(cursor, self.zone, 1)
        return upcoming[0].timestamp() if upcoming else None


def parse_timing(
    expression: str, tz: str | None, catch_up: str
) -> tuple[Schedule, ZoneInfo, CatchUp]:
    """Parse a schedule's expression, zone and catch-up policy (see
    :meth:`PeriodicEntry.build` for the rules)."""
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
    policy: CatchUp = "skip" if catch_up == "skip" else "all" if catch_up == "all" else "latest"
    return schedule, zone, policy


def unique_key(name: str, fire_ts: float) -> str:
    """The unique key of one fire time of the entry ``name``."""
    return f"periodic:{name}:{int(fire_ts)}"


class ScheduledApp(Producer, Protocol):
    """An app as the scheduler sees it: a producer with code-defined periodic entries."""

    @property
    def schedules(self) -> Mapping[str, PeriodicEntry]:
        """Periodic entries by name (``@app.periodic``)."""
        ...


class Scheduler:
    """Enqueues the app's periodic entries and the store's schedules when they are due.

    Safe to run in any number of processes at once: one of them holds the leader lease
    and does the work, the others stand by and take over within ``leader_ttl`` seconds
    if it dies; and even two leaders overlapping enqueue each fire time once.
    """

    def __init__(
        self,
        app: ScheduledApp,
        *,
        lookback: float = DEFAULT_LOOKBACK,
        max_catch_up: int = DEFAULT_MAX_CATCH_UP,
        holder: str | None = None,
        leader_ttl: float = DEFAULT_LEADER_TTL,
    ) -> None:
        if isinstance(lookback, bool) or not math.isfinite(lookback) or lookback <= 0:
            raise InvalidOption("lookback", f"must be a positive number of seconds, not {lookback}")
        if isinstance(max_catch_up, bool) or not isinstance(max_catch_up, int) or max_catch_up < 1:
            raise InvalidOption("max_catch_up", f"must be a positive integer, not {max_catch_up}")
        if isinstance(leader_ttl, bool) or not math.isfinite(leader_ttl) or leader_ttl < 2:
            raise InvalidOption("leader_ttl", f"must be at least 2 seconds, not {leader_ttl}")
        self.app = app
        self.lookback = float(lookback)
        self.max_catch_up = max_catch_up
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.lease = LeaderLease(app.store, LEADER_LEASE, self.holder, ttl=leader_ttl)
        self.registry = ScheduleRegistry(app.store)
        self._handled: dict[str, float] = {}
        """Per entry: fire times up to this one were dealt with by this instance."""
        self._synced: set[str] = set()
        self._reported: set[str] = set()
        self._active: list[PeriodicEntry] = []
        """The unpaused entries of the last pass (code-defined and stored)."""

    @property
    def is_leader(self) -> bool:
        """Whether this instance held the leader lease at its last pass."""
        return self.lease.held

    # which entries -------------------------------------------------------------------------
    def sync(self) -> None:
        """Write the app's code-defined entries to the store (so they can be listed and
        paused, and their runs are kept), keeping the state of ones already there."""
        for entry in self.app.schedules.values():
            self.registry.add(stored_form(entry), replace_existing=True)
            self._synced.add(entry.name)

    def entries(self) -> list[tuple[PeriodicEntry, StoredSchedule | None]]:
        """Every schedule this instance can run, with its stored state."""
        stored = {s.name: s for s in self.registry.list()}
        found: list[tuple[PeriodicEntry, StoredSchedule | None]] = [
            (entry, stored.get(name)) for name, entry in self.app.schedules.items()
        ]
        for state in stored.values():
            if state.source == "code" or state.name in self.app.schedules:
                continue
            entry = self._build(state)
            if entry is not None:
                found.append((entry, state))
        return found

    def _build(self, state: StoredSchedule) -> PeriodicEntry | None:
        task = self.app.tasks.get(state.task)
        problem = ""
        entry = None
        if task is None:
            problem = f"task {state.task!r} is not registered in this app"
        else:
            try:
                entry = PeriodicEntry.build(
                    state.name,
                    task,
                    state.expression,
                    tz=state.tz,
                    catch_up=state.catch_up,
                    args=tuple(state.args),
                    kwargs=state.kwargs,
                )
            except ConveyorError as exc:
                problem = str(exc)
        if entry is None:
            if state.name not in self._reported:
                self._reported.add(state.name)
                log.error("schedule %s cannot run here: %s", state.name, problem)
            return None
        self._reported.discard(state.name)
        return entry

    # when ----------------------------------------------------------------------------------
    def due(
        self, entry: PeriodicEntry, now: float, state: StoredSchedule | None = None
    ) -> list[float]:
        """The fire times of ``entry`` to enqueue at ``now`` under its catch-up policy.

        Never earlier than the lookback, the schedule's creation or resumption, the last
        fire time any instance enqueued, or what this instance already handled."""
        start = now - self.lookback
        if state is not None:
            start = max(start, state.not_before(), state.last_fire_at or start)
        start = max(start, self._handled.get(entry.name, start))
        times = entry.fire_times(start, now)
        if entry.catch_up == "latest":
            return times[-1:]
        if entry.catch_up == "skip":
            times = [ts for ts in times if now - ts <= SKIP_GRACE]
        return times[-self.max_catch_up :]

    # work ----------------------------------------------------------------------------------
    def run_once(self, now: float) -> list[str]:
        """One pass: if this instance is (or becomes) the leader, enqueue every unpaused
        schedule's due fire times. Returns the ids of jobs created now.

        A fire time another process already enqueued comes back as a duplicate and is
        not returned. A schedule whose enqueue fails is logged and retried next pass.
        """
        if not self.lease.acquire():
            return []
        if not self._synced.issuperset(self.app.schedules):
            self.sync()
        created: list[str] = []
        entries = self.entries()
        self._active = [entry for entry, state in entries if state is None or not state.paused]
        for entry, state in entries:
            if state is not None and state.paused:
                self._handled[entry.name] = now
                continue
            try:
                created.extend(self._run_entry(entry, state, now))
            except ConveyorError:
                log.exception("schedule %s: enqueue failed; will retry", entry.name)
        return created

    def _run_entry(
        self, entry: PeriodicEntry, state: StoredSchedule | None, now: float
    ) -> list[str]:
        created: list[str] = []
        last_fire: float | None = None
        last_job: str | None = None
        for fire_ts in self.due(entry, now, state):
            key = unique_key(entry.name, fire_ts)
            options = entry.task.job_options.merged(
                unique_key=key, unique_for=self.lookback + UNIQUE_MARGIN
            )
            handle = self.app.enqueue_task(entry.task, entry.args, dict(entry.kwargs), options)
            fired = datetime.fromtimestamp(fire_ts, entry.zone).isoformat()
            if handle.duplicate:
                log.debug("schedule %s at %s: already enqueued as %s", entry.name, fired, handle.id)
            else:
                log.info("schedule %s at %s: enqueued job %s", entry.name, fired, handle.id)
                created.append(handle.id)
            last_fire, last_job = fire_ts, handle.id
        self._handled[entry.name] = now
        next_fire = entry.next_fire(now)
        if state is not None and (last_fire is not None or state.next_fire_at != next_fire):
            self.registry.mark(
                entry.name, last_fire_at=last_fire, last_job_id=last_job, next_fire_at=next_fire
            )
        return created

    def next_wake(self, now: float) -> float:
        """Seconds to sleep after a pass at ``now``: until the next fire time, at most 1 s."""
        delay = MAX_IDLE
        for entry in self._active or self.app.schedules.values():
            upcoming = entry.next_fire(now)
            if upcoming is not None:
                delay = min(delay, upcoming - now)
        return max(0.0, delay)

    def run(self, stop: threading.Event) -> None:
        """Pass after pass until ``stop`` is set (at least one pass is made); the time
        comes from ``app.clock``. The leader lease is given up on the way out."""
        read_now = self.app.clock.now
        log.info(
            "scheduler %s started: %d periodic entr%s in code",
            self.holder,
            len(self.app.schedules),
            "y" if len(self.app.schedules) == 1 else "ies",
        )
        try:
            while True:
                try:
                    self.run_once(read_now())
                    delay = self.next_wake(read_now())
                except Exception:
                    log.exception("scheduler pass failed; retrying in %.0f s", MAX_IDLE)
                    delay = MAX_IDLE
                if stop.wait(delay):
                    break
        finally:
            try:
                self.lease.release()
            except ConveyorError as exc:
                log.warning("could not give up the leader lease (%s); it expires", exc)
            log.info("scheduler %s stopped", self.holder)


def stored_form(entry: PeriodicEntry) -> StoredSchedule:
    """The store record of a code-defined entry."""
    return StoredSchedule(
        name=entry.name,
        task=entry.task.name,
        expression=entry.expression,
        tz=str(entry.zone.key),
        catch_up=entry.catch_up,
        args=list(entry.args),
        kwargs=dict(entry.kwargs),
        source="code",
    )
