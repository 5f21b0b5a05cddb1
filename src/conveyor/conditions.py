"""Conditions: decide just before a job runs whether it runs now, later, or not at all.

Attach them to a task (``@app.task(conditions=[...])``) or to one job
(``task.with_options(conditions=[...]).enqueue(...)``; stored with the job). Each
condition either lets the job run or returns a :class:`Decision` that defers it
(put back, not failed, no attempt used) or skips it (ended as cancelled). The first
condition that objects decides; every decision is recorded on the job
(:attr:`conveyor.app.JobInfo.decisions`).

Built in: :class:`QueueDepth`, :class:`TimeWindow`, :class:`SystemLoad`,
:class:`FreeMemory`, :class:`JobStateIs` and :class:`Predicate` (a function registered
with ``@app.condition``).
"""

from __future__ import annotations

import abc
import contextlib
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from conveyor.errors import InvalidOption
from conveyor.job import TERMINAL_STATES, JobState
from conveyor.zones import load_zone

if TYPE_CHECKING:
    from conveyor.coordination.limits import JobArguments
    from conveyor.job import Job
    from conveyor.stores.base import Store

Action = Literal["run", "skip", "defer"]
Otherwise = Literal["skip", "defer"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Decision:
    """What a condition decided, with a reason a person can read."""

    action: Action
    reason: str
    condition: str = ""
    delay: float | None = None
    """Seconds to wait before the job is tried again (``defer`` only)."""


@dataclass(frozen=True, slots=True)
class ConditionContext:
    """What a condition may look at."""

    job: Job
    store: Store
    now: float
    arguments: Callable[[], JobArguments]
    predicates: Mapping[str, Callable[[ConditionContext], object]]


def _otherwise(value: object) -> Otherwise:
    if value not in ("skip", "defer"):
        raise InvalidOption("otherwise", f"must be 'skip' or 'defer', not {value!r}")
    return "skip" if value == "skip" else "defer"


def _delay(value: object, field: str = "delay") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidOption(field, f"must be a positive number of seconds, not {value!r}")
    if value <= 0:
        raise InvalidOption(field, f"must be a positive number of seconds, not {value!r}")
    return float(value)


def _bound(value: object, field: str) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or value < 0
    ):
        raise InvalidOption(field, f"must be a non-negative number or None, not {value!r}")


