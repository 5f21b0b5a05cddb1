"""The job lifecycle as pure functions: a job and an operation's inputs in, the new job out.

Each rule is written once here. The memory and file stores apply these functions to the
jobs they hold (see :mod:`conveyor.stores.job_table`); the SQL statements and the Redis
scripts are checked against them by ``tests/stores/test_transitions.py``. Nothing here
reads a clock or touches storage: ``now`` and the lease token come from the caller.

A function that changes a job's state returns a :class:`Step`: the new job and its side
effects, as plain data, for the storage to carry out (release or fail the dependents,
wake waiting workers). Every state change checks :func:`~conveyor.job.check_transition`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any

from conveyor.job import (
    DependencyPolicy,
    FailureReason,
    Job,
    JobError,
    JobState,
    check_transition,
)
from conveyor.stores.base import RescueParams
from conveyor.stores.enqueue_plan import PlannedJob
from conveyor.stores.rescue import decide_rescue

S = JobState


class Effect(Enum):
    """What must follow a step, besides storing its job."""

    RELEASE_DEPENDENTS = "release_dependents"
    """The job completed: each job waiting on it has one dependency fewer (:func:`unblocked`)."""
    FAIL_DEPENDENTS = "fail_dependents"
    """The job ended badly: each blocked job waiting on it gets its policy
    (:func:`dependency_failed`), transitively."""
    WAKE = "wake"
    """The job is pending now: workers waiting for work may claim it."""


@dataclass(frozen=True, slots=True)
class Step:
    """A job's new version and what must follow from it."""

    job: Job
    effects: frozenset[Effect]


def _step(job: Job, *effects: Effect) -> Step:
    """A step; one that leaves the job pending always wakes waiters."""
    if not effects:  # most steps: no new set built on the hot path
        return Step(job, _WAKE_ONLY if job.state is S.PENDING else _NONE)
    wake = (Effect.WAKE,) if job.state is S.PENDING else ()
    return Step(job, frozenset((*effects, *wake)))


_NONE: frozenset[Effect] = frozenset()
_WAKE_ONLY = frozenset({Effect.WAKE})


def _move_to(job: Job, target: JobState, **changes: Any) -> Job:
    check_transition(job.id, job.state, target)
    return dataclasses.replace(job, state=target, **changes)


def _ended(job: Job, target: JobState, now: float, **changes: Any) -> Job:
    """The attempt is over at ``now``: the lease goes, and a cancel request with it."""
    return _move_to(
        job,
        target,
        lease_token=None,
        lease_expires_at=None,
        finished_at=now,
        cancel_requested=False,
        **changes,
    )


# producers -------------------------------------------------------------------------------
def created(planned: PlannedJob, now: float) -> Step:
    """The stored job of a planned insert (:func:`conveyor.stores.enqueue_plan.plan_enqueue`):
    ``run_at`` defaults to ``now``; a job the plan failed or cancelled is finished at once."""
    new, reason = planned.job, planned.failure_reason
    job = Job(
        id=new.id,
        queue=new.queue,
        task=new.task,
        payload=new.payload,
        state=planned.state,
        priority=new.priority,
        max_attempts=new.max_attempts,
        run_at=now if new.run_at is None else new.run_at,
        timeout=new.timeout,
        depends_on=planned.depends_on,
        blocked_by=len(planned.open_deps),
        on_dependency_failure=new.on_dependency_failure,
        parent_id=new.parent_id,
        tags=tuple(new.tags),
        unique_key=new.unique_key,
        idempotency_key=new.idempotency_key,
        task_version=new.task_version,
        failure_reason=reason,
        created_at=now,
        finished_at=now if reason else None,
    )
    return _step(job)


# consumers -------------------------------------------------------------------------------
def claimed(job: Job, *, worker_id: str, token: str, expires_at: float, now: float) -> Job:
    """Pending -> processing: the next attempt, leased to ``worker_id`` until ``expires_at``."""
    return _move_to(
        job,
        S.PROCESSING,
        attempt=job.attempt + 1,
        lease_token=token,
        lease_expires_at=expires_at,
        worker_id=worker_id,
        started_at=now,
        finished_at=None,
        heartbeat_at=now,
        cancel_requested=False,
    )


def holds(job: Job | None, job_id: str, token: str) -> bool:
    """True when ``job`` is processing under the lease ``(job_id, token)``."""
    return (
        job is not None
        and job.id == job_id
        and job.state is S.PROCESSING
        and job.lease_token == token
    )


def renewed(job: Job, *, expires_at: float, now: float) -> Job:
    """A heartbeat: the lease runs until ``expires_at``; the state does not change."""
    return dataclasses.replace(job, lease_expires_at=expires_at, heartbeat_at=now)


def completed(job: Job, result: bytes | None, now: float) -> Step:
    """Processing -> completed with ``result``; its dependents move one step closer."""
    done = _ended(job, S.COMPLETED, now, result=result)
    return _step(done, Effect.RELEASE_DEPENDENTS)


