"""Schedules kept in the store: what ``conveyor schedule add`` and ``app.schedule`` write,
and the state of every schedule (paused, last and next run) that the scheduler keeps.

One record per schedule in the namespace ``schedule``. Schedules declared in code
(``@app.periodic``) get a record too (``source="code"``), so they can be listed,
paused and resumed like the others and their last/next run shows in ``schedule list``;
only code can remove them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from conveyor.coordination.cas import update_record
from conveyor.errors import ConveyorError, InvalidOption
from conveyor.stores.base import Store

NAMESPACE = "schedule"
SOURCES = ("code", "store")


class ScheduleNotFound(ConveyorError):
    """No schedule of that name in the store."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no schedule named {name!r}; see `conveyor schedule list`")


class ScheduleExists(InvalidOption):
    """``schedule add`` of a name that is taken (use ``--replace``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            "name", f"a schedule named {name!r} already exists; pass --replace to change it"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSchedule:
    """A schedule as the store keeps it."""

    name: str
    task: str
    expression: str
    tz: str | None = None
    catch_up: str = "latest"
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    source: str = "store"
    """``code`` (``@app.periodic``) or ``store`` (CLI, ``app.schedule``)."""
    paused: bool = False
    created_at: float = 0.0
    """Fire times before this are never enqueued (a new schedule does not catch up)."""
    resumed_at: float | None = None
    """Fire times before this are never enqueued (nothing is caught up from a pause)."""
    last_fire_at: float | None = None
    """The latest fire time enqueued."""
    last_job_id: str | None = None
    next_fire_at: float | None = None

    def to_json(self) -> bytes:
        """Encoded for the store."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> StoredSchedule:
        """Decode a record; a damaged one raises :class:`InvalidOption`."""
        try:
            data = orjson.loads(raw)
            return cls(**{k: v for k, v in data.items() if k in _FIELDS})
        except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
            raise InvalidOption("schedule", f"stored schedule is damaged: {exc}") from exc

    def not_before(self) -> float:
        """Fire times before this are never enqueued."""
        return max(self.created_at, self.resumed_at or 0.0)

    def to_dict(self) -> dict[str, Any]:
        """For ``-o json``: times as ISO-8601 UTC strings, like the job commands."""
        data = asdict(self)
        for key in _TIME_FIELDS:
            data[key] = _iso(data[key])
        return data


_FIELDS = frozenset(StoredSchedule.__dataclass_fields__)
_TIME_FIELDS = ("created_at", "resumed_at", "last_fire_at", "next_fire_at")


def _iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC (None, and 0 meaning "never", stay None)."""
    if not ts or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\0" in name:
        raise InvalidOption(
            "name", f"must be a non-empty string of at most 200 characters: {name!r}"
        )
    return name.strip()


class ScheduleRegistry:
    """Reads and writes stored schedules (every write is compare-and-set)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, name: str) -> StoredSchedule | None:
        """The schedule, or None."""
        record = self.store.get_record(NAMESPACE, _check_name(name))
        return None if record is None else StoredSchedule.from_json(record.value)

    def require(self, name: str) -> StoredSchedule:
        """The schedule (:class:`ScheduleNotFound` if missing)."""
        found = self.get(name)
        if found is None:
            raise ScheduleNotFound(name)
        return found

    def list(self) -> list[StoredSchedule]:
        """Every stored schedule, by name (damaged records are skipped)."""
        found: list[StoredSchedule] = []
        for record in self.store.list_records(NAMESPACE):
            try:
                found.append(StoredSchedule.from_json(record.value))
            except InvalidOption:
                continue
        return found

    def add(self, schedule: StoredSchedule, *, replace_existing: bool = False) -> StoredSchedule:
        """Store a new schedule, or change one (``replace_existing``), keeping its run state
        and pause when the definition is unchanged.

        Raises:
            ScheduleExists: the name is taken and ``replace_existing`` is false, or it
                belongs to a code-defined schedule.
        """
        name = _check_name(schedule.name)

        def change(raw: bytes | None, now: float) -> tuple[bytes | None, None, StoredSchedule]:
            current = None if raw is None else StoredSchedule.from_json(raw)
            if current is not None and current.source == "code" != schedule.source:
                raise InvalidOption(
                    "name", f"{name!r} is defined in code (@app.periodic); pick another name"
                )
            if current is not None and not replace_existing:
                raise ScheduleExists(name)
            new = replace(schedule, name=name, created_at=now)
            if current is not None:
                new = _carry_state(current, new)
            if current == new:
                return None, None, current
            return new.to_json(), None, new

        return update_record(self.store, NAMESPACE, name, change)

    def remove(self, name: str) -> None:
        """Delete a stored schedule.

        Raises:
            ScheduleNotFound: no such schedule.
            InvalidOption: it is defined in code (remove it from the code instead).
        """
        current = self.require(name)
        if current.source == "code":
            raise InvalidOption(
                "name", f"{name!r} is defined in code (@app.periodic); remove it from the code"
            )
        self.store.delete_record(NAMESPACE, current.name)

    def set_paused(self, name: str, paused: bool) -> StoredSchedule:
        """Pause or resume; resuming never enqueues the fire times missed while paused."""
        return self._update(
            name,
            lambda s, now: (
                replace(s, paused=paused, resumed_at=s.resumed_at if paused else now)
                if s.paused != paused
                else s
            ),
        )

    def mark(
        self,
        name: str,
        *,
        last_fire_at: float | None,
        last_job_id: str | None,
        next_fire_at: float | None,
    ) -> StoredSchedule:
        """Record a run (the latest fire time enqueued) and the next fire time."""

        def change(s: StoredSchedule, now: float) -> StoredSchedule:
            newer = last_fire_at is not None and (
                s.last_fire_at is None or last_fire_at > s.last_fire_at
            )
            return replace(
                s,
                last_fire_at=last_fire_at if newer else s.last_fire_at,
                last_job_id=last_job_id if newer else s.last_job_id,
                next_fire_at=next_fire_at,
            )

        return self._update(name, change)

    def _update(
        self, name: str, edit: Callable[[StoredSchedule, float], StoredSchedule]
    ) -> StoredSchedule:
        key = _check_name(name)

        def change(raw: bytes | None, now: float) -> tuple[bytes | None, None, StoredSchedule]:
            if raw is None:
                raise ScheduleNotFound(key)
            current = StoredSchedule.from_json(raw)
            new = edit(current, now)
            return (None if new == current else new.to_json()), None, new

        return update_record(self.store, NAMESPACE, key, change)


def _carry_state(current: StoredSchedule, new: StoredSchedule) -> StoredSchedule:
    """Keep pause and run history across a re-declaration; the creation time and the
    last run stay unless the schedule itself (expression or zone) changed."""
    same_timing = (current.expression, current.tz) == (new.expression, new.tz)
    return replace(
        new,
        paused=current.paused,
        created_at=current.created_at if same_timing else new.created_at,
        resumed_at=current.resumed_at,
        last_fire_at=current.last_fire_at,
        last_job_id=current.last_job_id,
        next_fire_at=current.next_fire_at if same_timing else None,
    )
