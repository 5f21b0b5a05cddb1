"""The job hooks of a driver that changes jobs in Python, written once over a JobTable.

The memory store (dicts under a lock) and the file store (files under a transaction)
differ only in how they make a step atomic and how they find jobs (a scan of a dict, a
listing of index markers). :class:`TableStore` implements the job hooks of
:class:`conveyor.stores.driver.JobStorage` with the rules of
:mod:`conveyor.stores.transitions`; a subclass gives :meth:`TableStore._atomic` and the
three finders, plus the hooks that read without a step (get, search, stats, ...).
"""

from __future__ import annotations

import functools
import os
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from conveyor.errors import InvalidOption, LeaseLost
from conveyor.job import (
    TERMINAL_STATES,
    WAITING_STATES,
    EnqueueResult,
    Job,
    JobState,
    Lease,
    NewJob,
)
from conveyor.stores import transitions
from conveyor.stores.base import (
    CancelResult,
    ClaimParams,
    Completion,
    Failure,
    HeartbeatResult,
    PruneParams,
    RescueParams,
    RescueResult,
    StageResult,
)
from conveyor.stores.controls import MOVABLE_STATES
from conveyor.stores.enqueue_plan import plan_enqueue, reads_for
from conveyor.stores.front import StoreFront
from conveyor.stores.job_table import JobTable, apply, fail_dependents, insert, stored_for
from conveyor.stores.transitions import Step

S = JobState
TableT = TypeVar("TableT", bound=JobTable)
R = TypeVar("R")


