"""Every job operation of the memory and file stores, written once over a :class:`JobTable`.

Each function runs inside the caller's atomic step (the memory store's lock, the file
store's transaction) on input the store front has already checked; the rules come from
:mod:`conveyor.stores.transitions`. What differs between the two stores, how jobs are
found (a scan of a dict, a listing of index markers), stays in each driver.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

from conveyor.errors import InvalidOption, LeaseLost
from conveyor.job import (
    TERMINAL_STATES,
    WAITING_STATES,
    EnqueueResult,
    FailureReason,
    Job,
    JobError,
    JobState,
    Lease,
    NewJob,
)
from conveyor.stores import transitions
from conveyor.stores.base import (
    CancelResult,
    ClaimParams,
    Completion,
    HeartbeatResult,
    RescueParams,
    RescueResult,
    StageResult,
)
from conveyor.stores.controls import MOVABLE_STATES
from conveyor.stores.enqueue_plan import plan_enqueue, reads_for
from conveyor.stores.job_table import JobTable, apply, insert, stored_for
from conveyor.stores.transitions import Step

S = JobState


def enqueue(table: JobTable, jobs: Sequence[NewJob], now: float) -> list[EnqueueResult]:
    """Plan the batch, refuse ids already stored, then insert every planned job."""
    plan = plan_enqueue(jobs, now, stored_for(table, reads_for(jobs)))
    if any(table.job(planned.job.id) is not None for planned in plan.jobs):
        raise InvalidOption("id", "a job with this id already exists (ids must be unique)")
    for planned in plan.jobs:
        insert(table, planned, now)
    return plan.results


def lease_jobs(
    table: JobTable, chosen: Iterable[Job], params: ClaimParams, now: float
) -> list[Lease]:
    """Lease the chosen pending jobs to ``params.worker_id``, each with a fresh token."""
    leases = []
    expires = now + params.lease_for
    for job in chosen:
        token = os.urandom(16).hex()
        claimed = transitions.claimed(
            job, worker_id=params.worker_id, token=token, expires_at=expires, now=now
        )
        table.put(claimed)
        leases.append(Lease(claimed, token, expires))
    return leases


def _held(table: JobTable, lease: Lease) -> Job | None:
    job = table.job(lease.job_id)
    return job if transitions.holds(job, lease.job_id, lease.token) else None


def _require(table: JobTable, lease: Lease) -> Job:
    job = _held(table, lease)
    if job is None:
        raise LeaseLost(lease.job_id)
    return job


def heartbeat(
    table: JobTable, leases: Sequence[Lease], extend: float, now: float
) -> HeartbeatResult:
    """Extend each held lease; report the lost and the cancel-requested."""
    renewed: dict[str, float] = {}
    lost: list[str] = []
    cancel: list[str] = []
    expires = now + extend
    for lease in leases:
        job = _held(table, lease)
        if job is None:
            lost.append(lease.job_id)
            continue
        table.put(transitions.renewed(job, expires_at=expires, now=now))
        renewed[job.id] = expires
        if job.cancel_requested:
            cancel.append(job.id)
    return HeartbeatResult(renewed, lost, cancel)


def complete(table: JobTable, completions: Sequence[Completion], now: float) -> list[str]:
    """Complete each held job (releasing its dependents); return the ids whose lease was lost."""
    lost: list[str] = []
    for done in completions:
        job = _held(table, done.lease)
        if job is None:
            lost.append(done.lease.job_id)
            continue
        apply(table, transitions.completed(job, done.result, now), now)
    return lost


def fail(
    table: JobTable,
    lease: Lease,
    error: JobError,
    retry_at: float | None,
    reason: FailureReason | None,
    now: float,
) -> JobState:
    """Record a failed attempt of the held job; return its new state."""
    job = _require(table, lease)
    step = transitions.failed_attempt(job, error, retry_at=retry_at, reason=reason, now=now)
    apply(table, step, now)
    return step.job.state


def release(table: JobTable, lease: Lease, run_at: float | None, now: float) -> None:
    """Give the held job back unstarted."""
    apply(table, transitions.released(_require(table, lease), run_at=run_at, now=now), now)


def finish_cancelled(table: JobTable, lease: Lease, now: float) -> None:
    """End the held job as cancelled."""
    apply(table, transitions.cancelled(_require(table, lease), now), now)


def stage(
    table: JobTable, waiting: Iterable[tuple[float, str]], limit: int, now: float
) -> StageResult:
    """Promote due jobs among ``waiting`` (``(run_at, id)``, sorted), at most ``limit``."""
    promoted = 0
    next_due: float | None = None
    for run_at, job_id in waiting:
        if run_at <= now and promoted < limit:
            job = table.job(job_id)
            if job is None or job.state not in WAITING_STATES:
                continue
            apply(table, transitions.staged(job), now)
            promoted += 1
        elif next_due is None or run_at < next_due:
            next_due = run_at
    return StageResult(promoted, next_due)


def rescue(
    table: JobTable, expired: Iterable[str], params: RescueParams, now: float
) -> RescueResult:
    """Rescue each listed job that is still processing (``expired``: oldest lease first)."""
    retried: list[str] = []
    failed: list[str] = []
    for job_id in expired:
        job = table.job(job_id)
        if job is None or job.state is not S.PROCESSING:
            continue
        step = transitions.rescued(job, params, now)
        apply(table, step, now)
        (failed if step.job.state is S.FAILED else retried).append(job_id)
    return RescueResult(retried, failed)


def cancel(table: JobTable, job_ids: Sequence[str], force: bool, now: float) -> CancelResult:
    """Cancel waiting jobs now; processing ones by flag, or at once with ``force``."""
    cancelled: list[str] = []
    requested: list[str] = []
    skipped: list[str] = []
    for job_id in job_ids:
        job = table.job(job_id)
        if job is None or job.state in TERMINAL_STATES:
            skipped.append(job_id)
        elif job.state is S.PROCESSING and not force:
            table.put(transitions.cancel_requested(job))
            requested.append(job_id)
        else:
            apply(table, transitions.cancelled(job, now), now)
            cancelled.append(job_id)
    return CancelResult(cancelled, requested, skipped)


def retry(table: JobTable, job_ids: Sequence[str], now: float) -> list[str]:
    """Failed/cancelled -> pending with fresh attempts; return the ids moved."""
    moved: list[str] = []
    for job_id in job_ids:
        job = table.job(job_id)
        if job is None or job.state not in (S.FAILED, S.CANCELLED):
            continue
        apply(table, transitions.retried(job, now), now)
        moved.append(job_id)
    return moved


def change_waiting(
    table: JobTable, job_ids: Sequence[str], change: Callable[[Job], Step], now: float
) -> list[str]:
    """Apply ``change`` (reprioritize, move) to the waiting jobs among ``job_ids``."""
    changed: list[str] = []
    for job_id in job_ids:
        job = table.job(job_id)
        if job is None or job.state not in MOVABLE_STATES:
            continue
        apply(table, change(job), now)
        changed.append(job_id)
    return changed


def delete(table: JobTable, job_ids: Sequence[str], now: float) -> int:
    """Delete non-processing jobs; dependents of unfinished ones get their policy."""
    deleted = 0
    for job_id in job_ids:
        job = table.job(job_id)
        if job is None or job.state is S.PROCESSING:
            continue
        table.drop(job_id)
        deleted += 1
        if job.state is not S.COMPLETED:
            fail_dependents(table, job_id, now)
        table.pop_dependents(job_id)
    return deleted


def fail_dependents(table: JobTable, job_id: str, now: float) -> None:
    """Give every blocked job waiting on ``job_id`` (gone or ended badly) its policy."""
    for dep_id in table.pop_dependents(job_id):
        dep = table.job(dep_id)
        if dep is not None and dep.state is S.BLOCKED:
            apply(table, transitions.dependency_failed(dep, now), now)
