"""The one enqueue planner: what each job of a batch becomes, for every driver.

A driver asks :func:`reads_for` what it must look up (stored dependency states and the
holds on the batch's unique and idempotency keys), reads that inside its transaction
(or script), hands it to :func:`plan_enqueue` and writes the plan. The planner does no
I/O, so every driver refuses the same batches and accepts the others the same way.

The rule (docs/store-contract.md, "Enqueue batches"): a batch means what enqueuing its
jobs one at a time would mean, in plan order: each job in batch order, but after the
batch jobs it depends on (depth first, in the order listed). A job whose key is held at
its turn (by a stored job or an earlier-planned batch job) is a duplicate of the holder;
a dependency on a duplicate is a dependency on its holder. Every redirected dependency
points earlier in plan order, so redirection never closes a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from conveyor.errors import IdempotencyConflict, InvalidOption, UnknownDependency
from conveyor.job import (
    ACTIVE_STATES,
    DependencyPolicy,
    EnqueueResult,
    FailureReason,
    JobState,
    NewJob,
    check_no_cycle,
)

S = JobState

ENDED_BADLY: Final = (S.FAILED, S.CANCELLED)
"""Dependency states that apply the dependent's failure policy."""


@dataclass(frozen=True, slots=True)
class KeyHold:
    """Who holds a unique or idempotency key, until when, and that job's state now."""

    job_id: str
    expires_at: float | None
    """``None``: a unique key held while its job is active (no window)."""
    state: JobState | None
    """The holder's state; ``None`` when the job no longer exists (the key is free)."""
    fingerprint: str = ""

    def held(self, now: float) -> bool:
        """A key holds within its window, else while its job is active; never for a gone job."""
        if self.state is None:
            return False
        if self.expires_at is not None:
            return self.expires_at > now
        return self.state in ACTIVE_STATES


@dataclass(frozen=True, slots=True)
class Reads:
    """What a driver must look up before planning (all sorted, for lock order)."""

    job_ids: tuple[str, ...]
    """Stored jobs named as dependencies (ids outside the batch)."""
    unique_keys: tuple[str, ...]
    idempotency_keys: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.job_ids or self.unique_keys or self.idempotency_keys)


@dataclass(frozen=True, slots=True)
class Stored:
    """What the driver read: absent ids and keys are simply left out."""

    states: Mapping[str, JobState] = field(default_factory=dict)
    unique: Mapping[str, KeyHold] = field(default_factory=dict)
    idempotency: Mapping[str, KeyHold] = field(default_factory=dict)


@dataclass(slots=True)  # not frozen: built once per job on the enqueue path, where it is cheaper
class PlannedJob:
    """A job to insert, in the state the plan gave it."""

    job: NewJob
    state: JobState
    depends_on: tuple[str, ...]
    """Dependencies to store: duplicates replaced by their holders, each id once."""
    open_deps: tuple[str, ...]
    """The dependencies a blocked job waits for (edges to write); ``blocked_by`` is their
    count. Empty unless the state is ``blocked``."""
    failure_reason: str | None
    """``dependency_failed`` when a dependency already ended badly."""


@dataclass(frozen=True, slots=True)
class EnqueuePlan:
    """The jobs to insert (dependencies first) and one result per batch job (batch order)."""

    jobs: list[PlannedJob]
    results: list[EnqueueResult]


def reads_for(jobs: Sequence[NewJob]) -> Reads:
    """The stored states and key holds :func:`plan_enqueue` needs for ``jobs``."""
    batch = {job.id for job in jobs}
    return Reads(
        job_ids=tuple(sorted({d for job in jobs for d in job.depends_on if d not in batch})),
        unique_keys=tuple(sorted({job.unique_key for job in jobs if job.unique_key})),
        idempotency_keys=tuple(
            sorted({job.idempotency_key for job in jobs if job.idempotency_key})
        ),
    )


def plan_enqueue(jobs: Sequence[NewJob], now: float, stored: Stored) -> EnqueuePlan:
    """Decide the whole batch before anything is written; raise if it must be refused.

    Refusals, checked in this order: two jobs with one id (``InvalidOption``), a cycle
    (``DependencyCycle``), a dependency neither in the batch nor stored
    (``UnknownDependency``, first in batch order), an idempotency key reused with another
    fingerprint (``IdempotencyConflict``, first in plan order). Ids already stored are the
    driver's to refuse, at insert.
    """
    batch = {job.id for job in jobs}
    if len(batch) != len(jobs):
        raise InvalidOption("id", "two jobs of the batch have the same id (ids must be unique)")
    check_no_cycle(jobs)
    for job in jobs:
        for dep in job.depends_on:
            if dep not in batch and dep not in stored.states:
                raise UnknownDependency(dep)
    planner = _Planner(now, stored)
    for job in dependencies_first(jobs):
        planner.add(job)
    return EnqueuePlan(planner.planned, [planner.result(job) for job in jobs])


