"""The store front's hooks written once for SQL databases: :class:`SqlStore`.

A SQL driver subclasses it and supplies how a transaction runs (:meth:`SqlStore._write`,
:meth:`SqlStore._read`, :meth:`SqlStore._write_waking`), its statements (a
:class:`~conveyor.stores.sql.statements.Statements` built for its dialect), its lease
time, and the rest of the short list that is truly its own: lifecycle, wake-ups and
enqueue into a caller's transaction.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Concatenate, ParamSpec, TypeVar

from conveyor.errors import LeaseLost
from conveyor.job import (
    EnqueueResult,
    Job,
    JobState,
    Lease,
    NewJob,
    StateCounts,
)
from conveyor.stores import controls
from conveyor.stores.base import (
    CancelResult,
    Capabilities,
    ClaimParams,
    Completion,
    Failure,
    HeartbeatResult,
    JobQuery,
    Page,
    PruneParams,
    PruneResult,
    Record,
    RescueParams,
    RescueResult,
    StageResult,
)
from conveyor.stores.front import StoreFront
from conveyor.stores.sql import management as m
from conveyor.stores.sql import operations as ops
from conveyor.stores.sql import records
from conveyor.stores.sql.dialect import Cursor
from conveyor.stores.sql.enqueue import enqueue_batch
from conveyor.stores.sql.statements import Statements

S = JobState
P = ParamSpec("P")
T = TypeVar("T")


def any_pending(results: list[EnqueueResult]) -> bool:
    """Whether an enqueue made a job pending (then waiting workers are woken)."""
    return any(r.state is S.PENDING and not r.duplicate for r in results)


class SqlStore(StoreFront):
    """The job, record and control hooks over a SQL database; see the module docstring."""

    capabilities = Capabilities(transactional_enqueue=True, blocking_wait=True, shared=True)
    """Both SQL stores join a caller's transaction, block waiting, and are shared."""
    sql: Statements

    # how a driver runs a transaction ------------------------------------------------------
    @abstractmethod
    def _write(
        self, work: Callable[Concatenate[Cursor, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``work(cursor, …)`` in one write transaction and commit."""

    @abstractmethod
    def _read(
        self, work: Callable[Concatenate[Cursor, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``work(cursor, …)`` in one read transaction (one consistent snapshot)."""

    @abstractmethod
    def _write_waking(
        self,
        wakes: Callable[[T], bool],
        work: Callable[Concatenate[Cursor, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """:meth:`_write`, and wake waiting workers when ``wakes(result)`` says the
        commit made jobs pending (never before the commit is visible)."""

    @abstractmethod
    def _enqueue_joined(
        self, connection: object, jobs: Sequence[NewJob], now: float
    ) -> list[EnqueueResult]:
        """Enqueue inside the caller's transaction on ``connection``."""

    def _lease_time(self, lease_now: float | None, now: float) -> float:
        """Lease time of an operation: the caller's injected time, else ``now``."""
        return now if lease_now is None else lease_now

    def _expire_before(self, lease_now: float | None, now: float) -> float | None:
        """Leases that end before this are expired (None: the database's clock judges)."""
        return self._lease_time(lease_now, now)

    # producers ----------------------------------------------------------------------------
    def _enqueue(
        self, jobs: Sequence[NewJob], now: float, connection: object | None
    ) -> list[EnqueueResult]:
        if connection is not None:
            return self._enqueue_joined(connection, jobs, now)
        return self._write_waking(any_pending, enqueue_batch, self.sql, jobs, now)

    # consumers ----------------------------------------------------------------------------
    def _claim(self, params: ClaimParams, now: float, lease_now: float | None) -> list[Lease]:
        return self._write(ops.claim_jobs, self.sql, params, now, self._lease_time(lease_now, now))

    def _heartbeat(
        self, leases: Sequence[Lease], extend: float, now: float, lease_now: float | None
    ) -> HeartbeatResult:
        expires = self._lease_time(lease_now, now) + extend
        return self._write(ops.heartbeat_leases, self.sql, leases, now, expires)

    def _complete(self, completions: Sequence[Completion], now: float) -> list[str]:
        lost, _ = self._write_waking(_made_ready, ops.complete_jobs, self.sql, completions, now)
        return lost

    def _complete_and_claim(
        self,
        completions: Sequence[Completion],
        params: ClaimParams,
        now: float,
        lease_now: float | None,
    ) -> tuple[list[str], list[Lease]]:
        lease_time = self._lease_time(lease_now, now)
        lost, _, leases = self._write_waking(
            _made_ready, ops.complete_then_claim, self.sql, completions, params, now, lease_time
        )
        return lost, leases

    def _fail(self, lease: Lease, failure: Failure, now: float) -> JobState:
        state = self._write(ops.fail_job, self.sql, lease, failure, now)
        if state is None:
            raise LeaseLost(lease.job_id)
        return state

    def _release(self, lease: Lease, run_at: float | None, now: float) -> None:
        state = self._write_waking(_is_pending, ops.release_job, self.sql, lease, run_at, now)
        if state is None:
            raise LeaseLost(lease.job_id)

    def _finish_cancelled(self, lease: Lease, now: float) -> None:
        if not self._write(ops.finish_cancelled, self.sql, lease, now):
            raise LeaseLost(lease.job_id)

    # maintenance --------------------------------------------------------------------------
    def _stage_due(self, now: float, limit: int) -> StageResult:
        return self._write_waking(_promoted, ops.stage_due, self.sql, now, limit)

    def _rescue_expired(
        self, params: RescueParams, now: float, lease_now: float | None
    ) -> RescueResult:
        expire_before = self._expire_before(lease_now, now)
        return self._write(ops.rescue_jobs, self.sql, params, now, expire_before)

    def _prune(self, params: PruneParams, now: float) -> PruneResult:
        run = self._read if params.dry_run else self._write
        return run(ops.prune_jobs, self.sql, params, now)

    # management / read model --------------------------------------------------------------
    def _get(self, job_id: str) -> Job | None:
        return self._read(m.get_job, self.sql, job_id)

    def _get_many(self, job_ids: Sequence[str]) -> list[Job]:
        return self._read(m.get_jobs, self.sql, job_ids)

    def _search(self, query: JobQuery, limit: int, offset: int) -> Page:
        return self._read(m.search_jobs, self.sql, query, limit, offset)

    def _stats(self, now: float) -> list[StateCounts]:
        return self._read(m.state_counts, self.sql)

    def _cancel(self, job_ids: Sequence[str], force: bool, now: float) -> CancelResult:
        return self._write(m.cancel_jobs, self.sql, job_ids, force, now)

    def _retry(self, job_ids: Sequence[str], now: float) -> list[str]:
        return self._write_waking(bool, m.retry_jobs, self.sql, job_ids, now)

    def _delete(self, job_ids: Sequence[str], now: float) -> int:
        return self._write(m.delete_jobs, self.sql, job_ids, now)

    def _reprioritize(self, job_ids: Sequence[str], priority: int, now: float) -> list[str]:
        return self._change_waiting(self.sql.set_priority, priority, job_ids)

    def _move(self, job_ids: Sequence[str], queue: str, now: float) -> list[str]:
        return self._change_waiting(self.sql.set_queue, queue, job_ids)

    def _change_waiting(self, statement: str, value: object, job_ids: Sequence[str]) -> list[str]:
        changed, _ = self._write_waking(
            _second, m.change_waiting, self.sql, statement, value, job_ids
        )
        return changed

    def _find_ids(self, prefix: str, limit: int) -> list[str]:
        low, high = controls.prefix_bounds(prefix)
        return self._read(m.find_ids, self.sql, low, high, limit)

    # records ------------------------------------------------------------------------------
    def _get_record(self, namespace: str, key: str, now: float) -> Record | None:
        return self._read(records.get_record, self.sql, namespace, key, now)

    def _put_record(
        self, proposed: Record, expect_version: int | None, now: float
    ) -> Record | None:
        return self._write(records.put_record, self.sql, proposed, expect_version, now)

    def _delete_record(self, namespace: str, key: str, expect_version: int | None) -> bool:
        return self._write(records.delete_record, self.sql, namespace, key, expect_version)

    def _list_records(self, namespace: str, prefix: str, now: float) -> list[Record]:
        return self._read(records.list_records, self.sql, namespace, prefix, now)


def _made_ready(result: tuple[object, int] | tuple[object, int, object]) -> bool:
    return result[1] > 0


def _second(result: tuple[object, bool]) -> bool:
    return result[1]


def _is_pending(state: JobState | None) -> bool:
    return state is S.PENDING


def _promoted(result: StageResult) -> bool:
    return result.promoted > 0