class Condition(abc.ABC):
    """Base of the built-in conditions: a spec that can be stored with a job."""

    kind: ClassVar[str] = ""
    otherwise: Otherwise
    delay: float

    @abc.abstractmethod
    def check(self, ctx: ConditionContext) -> Decision | None:
        """None to let the job run, else the decision."""

    def _check_objection(self) -> None:
        """Check ``otherwise`` and ``delay`` (every condition has them), on creation."""
        _otherwise(self.otherwise)
        object.__setattr__(self, "delay", _delay(self.delay))

    def objection(self, reason: str, delay: float | None = None) -> Decision:
        """The decision this condition makes when it is not met."""
        if self.otherwise == "skip":
            return Decision("skip", reason, self.kind)
        return Decision("defer", reason, self.kind, delay if delay is not None else self.delay)

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description (stored with the job)."""
        spec: dict[str, Any] = {"kind": self.kind}
        spec.update(asdict(self))  # type: ignore[call-overload]
        return spec


@dataclass(frozen=True, slots=True)
class QueueDepth(Condition):
    """Run only while the queue (default: the job's own) holds at most ``max`` / at least
    ``min`` pending jobs."""

    kind: ClassVar[str] = "queue_depth"
    max: int | None = None
    min: int | None = None
    queue: str | None = None
    otherwise: Otherwise = "defer"
    delay: float = 30.0

    def __post_init__(self) -> None:
        _bound(self.max, "max")
        _bound(self.min, "min")
        if self.max is None and self.min is None:
            raise InvalidOption("max", "give max, min or both")
        self._check_objection()

    def check(self, ctx: ConditionContext) -> Decision | None:
        queue = self.queue or ctx.job.queue
        depth = sum(
            s.counts.get(JobState.PENDING.value, 0) for s in ctx.store.stats() if s.queue == queue
        )
        if self.max is not None and depth > self.max:
            return self.objection(f"queue {queue!r} holds {depth} pending jobs (max {self.max})")
        if self.min is not None and depth < self.min:
            return self.objection(f"queue {queue!r} holds {depth} pending jobs (min {self.min})")
        return None


@dataclass(frozen=True, slots=True)
class TimeWindow(Condition):
    """Run only between ``start`` and ``end`` (``HH:MM``, wall time in ``tz``; ``end`` is
    exclusive and may be ``24:00``) on ``days``.

    A window whose end is before its start spans midnight (``22:00`` to ``06:00``). A job
    deferred by it waits exactly until the window next opens."""

    kind: ClassVar[str] = "time_window"
    start: str = "00:00"
    end: str = "24:00"
    tz: str = "UTC"
    days: tuple[str, ...] = DAYS
    otherwise: Otherwise = "defer"
    delay: float = 60.0

    def __post_init__(self) -> None:
        for field in ("start", "end"):
            value = getattr(self, field)
            end_of_day = field == "end" and value == "24:00"
            if not isinstance(value, str) or not (_CLOCK.match(value) or end_of_day):
                raise InvalidOption(field, f"must be HH:MM (end may be 24:00), not {value!r}")
        if self.start == self.end:
            raise InvalidOption("end", "equals start: the window would be empty")
        load_zone(self.tz)
        days = tuple(d.lower()[:3] for d in self.days) if not isinstance(self.days, str) else ()
        if not days or any(d not in DAYS for d in days):
            raise InvalidOption("days", f"must be a list of {', '.join(DAYS)}, not {self.days!r}")
        object.__setattr__(self, "days", days)
        self._check_objection()

    def _minutes(self, text: str) -> int:
        hours, minutes = text.split(":")
        return int(hours) * 60 + int(minutes)

    def is_open(self, moment: datetime) -> bool:
        """True if the window is open at ``moment`` (an aware datetime in ``tz``)."""
        start, end = self._minutes(self.start), self._minutes(self.end)
        minute = moment.hour * 60 + moment.minute
        day = DAYS[moment.weekday()]
        previous = DAYS[(moment.weekday() - 1) % 7]
        if start < end:
            return day in self.days and start <= minute < end
        # spans midnight: the part after midnight belongs to the previous day's window
        return (day in self.days and minute >= start) or (previous in self.days and minute < end)

    def next_open(self, after: float) -> float:
        """The first time at or after ``after`` when the window is open (epoch seconds)."""
        zone = load_zone(self.tz)
        moment = datetime.fromtimestamp(after, UTC).astimezone(zone)
        start = self._minutes(self.start)
        for offset in range(0, 9):
            day = (moment + timedelta(days=offset)).date()
            opening = datetime(day.year, day.month, day.day, start // 60, start % 60, tzinfo=zone)
            opening_ts = opening.astimezone(UTC).timestamp()
            if opening_ts >= after and self.is_open(opening.astimezone(zone)):
                return opening_ts
        return after + self.delay

    def check(self, ctx: ConditionContext) -> Decision | None:
        moment = datetime.fromtimestamp(ctx.now, UTC).astimezone(load_zone(self.tz))
        if self.is_open(moment):
            return None
        opens = self.next_open(ctx.now)
        when = datetime.fromtimestamp(opens, UTC).astimezone(load_zone(self.tz))
        return self.objection(
            f"outside {self.start}-{self.end} {self.tz}; next opens {when.isoformat()}",
            max(opens - ctx.now, 1.0),
        )


def load_per_cpu() -> float:
    """The one-minute load average divided by the number of CPUs."""
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def available_memory() -> int:
    """Bytes of memory available to new work (``MemAvailable`` on Linux)."""
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class SystemLoad(Condition):
    """Run only while this machine's load average per CPU is at most ``max_per_cpu``."""

    kind: ClassVar[str] = "system_load"
    max_per_cpu: float = 1.0
    otherwise: Otherwise = "defer"
    delay: float = 30.0

    def __post_init__(self) -> None:
        _bound(self.max_per_cpu, "max_per_cpu")
        self._check_objection()

    def check(self, ctx: ConditionContext) -> Decision | None:
        load = load_per_cpu()
        if load > self.max_per_cpu:
            return self.objection(f"load {load:.2f} per CPU is above {self.max_per_cpu:g}")
        return None


@dataclass(frozen=True, slots=True)
class FreeMemory(Condition):
    """Run only while at least ``min_mb`` MiB of memory are available on this machine."""

    kind: ClassVar[str] = "free_memory"
    min_mb: int = 256
    otherwise: Otherwise = "defer"
    delay: float = 30.0

    def __post_init__(self) -> None:
        _bound(self.min_mb, "min_mb")
        self._check_objection()

    def check(self, ctx: ConditionContext) -> Decision | None:
        free_mb = available_memory() >> 20
        if free_mb < self.min_mb:
            return self.objection(f"{free_mb} MiB available, below {self.min_mb} MiB")
        return None


@dataclass(frozen=True, slots=True)
class JobStateIs(Condition):
    """Run only once another job is in one of ``states`` (default: completed).

    If that job ends in another state (or does not exist), waiting is pointless and the
    job is skipped."""

    kind: ClassVar[str] = "job_state"
    job_id: str = ""
    states: tuple[str, ...] = ("completed",)
    otherwise: Otherwise = "defer"
    delay: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.job_id, str) or not self.job_id:
            raise InvalidOption("job_id", "must be the id of the job to wait for")
        states = (self.states,) if isinstance(self.states, str) else tuple(self.states)
        known = {s.value for s in JobState}
        if not states or any(s not in known for s in states):
            raise InvalidOption("states", f"must be job states among {', '.join(sorted(known))}")
        object.__setattr__(self, "states", states)
        self._check_objection()

    def check(self, ctx: ConditionContext) -> Decision | None:
        other = ctx.store.get(self.job_id)
        if other is not None and other.state.value in self.states:
            return None
        wanted = " or ".join(self.states)
        if other is None:
            return Decision("skip", f"job {self.job_id} does not exist", self.kind)
        if other.state in TERMINAL_STATES:
            return Decision(
                "skip", f"job {self.job_id} ended {other.state.value}, not {wanted}", self.kind
            )
        return self.objection(f"job {self.job_id} is {other.state.value}, not {wanted}")


