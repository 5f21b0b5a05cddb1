"""The short list a storage driver implements, in three parts: jobs, records, wake-ups.

A driver never sees unchecked input: :class:`conveyor.stores.front.StoreFront` (the
public :class:`~conveyor.stores.base.Store`) validates arguments, removes repeated ids
and leases, resolves ``now`` once, answers empty batches itself and keeps the node
registry on records, then calls these hooks. Each hook is one atomic step of the
contract described in :mod:`conveyor.stores.base`; the conformance suite in
``tests/stores/`` checks it on every driver.

Times: ``now`` is the store's time for the operation, already read (or the caller's
injected value). Hooks that set or judge leases also get ``lease_now``: the caller's
injected time, or None when the caller gave none, so that a driver with a lease clock
of its own (SQLite's boot-time clock, a server that judges expiry in-statement) uses
that clock instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from conveyor.job import (
    EnqueueResult,
    Job,
    JobState,
    Lease,
    NewJob,
    StateCounts,
)
from conveyor.stores.base import (
    CancelResult,
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
    StoreInfo,
)


class JobStorage(ABC):
    """Jobs: the lifecycle of the store, then one hook per job operation."""

    # lifecycle ---------------------------------------------------------------------------
    @abstractmethod
    def migrate(self) -> int:
        """Bring the schema up to date; return the schema version. Idempotent."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; safe to call twice."""

    @abstractmethod
    def info(self) -> StoreInfo:
        """Driver, location (no secrets) and durability level in force."""

    # producers ---------------------------------------------------------------------------
    @abstractmethod
    def _enqueue(
        self, jobs: Sequence[NewJob], now: float, connection: object | None
    ) -> list[EnqueueResult]:
        """Insert a non-empty batch atomically (plan it with
        :func:`conveyor.stores.enqueue_plan.plan_enqueue`). ``connection`` is only ever
        passed to a driver whose capabilities say ``transactional_enqueue``."""

    # consumers ---------------------------------------------------------------------------
    @abstractmethod
    def _claim(self, params: ClaimParams, now: float, lease_now: float | None) -> list[Lease]:
        """Lease up to ``params.limit`` (at least 1) pending jobs."""

    @abstractmethod
    def _heartbeat(
        self, leases: Sequence[Lease], extend: float, now: float, lease_now: float | None
    ) -> HeartbeatResult:
        """Extend a non-empty list of distinct leases."""

    @abstractmethod
    def _complete(self, completions: Sequence[Completion], now: float) -> list[str]:
        """Complete a non-empty batch; return the ids whose lease was lost."""

    @abstractmethod
    def _complete_and_claim(
        self,
        completions: Sequence[Completion],
        params: ClaimParams,
        now: float,
        lease_now: float | None,
    ) -> tuple[list[str], list[Lease]]:
        """:meth:`_complete` then :meth:`_claim` in one atomic step; either part may be
        empty (no completions; ``params.limit`` of 0 or less claims nothing)."""

    @abstractmethod
    def _fail(self, lease: Lease, failure: Failure, now: float) -> JobState:
        """Record a failed attempt; raise LeaseLost when the lease does not hold."""

    @abstractmethod
    def _release(self, lease: Lease, run_at: float | None, now: float) -> None:
        """Give the job back unstarted; raise LeaseLost when the lease does not hold."""

    @abstractmethod
    def _finish_cancelled(self, lease: Lease, now: float) -> None:
        """End the held job as cancelled; raise LeaseLost when the lease does not hold."""

    # maintenance -------------------------------------------------------------------------
    @abstractmethod
    def _stage_due(self, now: float, limit: int) -> StageResult:
        """Promote at most ``limit`` (zero or more) due jobs."""

    @abstractmethod
    def _rescue_expired(
        self, params: RescueParams, now: float, lease_now: float | None
    ) -> RescueResult:
        """Recover processing jobs whose lease expired."""

    @abstractmethod
    def _prune(self, params: PruneParams, now: float) -> PruneResult:
        """Delete old terminal jobs (or count them, on a dry run) and sweep orphans."""

    # management / read model -------------------------------------------------------------
    @abstractmethod
    def _get(self, job_id: str) -> Job | None:
        """One job by id, or None."""

    @abstractmethod
    def _get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """Jobs by a non-empty list of ids, in order, unknown ids skipped."""

    @abstractmethod
    def _search(self, query: JobQuery, limit: int, offset: int) -> Page:
        """Jobs matching ``query``; ``limit`` and ``offset`` are checked and capped."""

    @abstractmethod
    def _stats(self, now: float) -> list[StateCounts]:
        """Jobs per queue and state, and each queue's oldest pending job."""

    @abstractmethod
    def _cancel(self, job_ids: Sequence[str], force: bool, now: float) -> CancelResult:
        """Cancel a non-empty list of distinct ids."""

    @abstractmethod
    def _retry(self, job_ids: Sequence[str], now: float) -> list[str]:
        """Move failed/cancelled jobs (distinct ids, non-empty) back to pending."""

    @abstractmethod
    def _delete(self, job_ids: Sequence[str], now: float) -> int:
        """Delete non-processing jobs among a non-empty list of distinct ids."""

    @abstractmethod
    def _reprioritize(self, job_ids: Sequence[str], priority: int, now: float) -> list[str]:
        """Set a checked priority on waiting jobs (distinct ids, non-empty)."""

    @abstractmethod
    def _move(self, job_ids: Sequence[str], queue: str, now: float) -> list[str]:
        """Move waiting jobs (distinct ids, non-empty) to a checked queue name."""

    @abstractmethod
    def _find_ids(self, prefix: str, limit: int) -> list[str]:
        """Ids starting with a normalized ``prefix``, at most a checked ``limit``."""


class RecordStorage(ABC):
    """Records: the compare-and-set primitive (arguments already checked)."""

    @abstractmethod
    def _get_record(self, namespace: str, key: str, now: float) -> Record | None:
        """The live record, or None."""

    @abstractmethod
    def _put_record(
        self, proposed: Record, expect_version: int | None, now: float
    ) -> Record | None:
        """Compare-and-set ``proposed`` (namespace, key, value, expiry; its version is
        ignored); the stored record with its new version, or None on conflict."""

    @abstractmethod
    def _delete_record(self, namespace: str, key: str, expect_version: int | None) -> bool:
        """Delete the record, live or expired (at ``expect_version`` when given)."""

    @abstractmethod
    def _list_records(self, namespace: str, prefix: str, now: float) -> list[Record]:
        """Live records of ``namespace`` whose key starts with ``prefix``, by key."""


class Wakeups(ABC):
    """Wake-ups: how a waiting worker hears of new work without polling."""

    @abstractmethod
    def _wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block until woken or ``timeout`` (zero or more seconds) passes; True if woken."""