def dependencies_first(jobs: Sequence[NewJob]) -> list[NewJob]:
    """Batch order, each job preceded by its unplaced in-batch dependencies (depth first,
    in the order listed). The batch must be free of cycles."""
    if not any(job.depends_on for job in jobs):
        return list(jobs)
    by_id = {job.id: job for job in jobs}
    ordered: list[NewJob] = []
    placed: set[str] = set()
    for root in jobs:
        if root.id in placed:
            continue
        placed.add(root.id)
        stack = [(root, _in_batch(root.depends_on, by_id))]
        while stack:
            job, pending = stack[-1]
            nxt = next((by_id[d] for d in pending if d not in placed), None)
            if nxt is None:
                ordered.append(job)
                stack.pop()
            else:
                placed.add(nxt.id)
                stack.append((nxt, _in_batch(nxt.depends_on, by_id)))
    return ordered


def _in_batch(ids: Iterable[str], by_id: Mapping[str, NewJob]) -> Iterator[str]:
    return iter([d for d in ids if d in by_id])


class _Planner:
    """Plans jobs one at a time, as a store would insert them one at a time."""

    def __init__(self, now: float, stored: Stored) -> None:
        self.now = now
        self.states: dict[str, JobState] = dict(stored.states)
        self.unique: dict[str, KeyHold] = dict(stored.unique)
        self.idempotency: dict[str, KeyHold] = dict(stored.idempotency)
        self.holder: dict[str, str] = {}
        """Batch job id -> the job holding its key (the job is a duplicate)."""
        self.planned: list[PlannedJob] = []

    def add(self, job: NewJob) -> None:
        if job.unique_key or job.idempotency_key:
            held = self._held_by(job)
            if held is not None:
                holder, held_state = held
                self.holder[job.id] = holder
                self.states.setdefault(holder, held_state)
                return
        if not job.depends_on:  # the common case, kept cheap
            late = job.run_at is not None and job.run_at > self.now
            state = S.SCHEDULED if late else S.PENDING
            self.planned.append(PlannedJob(job, state, (), (), None))
            self.states[job.id] = state
        else:
            depends_on = tuple(dict.fromkeys(self.holder.get(d, d) for d in job.depends_on))
            state, open_deps = self._initial_state(job, depends_on)
            reason = FailureReason.DEPENDENCY_FAILED.value if state in ENDED_BADLY else None
            self.planned.append(PlannedJob(job, state, depends_on, open_deps, reason))
            self.states[job.id] = state
        if job.unique_key:
            expires = None if job.unique_for is None else self.now + job.unique_for
            self.unique[job.unique_key] = KeyHold(job.id, expires, state)
        if job.idempotency_key:
            self.idempotency[job.idempotency_key] = KeyHold(
                job.id, self.now + job.idempotency_for, state, job.fingerprint
            )

    def _held_by(self, job: NewJob) -> tuple[str, JobState] | None:
        """The holder (id, state) that ``job`` duplicates: idempotency key first, then unique."""
        key = job.idempotency_key
        if key:
            hold = self.idempotency.get(key)
            if hold is not None and hold.state is not None and hold.held(self.now):
                if hold.fingerprint != job.fingerprint:
                    raise IdempotencyConflict(key, hold.job_id)
                return hold.job_id, hold.state
        key = job.unique_key
        if key:
            hold = self.unique.get(key)
            if hold is not None and hold.state is not None and hold.held(self.now):
                return hold.job_id, hold.state
        return None

    def _initial_state(
        self, job: NewJob, depends_on: tuple[str, ...]
    ) -> tuple[JobState, tuple[str, ...]]:
        """blocked / scheduled / pending, or the failure policy if a dependency ended badly."""
        states = [self.states[d] for d in depends_on]
        if any(state in ENDED_BADLY for state in states):
            if job.on_dependency_failure is DependencyPolicy.FAIL:
                return S.FAILED, ()
            return S.CANCELLED, ()
        open_deps = tuple(
            d for d, state in zip(depends_on, states, strict=True) if state is not S.COMPLETED
        )
        if open_deps:
            return S.BLOCKED, open_deps
        if job.run_at is not None and job.run_at > self.now:
            return S.SCHEDULED, ()
        return S.PENDING, ()

    def result(self, job: NewJob) -> EnqueueResult:
        holder = self.holder.get(job.id)
        if holder is None:
            return EnqueueResult(job.id, self.states[job.id], False)
        return EnqueueResult(holder, self.states[holder], True)