class TableStore(StoreFront, Generic[TableT]):
    """Job hooks over a :class:`~conveyor.stores.job_table.JobTable` of type ``TableT``."""

    # what a subclass gives ---------------------------------------------------------------
    @abstractmethod
    def _atomic(self, work: Callable[[TableT], R]) -> R:
        """Run ``work`` as one atomic step on the table; wake waiters if it asked to."""

    @abstractmethod
    def _choose(self, table: TableT, params: ClaimParams, now: float) -> list[Job]:
        """The pending jobs a claim takes: the named ones, or each queue's in claim order."""

    @abstractmethod
    def _waiting(self, table: TableT) -> list[tuple[float, str]]:
        """``(run_at, id)`` of scheduled and retrying jobs, sorted."""

    @abstractmethod
    def _expired(self, table: TableT, now: float, limit: int) -> list[str]:
        """Ids of processing jobs whose lease ended before ``now``, oldest lease first."""

    # producers ---------------------------------------------------------------------------
    def _enqueue(
        self, jobs: Sequence[NewJob], now: float, connection: object | None
    ) -> list[EnqueueResult]:
        def work(table: TableT) -> list[EnqueueResult]:
            plan = plan_enqueue(jobs, now, stored_for(table, reads_for(jobs)))
            if any(table.job(planned.job.id) is not None for planned in plan.jobs):
                raise InvalidOption("id", "a job with this id already exists (ids must be unique)")
            for planned in plan.jobs:
                insert(table, planned, now)
            return plan.results

        return self._atomic(work)

    # consumers ---------------------------------------------------------------------------
    def _claim(self, params: ClaimParams, now: float, lease_now: float | None) -> list[Lease]:
        return self._atomic(lambda table: self._lease(table, params, now))

    def _lease(self, table: TableT, params: ClaimParams, now: float) -> list[Lease]:
        """Lease the chosen jobs to ``params.worker_id``, each with a fresh random token."""
        leases = []
        expires = now + params.lease_for
        for job in self._choose(table, params, now):
            token = os.urandom(16).hex()
            claimed = transitions.claimed(
                job, worker_id=params.worker_id, token=token, expires_at=expires, now=now
            )
            table.put(claimed)
            leases.append(Lease(claimed, token, expires))
        return leases

    def _heartbeat(
        self, leases: Sequence[Lease], extend: float, now: float, lease_now: float | None
    ) -> HeartbeatResult:
        def work(table: TableT) -> HeartbeatResult:
            result = HeartbeatResult({}, [], [])
            expires = now + extend
            for lease in leases:
                job = _held(table, lease)
                if job is None:
                    result.lost.append(lease.job_id)
                    continue
                table.put(transitions.renewed(job, expires_at=expires, now=now))
                result.renewed[job.id] = expires
                if job.cancel_requested:
                    result.cancel_requested.append(job.id)
            return result

        return self._atomic(work)

    def _complete(self, completions: Sequence[Completion], now: float) -> list[str]:
        return self._atomic(lambda table: _complete(table, completions, now))

    def _complete_and_claim(
        self,
        completions: Sequence[Completion],
        params: ClaimParams,
        now: float,
        lease_now: float | None,
    ) -> tuple[list[str], list[Lease]]:
        def work(table: TableT) -> tuple[list[str], list[Lease]]:
            lost = _complete(table, completions, now)
            return lost, self._lease(table, params, now) if params.limit > 0 else []

        return self._atomic(work)

    def _fail(self, lease: Lease, failure: Failure, now: float) -> JobState:
        def work(table: TableT) -> JobState:
            job = _require(table, lease)
            step = transitions.failed_attempt(
                job, failure.error, retry_at=failure.retry_at, reason=failure.reason, now=now
            )
            apply(table, step, now)
            return step.job.state

        return self._atomic(work)

    def _release(self, lease: Lease, run_at: float | None, now: float) -> None:
        self._on_held(lease, lambda job: transitions.released(job, run_at=run_at, now=now), now)

    def _finish_cancelled(self, lease: Lease, now: float) -> None:
        self._on_held(lease, lambda job: transitions.cancelled(job, now), now)

    def _on_held(self, lease: Lease, rule: Callable[[Job], Step], now: float) -> None:
        self._atomic(lambda table: apply(table, rule(_require(table, lease)), now))

    # maintenance -------------------------------------------------------------------------
    def _stage_due(self, now: float, limit: int) -> StageResult:
        def work(table: TableT) -> StageResult:
            promoted = 0
            next_due: float | None = None
            for run_at, job_id in self._waiting(table):
                if run_at <= now and promoted < limit:
                    job = table.job(job_id)
                    if job is None or job.state not in WAITING_STATES:
                        continue
                    apply(table, transitions.staged(job), now)
                    promoted += 1
                elif next_due is None or run_at < next_due:
                    next_due = run_at
            return StageResult(promoted, next_due)

        return self._atomic(work)

    def _rescue_expired(
        self, params: RescueParams, now: float, lease_now: float | None
    ) -> RescueResult:
        def work(table: TableT) -> RescueResult:
            result = RescueResult([], [])
            for job_id in self._expired(table, now, params.limit):
                job = table.job(job_id)
                if job is None or job.state is not S.PROCESSING:
                    continue
                step = transitions.rescued(job, params, now)
                apply(table, step, now)
                ended = step.job.state is S.FAILED
                (result.failed if ended else result.retried).append(job_id)
            return result

        return self._atomic(work)

    # management --------------------------------------------------------------------------
    def _cancel(self, job_ids: Sequence[str], force: bool, now: float) -> CancelResult:
        def work(table: TableT) -> CancelResult:
            result = CancelResult([], [], [])
            for job_id in job_ids:
                job = table.job(job_id)
                if job is None or job.state in TERMINAL_STATES:
                    result.skipped.append(job_id)
                elif job.state is S.PROCESSING and not force:
                    table.put(transitions.cancel_requested(job))
                    result.requested.append(job_id)
                else:
                    apply(table, transitions.cancelled(job, now), now)
                    result.cancelled.append(job_id)
            return result

        return self._atomic(work)

    def _retry(self, job_ids: Sequence[str], now: float) -> list[str]:
        ended = (S.FAILED, S.CANCELLED)
        return self._each(job_ids, ended, lambda job: transitions.retried(job, now), now)

    def _reprioritize(self, job_ids: Sequence[str], priority: int, now: float) -> list[str]:
        """A pending job keeps its place in the queue's claim order by its new priority."""
        change = functools.partial(transitions.reprioritized, priority=priority)
        return self._each(job_ids, MOVABLE_STATES, change, now)

    def _move(self, job_ids: Sequence[str], queue: str, now: float) -> list[str]:
        """Waiters are woken when a pending job moved (its new queue may have some)."""
        change = functools.partial(transitions.moved, queue=queue)
        return self._each(job_ids, MOVABLE_STATES, change, now)

    def _each(
        self,
        job_ids: Sequence[str],
        states: Sequence[JobState] | frozenset[JobState],
        rule: Callable[[Job], Step],
        now: float,
    ) -> list[str]:
        """Apply ``rule`` to the jobs among ``job_ids`` that are in ``states``; their ids."""

        def work(table: TableT) -> list[str]:
            changed: list[str] = []
            for job_id in job_ids:
                job = table.job(job_id)
                if job is not None and job.state in states:
                    apply(table, rule(job), now)
                    changed.append(job_id)
            return changed

        return self._atomic(work)

    def _delete(self, job_ids: Sequence[str], now: float) -> int:
        def work(table: TableT) -> int:
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

        return self._atomic(work)


def _held(table: JobTable, lease: Lease) -> Job | None:
    job = table.job(lease.job_id)
    return job if transitions.holds(job, lease.job_id, lease.token) else None


def _require(table: JobTable, lease: Lease) -> Job:
    job = _held(table, lease)
    if job is None:
        raise LeaseLost(lease.job_id)
    return job


def _complete(table: JobTable, completions: Sequence[Completion], now: float) -> list[str]:
    """Complete each held job (releasing its dependents); return the ids whose lease was lost."""
    lost: list[str] = []
    for done in completions:
        job = _held(table, done.lease)
        if job is None:
            lost.append(done.lease.job_id)
            continue
        apply(table, transitions.completed(job, done.result, now), now)
    return lost


def retention(params: PruneParams) -> dict[JobState, float | None]:
    """How old each terminal state's jobs must be for prune to delete them (None: never)."""
    return {
        S.COMPLETED: params.completed_after,
        S.FAILED: params.failed_after,
        S.CANCELLED: params.cancelled_after,
    }
