"""The storage a Python-side driver gives the transitions: a table of jobs, written once.

The memory store (a dict under a lock) and the file store (files under a transaction)
both hold jobs as :class:`~conveyor.job.Job` values and change them in Python. They
implement the small :class:`JobTable` protocol; :func:`apply` carries out a
:class:`~conveyor.stores.transitions.Step` on it (the dependents walk lives here, once),
and :class:`conveyor.stores.table_store.TableStore` writes every job hook over it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from conveyor.job import Job, JobState
from conveyor.stores import transitions
from conveyor.stores.enqueue_plan import KeyHold, PlannedJob, Reads, Stored
from conveyor.stores.transitions import Effect, Step


class KeyKind(Enum):
    """The two kinds of key a job can hold."""

    UNIQUE = "unique"
    IDEMPOTENCY = "idempotency"


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A stored key hold: its job, until when (None: while the job is active), and the
    fingerprint of the job's arguments (idempotency keys)."""

    job_id: str
    expires_at: float | None
    fingerprint: str = ""


class JobTable(Protocol):
    """Jobs, dependency lists and key holds, read and written inside one atomic step."""

    def job(self, job_id: str) -> Job | None:
        """The job as this step sees it (None: unknown or deleted)."""

    def put(self, job: Job) -> None:
        """Store the job's new version (insert or update)."""

    def drop(self, job_id: str) -> None:
        """Delete the job."""

    def add_dependent(self, job_id: str, dependent: str) -> None:
        """Record that ``dependent`` waits on ``job_id``."""

    def pop_dependents(self, job_id: str) -> list[str]:
        """The jobs waiting on ``job_id``; forget the list."""

    def wake(self) -> None:
        """Tell waiting workers that work may be available (once the step is done)."""

    def hold(self, kind: KeyKind, key: str) -> KeyRow | None:
        """The hold on ``key``, or None."""

    def put_hold(self, kind: KeyKind, key: str, row: KeyRow) -> None:
        """Set the hold on ``key``."""

    def drop_hold(self, kind: KeyKind, key: str) -> None:
        """Remove the hold on ``key``."""

    def holds(self, kind: KeyKind) -> list[tuple[str, KeyRow]]:
        """Every stored hold of ``kind`` as ``(key, row)``."""


_Rule = Callable[[Job, float], Step]


def apply(table: JobTable, step: Step, now: float) -> None:
    """Store the step's job and carry out its effects: waiting workers woken, dependents
    released or failed by their policy (transitively), each read when its turn comes."""
    table.put(step.job)
    if not step.effects:
        return
    if Effect.WAKE in step.effects:
        table.wake()
    rule = _dependents_rule(step)
    if rule is None:
        return
    work = [(rule, d) for d in table.pop_dependents(step.job.id)]
    while work:
        rule, dep_id = work.pop()
        dep = table.job(dep_id)
        if dep is None or dep.state is not JobState.BLOCKED:
            continue
        follow = rule(dep, now)
        table.put(follow.job)
        if Effect.WAKE in follow.effects:
            table.wake()
        next_rule = _dependents_rule(follow)
        if next_rule is not None:
            work.extend((next_rule, d) for d in table.pop_dependents(dep_id))


def _dependents_rule(step: Step) -> _Rule | None:
    if Effect.RELEASE_DEPENDENTS in step.effects:
        return transitions.unblocked
    if Effect.FAIL_DEPENDENTS in step.effects:
        return transitions.dependency_failed
    return None


def fail_dependents(table: JobTable, job_id: str, now: float) -> None:
    """Give every blocked job waiting on ``job_id`` (deleted, or dead-lettered outside the
    rules) its policy, transitively."""
    for dep_id in table.pop_dependents(job_id):
        dep = table.job(dep_id)
        if dep is not None and dep.state is JobState.BLOCKED:
            apply(table, transitions.dependency_failed(dep, now), now)


# enqueue ---------------------------------------------------------------------------------
def stored_for(table: JobTable, reads: Reads) -> Stored:
    """What the enqueue planner needs to know of the stored jobs and key holds."""
    states = {}
    for job_id in reads.job_ids:
        job = table.job(job_id)
        if job is not None:
            states[job_id] = job.state
    unique = _key_holds(table, KeyKind.UNIQUE, reads.unique_keys)
    idempotency = _key_holds(table, KeyKind.IDEMPOTENCY, reads.idempotency_keys)
    return Stored(states, unique, idempotency)


def _key_holds(table: JobTable, kind: KeyKind, keys: tuple[str, ...]) -> dict[str, KeyHold]:
    found = {}
    for key in keys:
        row = table.hold(kind, key)
        if row is not None:
            holder = table.job(row.job_id)
            state = None if holder is None else holder.state
            found[key] = KeyHold(row.job_id, row.expires_at, state, row.fingerprint)
    return found


def insert(table: JobTable, planned: PlannedJob, now: float) -> None:
    """Store a planned job with its dependency edges and key holds."""
    apply(table, transitions.created(planned, now), now)
    new = planned.job
    for dep in planned.open_deps:
        table.add_dependent(dep, new.id)
    if new.unique_key:
        expires = None if new.unique_for is None else now + new.unique_for
        table.put_hold(KeyKind.UNIQUE, new.unique_key, KeyRow(new.id, expires))
    if new.idempotency_key:
        row = KeyRow(new.id, now + new.idempotency_for, new.fingerprint)
        table.put_hold(KeyKind.IDEMPOTENCY, new.idempotency_key, row)


# key holds at prune ----------------------------------------------------------------------
def drop_holds_of(table: JobTable, job: Job) -> int:
    """Remove the key holds ``job`` (about to be deleted) owns; return how many."""
    dropped = 0
    for kind, key in ((KeyKind.UNIQUE, job.unique_key), (KeyKind.IDEMPOTENCY, job.idempotency_key)):
        row = table.hold(kind, key) if key else None
        if key and row is not None and row.job_id == job.id:
            table.drop_hold(kind, key)
            dropped += 1
    return dropped


def drop_orphan_holds(table: JobTable, now: float) -> int:
    """Remove holds whose job is gone or whose window has passed; return how many."""
    dropped = 0
    for kind in KeyKind:
        for key, row in table.holds(kind):
            gone = table.job(row.job_id) is None
            if gone or (row.expires_at is not None and row.expires_at <= now):
                table.drop_hold(kind, key)
                dropped += 1
    return dropped