@dataclass(frozen=True, slots=True)
class Predicate(Condition):
    """Run only if the function registered as ``name`` (``@app.condition``) returns true.

    The function receives a :class:`ConditionContext` and returns a bool (or a
    :class:`Decision` to choose the action and reason itself)."""

    kind: ClassVar[str] = "predicate"
    name: str = ""
    otherwise: Otherwise = "skip"
    delay: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidOption("name", "must name a function registered with @app.condition")
        self._check_objection()

    def check(self, ctx: ConditionContext) -> Decision | None:
        fn = ctx.predicates.get(self.name)
        if fn is None:
            return self.objection(f"no condition registered as {self.name!r} in this worker")
        verdict = fn(ctx)
        if isinstance(verdict, Decision):
            if verdict.action == "run":
                return None
            delay = verdict.delay
            if verdict.action == "defer" and delay is None:
                delay = self.delay  # not the executor's 1 s fallback: that would poll
            return replace(verdict, condition=verdict.condition or self.kind, delay=delay)
        return None if verdict else self.objection(f"{self.name} returned {verdict!r}")


CONDITION_KINDS: Mapping[str, type[Condition]] = {
    cls.kind: cls for cls in (QueueDepth, TimeWindow, SystemLoad, FreeMemory, JobStateIs, Predicate)
}


def condition_from_spec(spec: object) -> Condition:
    """Rebuild a condition stored with a job.

    Raises:
        InvalidOption: not a spec of a known kind, or bad fields.
    """
    if not isinstance(spec, dict) or spec.get("kind") not in CONDITION_KINDS:
        raise InvalidOption("conditions", f"{spec!r} is not a stored condition")
    cls = CONDITION_KINDS[spec["kind"]]
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k in names}
    return cls(**values)


def check_conditions(conditions: object) -> tuple[Condition, ...]:
    """Validate a list of conditions given to a task or a job."""
    if isinstance(conditions, Condition):
        conditions = (conditions,)
    if not isinstance(conditions, Sequence) or isinstance(conditions, str):
        raise InvalidOption("conditions", "must be a list of conditions such as TimeWindow(...)")
    for item in conditions:
        if not isinstance(item, Condition):
            raise InvalidOption("conditions", f"{item!r} is not a condition")
    return tuple(conditions)


def evaluate(conditions: Sequence[Condition], ctx: ConditionContext) -> Decision | None:
    """The first objection among ``conditions``, or None to run."""
    for condition in conditions:
        decision = condition.check(ctx)
        if decision is not None:
            return decision
    return None