def failed_attempt(
    job: Job,
    error: JobError,
    *,
    retry_at: float | None,
    reason: FailureReason | None,
    now: float,
) -> Step:
    """Processing -> retrying until ``retry_at``, or failed with ``reason`` (default
    ``exhausted``) when there is none; the error is appended either way."""
    target = S.RETRYING if retry_at is not None else S.FAILED
    ended = target is S.FAILED
    job = _ended(
        job,
        target,
        now,
        errors=(*job.errors, error),
        run_at=retry_at if retry_at is not None else job.run_at,
        failure_reason=(reason or FailureReason.EXHAUSTED).value if ended else None,
    )
    return _step(job, Effect.FAIL_DEPENDENTS) if ended else _step(job)


def released(job: Job, *, run_at: float | None, now: float) -> Step:
    """Processing -> pending, or scheduled when ``run_at`` is ahead; the attempt is undone."""
    target = S.SCHEDULED if run_at is not None and run_at > now else S.PENDING
    back = _move_to(
        job,
        target,
        attempt=max(job.attempt - 1, 0),
        run_at=run_at if run_at is not None else job.run_at,
        lease_token=None,
        lease_expires_at=None,
        worker_id=None,
        started_at=None,
        heartbeat_at=None,
    )
    return _step(back)


# cancelling ------------------------------------------------------------------------------
def cancelled(job: Job, now: float) -> Step:
    """Any active job -> cancelled (a waiting one, a forced cancel, or a handler that
    honoured the request); its dependents get their policy."""
    done = _ended(job, S.CANCELLED, now, failure_reason=FailureReason.CANCELLED.value)
    return _step(done, Effect.FAIL_DEPENDENTS)


def cancel_requested(job: Job) -> Job:
    """A processing job is asked to stop; its handler sees it at the next heartbeat."""
    return dataclasses.replace(job, cancel_requested=True)


# maintenance -----------------------------------------------------------------------------
def rescued(job: Job, params: RescueParams, now: float) -> Step:
    """An expired lease: retrying after ``retry_delay``, or failed (``poison`` or
    ``exhausted``, see :func:`conveyor.stores.rescue.decide_rescue`), a ``LeaseExpired``
    error appended."""
    decision = decide_rescue(
        job.id,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        rescue_count=job.rescue_count,
        worker_id=job.worker_id,
        started_at=job.started_at,
        params=params,
        now=now,
    )
    job = _ended(
        job,
        decision.target,
        now,
        rescue_count=decision.rescues,
        errors=(*job.errors, decision.error),
        run_at=job.run_at if decision.retry_at is None else decision.retry_at,
        failure_reason=decision.reason,
    )
    return _step(job, Effect.FAIL_DEPENDENTS) if decision.reason else _step(job)


def staged(job: Job) -> Step:
    """A due scheduled or retrying job -> pending."""
    return _step(_move_to(job, S.PENDING))


def retried(job: Job, now: float) -> Step:
    """Failed or cancelled -> pending at ``now`` with fresh attempts (errors are kept)."""
    again = _move_to(
        job,
        S.PENDING,
        attempt=0,
        rescue_count=0,
        run_at=now,
        failure_reason=None,
        finished_at=None,
        lease_token=None,
        lease_expires_at=None,
        cancel_requested=False,
    )
    return _step(again)


# dependents ------------------------------------------------------------------------------
def unblocked(dependent: Job, now: float) -> Step:
    """One dependency of a blocked job completed: ``blocked_by`` drops by one; at zero the
    job becomes pending, or scheduled when its ``run_at`` is ahead."""
    left = max(dependent.blocked_by - 1, 0)
    if left:
        return Step(dataclasses.replace(dependent, blocked_by=left), _NONE)
    target = S.SCHEDULED if dependent.run_at > now else S.PENDING
    return _step(_move_to(dependent, target, blocked_by=0))


def dependency_failed(dependent: Job, now: float) -> Step:
    """A dependency of a blocked job failed, was cancelled or deleted: the job fails or
    is cancelled by its ``on_dependency_failure`` policy, and so do its own dependents."""
    fail = dependent.on_dependency_failure is DependencyPolicy.FAIL
    done = _move_to(
        dependent,
        S.FAILED if fail else S.CANCELLED,
        failure_reason=FailureReason.DEPENDENCY_FAILED.value,
        finished_at=now,
    )
    return _step(done, Effect.FAIL_DEPENDENTS)


# job controls ----------------------------------------------------------------------------
def reprioritized(job: Job, priority: int) -> Step:
    """A waiting job's priority changes; nothing else does."""
    return _step(dataclasses.replace(job, priority=priority))


def moved(job: Job, queue: str) -> Step:
    """A waiting job moves to ``queue``; nothing else changes."""
    return _step(dataclasses.replace(job, queue=queue))
