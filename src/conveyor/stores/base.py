"""The Store contract: one method per job-state operation, batch-friendly and fenced.

Every driver (memory, sqlite, and later postgres, redis, file) implements
:class:`Store` with exactly these semantics; the conformance suite in
``tests/stores/`` checks them on every driver. SQL, keys and file names stay
private to a driver. Times are UTC epoch seconds; a ``now`` argument of ``None``
means the store's own clock (tests pass a fake one).

Semantics every driver must keep:

* **enqueue** is atomic for the whole batch: an invalid item (unknown
  dependency, cycle, idempotency conflict) raises and nothing is written. Each
  job starts ``blocked`` if any dependency is not completed yet, else
  ``scheduled`` if ``run_at`` is in the future, else ``pending``. A dependency
  already ``failed``/``cancelled`` applies the job's dependency policy at once
  (``failed`` with reason ``dependency_failed``, or ``cancelled``). A unique key
  that is held (see :class:`~conveyor.job.NewJob.unique_for`) returns the holder's
  id with ``duplicate=True`` and writes nothing; an idempotency key inside its
  window returns the first job's id with ``duplicate=True`` if the fingerprint
  matches, else raises :class:`~conveyor.errors.IdempotencyConflict`.
* **claim** moves up to ``limit`` pending jobs to ``processing`` (queues in the
  given order; within a queue highest priority first, then oldest ``run_at``,
  then id), sets ``attempt += 1``, a fresh random lease token,
  ``lease_expires_at = now + lease_for``, ``worker_id``, ``started_at`` and
  ``heartbeat_at``. A job is never held by two live leases.
* **heartbeat / complete / fail / release / finish_cancelled** succeed only while
  the job is ``processing`` with the same lease token (fencing); otherwise
  ``complete`` reports the job id as lost and the others raise
  :class:`~conveyor.errors.LeaseLost`.
* **complete** stores the result, clears the lease and releases dependents: each
  dependent's ``blocked_by`` drops by one and at zero it becomes pending (or
  scheduled if its ``run_at`` is still ahead).
* A job reaching ``failed`` or ``cancelled`` fails or cancels its dependents
  (transitively) according to each dependent's policy.
* **rescue_expired** moves processing jobs whose lease expired to ``retrying``
  (``run_at = now + retry_delay``) or to ``failed`` (reason ``exhausted`` when no
  attempt is left, ``poison`` when ``rescue_count`` reaches ``max_rescues``),
  appending a ``LeaseExpired`` error.
* Every state change is checked against :data:`conveyor.job.TRANSITIONS`.

**Records** are the coordination primitive (schedules, leader leases, rate-limit
windows, concurrency slots, condition decisions): small values under
``(namespace, key)`` with a version that grows by one on every write, written only by
compare-and-set, and an optional expiry after which the record reads as absent. The
logic built on them lives above the store (:mod:`conveyor.coordination`), so every
driver only has to get this one atomic step right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from conveyor.clock import Clock
from conveyor.job import (
    EnqueueResult,
    FailureReason,
    Job,
    JobError,
    JobState,
    Lease,
    NewJob,
    StateCounts,
)

SEARCH_LIMIT_MAX = 1000


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a driver can do beyond the common contract."""

    transactional_enqueue: bool = False
    """``enqueue(connection=…)`` joins the caller's own database transaction."""
    blocking_wait: bool = False
    """``wait_for_work`` wakes on enqueue without polling."""
    shared: bool = False
    """Several processes can use the same store."""


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """How the store is set up, for ``conveyor info``."""

    driver: str
    location: str
    durability: str
    schema_version: int | None = None
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimParams:
    """Arguments of :meth:`Store.claim`."""

    queues: Sequence[str]
    """Queues in order of preference; the batch is filled from the first that has jobs."""
    worker_id: str
    limit: int = 1
    lease_for: float = 30.0
    job_ids: Sequence[str] | None = None
    """Claim exactly these jobs (if pending), ignoring ``queues``; used by ``run_sync``."""
    now: float | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """A successful run to acknowledge: the lease and the encoded result."""

    lease: Lease
    result: bytes | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt to record: ``retrying`` until ``retry_at``, or (None) ``failed``
    with ``reason`` (``exhausted`` when not given)."""

    error: JobError
    retry_at: float | None
    reason: FailureReason | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    """Outcome of a heartbeat for a batch of leases."""

    renewed: dict[str, float]
    """Job id -> new lease expiry, for leases still held."""
    lost: list[str]
    """Job ids whose lease no longer holds (expired and taken, cancelled by force, deleted)."""
    cancel_requested: list[str]
    """Held job ids that a user asked to cancel; the handler should stop."""


@dataclass(frozen=True, slots=True)
class StageResult:
    """Outcome of :meth:`Store.stage_due`."""

    promoted: int
    next_due_at: float | None
    """Earliest ``run_at`` still ahead among scheduled/retrying jobs, if any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RescueParams:
    """Arguments of :meth:`Store.rescue_expired`."""

    retry_delay: float = 1.0
    max_rescues: int = 3
    limit: int = 1000
    now: float | None = None


@dataclass(frozen=True, slots=True)
class RescueResult:
    """Counts of rescued jobs by outcome."""

    retried: list[str]
    failed: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneParams:
    """Delete terminal jobs that finished more than the given seconds ago (None: keep).

    One call is one short transaction: at most ``limit`` jobs (oldest first, by an index
    on state and finish time), with their own key holds, dependency rows and payloads.
    Callers loop until fewer than ``limit`` come back (see :mod:`conveyor.maintenance.pruner`).
    """

    completed_after: float | None = 86400.0
    failed_after: float | None = 14 * 86400.0
    cancelled_after: float | None = 86400.0
    limit: int = 1000
    now: float | None = None
    sweep: bool = True
    """Also sweep key holds and dependency rows left by other deletions, and expired
    records: a scan of those tables, so a pass asks for it once, on its last call."""
    dry_run: bool = False
    """Count the jobs that would go (all of them, ``limit`` ignored); delete nothing."""
    job_records: tuple[str, ...] = ()
    """Record namespaces keyed by job id (e.g. condition decisions): a deleted job's
    records there are deleted with it (counted with the orphans)."""


@dataclass(frozen=True, slots=True)
class PruneResult:
    """How many jobs and orphaned key/dependency rows were deleted."""

    jobs: int
    orphans: int


@dataclass(frozen=True, slots=True, kw_only=True)
class JobQuery:
    """A filter over jobs; every field narrows the result (all of them must match)."""

    ids: Sequence[str] | None = None
    states: Sequence[JobState] | None = None
    queues: Sequence[str] | None = None
    tasks: Sequence[str] | None = None
    tag: str | None = None
    since: float | None = None
    """``created_at >= since``."""
    until: float | None = None
    """``created_at < until``."""
    text: str | None = None
    """Case-insensitive substring of the id, task, queue, failure reason or an error message."""
    limit: int = 50
    offset: int = 0
    newest_first: bool = True


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a search, with the total number of matches."""

    items: list[Job]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class CancelResult:
    """Outcome of :meth:`Store.cancel`."""

    cancelled: list[str]
    """Now in state ``cancelled`` (dependents cancelled/failed by policy are not listed)."""
    requested: list[str]
    """Processing jobs asked to stop cooperatively (the worker sees it at its next heartbeat)."""
    skipped: list[str]
    """Already terminal or unknown."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerInfo:
    """One worker process of a node, as its supervisor last reported it."""

    id: str
    pid: int
    state: str
    """``starting``, ``idle``, ``busy``, ``stopping``."""
    current_job: str | None = None
    processed: int = 0
    failed: int = 0
    rss_bytes: int = 0
    started_at: float = 0.0
    heartbeat_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    """A worker node (one supervisor and its children) registered in the store."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    capabilities: tuple[str, ...] = ()
    concurrency: int = 1
    state: str = "running"
    """``running``, ``paused``, ``stopping``."""
    started_at: float = 0.0
    heartbeat_at: float = 0.0
    """Set by the store on every :meth:`Store.register_node` (the store's clock)."""
    workers: tuple[WorkerInfo, ...] = ()
    clock_offset: float | None = None
    """This node's wall clock minus the store server's, in seconds (positive: the node
    is ahead), as the node last measured it; None where the store has no clock of its
    own (memory, SQLite, file)."""


RECORD_VALUE_MAX = 1 << 20
"""Largest record value in bytes."""


@dataclass(frozen=True, slots=True)
class Record:
    """A versioned coordination value (see the module docstring)."""

    namespace: str
    key: str
    value: bytes
    version: int
    """1 for the first write of the key, then one more on every write."""
    expires_at: float | None = None
    """Store-clock time after which the record reads as absent; None: never."""


@runtime_checkable
class Store(Protocol):
    """The single source of truth for jobs; every state change is one fenced operation."""

    capabilities: Capabilities
    clock: Clock

    # lifecycle ---------------------------------------------------------------------------
    def migrate(self) -> int:
        """Bring the schema up to date; return the schema version. Idempotent."""
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...

    def info(self) -> StoreInfo:
        """Driver, location (no secrets) and durability level in force."""
        ...

    def now(self) -> float:
        """The store's clock: the one that judges leases and due times."""
        ...

    # producers -----------------------------------------------------------------------------
    def enqueue(
        self, jobs: Sequence[NewJob], *, connection: object | None = None, now: float | None = None
    ) -> list[EnqueueResult]:
        """Insert jobs atomically (see the module docstring); one result per job, in order.

        With ``connection`` (drivers with ``transactional_enqueue``), the inserts join the
        caller's open transaction and appear only if it commits.
        """
        ...

    # consumers -----------------------------------------------------------------------------
    def claim(self, params: ClaimParams) -> list[Lease]:
        """Atomically lease up to ``params.limit`` pending jobs to ``params.worker_id``."""
        ...

    def heartbeat(
        self, leases: Sequence[Lease], *, extend: float, now: float | None = None
    ) -> HeartbeatResult:
        """Extend held leases to ``now + extend``; report lost ones and cancel requests
        (each job at most once per list, even if its lease is passed twice)."""
        ...

    def complete(self, completions: Sequence[Completion], *, now: float | None = None) -> list[str]:
        """Mark jobs completed (batched); return ids whose lease was lost (nothing done)."""
        ...

    def complete_and_claim(
        self, completions: Sequence[Completion], params: ClaimParams
    ) -> tuple[list[str], list[Lease]]:
        """:meth:`complete` then :meth:`claim` in one atomic step (one commit).

        The worker's hot path: acknowledging the last job and taking the next one
        costs one round trip. Returns ``(lost ids, new leases)``."""
        ...

    def fail(
        self,
        lease: Lease,
        error: JobError,
        *,
        retry_at: float | None,
        reason: FailureReason | None = None,
        now: float | None = None,
    ) -> JobState:
        """Record a failed attempt: ``retrying`` until ``retry_at``, or ``failed`` (DLQ)
        with ``reason`` when ``retry_at`` is None. Returns the new state."""
        ...

    def release(
        self, lease: Lease, *, run_at: float | None = None, now: float | None = None
    ) -> None:
        """Give an unstarted or interrupted job back (``attempt -= 1``): pending, or
        scheduled when ``run_at`` is ahead."""
        ...

    def finish_cancelled(self, lease: Lease, *, now: float | None = None) -> None:
        """End a processing job as ``cancelled`` (the handler honoured a cancel)."""
        ...

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block until work may be available in ``queues`` or ``timeout`` passes.

        Returns True when woken by an enqueue notification. Never busy-polls.
        """
        ...

    # maintenance ---------------------------------------------------------------------------
    def stage_due(self, *, now: float | None = None, limit: int = 1000) -> StageResult:
        """Move scheduled/retrying jobs whose ``run_at`` has come to pending."""
        ...

    def rescue_expired(self, params: RescueParams) -> RescueResult:
        """Recover processing jobs whose lease expired (see the module docstring)."""
        ...

    def prune(self, params: PruneParams) -> PruneResult:
        """Delete old terminal jobs and orphaned keys/dependency rows."""
        ...

    # management / read model ---------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        """One job by id, or None."""
        ...

    def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """Jobs by id, in the given order, skipping unknown ids."""
        ...

    def search(self, query: JobQuery) -> Page:
        """Jobs matching ``query``, ordered by ``created_at`` then id."""
        ...

    def stats(self, *, now: float | None = None) -> list[StateCounts]:
        """Jobs per queue and state, and each queue's oldest pending job."""
        ...

    def cancel(
        self, job_ids: Sequence[str], *, force: bool = False, now: float | None = None
    ) -> CancelResult:
        """Cancel jobs: waiting ones at once; processing ones cooperatively (flag seen at
        the next heartbeat) or, with ``force``, at once (the worker's lease is revoked)."""
        ...

    def retry(self, job_ids: Sequence[str], *, now: float | None = None) -> list[str]:
        """Move failed/cancelled jobs back to pending with fresh attempts; return moved ids."""
        ...

    # nodes ---------------------------------------------------------------------------------
    def register_node(self, node: NodeInfo, *, now: float | None = None) -> None:
        """Insert or replace the node's record; ``heartbeat_at`` becomes ``now``.

        Supervisors call this at start-up and then as their heartbeat."""
        ...

    def remove_node(self, node_id: str) -> None:
        """Forget a node (clean shutdown). Unknown ids are ignored."""
        ...

    def list_nodes(self) -> list[NodeInfo]:
        """Every registered node, oldest ``started_at`` first."""
        ...

    def prune_nodes(self, *, older_than: float, now: float | None = None) -> int:
        """Forget nodes whose last heartbeat is more than ``older_than`` seconds old."""
        ...

    def delete(self, job_ids: Sequence[str]) -> int:
        """Delete jobs that are not processing; return how many were deleted.

        Dependents of a deleted job that had not completed get their dependency policy
        (failed or cancelled), as if the dependency had failed."""
        ...

    # records -------------------------------------------------------------------------------
    def get_record(self, namespace: str, key: str, *, now: float | None = None) -> Record | None:
        """The record, or None if there is none or it has expired."""
        ...

    def put_record(
        self,
        namespace: str,
        key: str,
        value: bytes,
        *,
        expect_version: int | None,
        expires_at: float | None = None,
        now: float | None = None,
    ) -> Record | None:
        """Compare-and-set: write ``value`` and return the new record, or None on conflict.

        ``expect_version=None`` creates: it succeeds only if the key is absent or expired.
        An integer replaces: it succeeds only if the live record has that version. The new
        version is the previous one plus one (an expired record's version counts too, so a
        version is never reused for a key)."""
        ...

    def delete_record(self, namespace: str, key: str, *, expect_version: int | None = None) -> bool:
        """Delete the record, live or expired (only if it has ``expect_version``, when
        given); True if a record was deleted. A key created again starts at version 1."""
        ...

    def list_records(
        self, namespace: str, *, prefix: str = "", now: float | None = None
    ) -> list[Record]:
        """Live records of ``namespace`` whose key starts with ``prefix``, by key."""
        ...

    # job controls --------------------------------------------------------------------------
    def reprioritize(
        self, job_ids: Sequence[str], priority: int, *, now: float | None = None
    ) -> list[str]:
        """Set the priority of waiting jobs (pending, scheduled, retrying, blocked) in one
        atomic step; return their ids. Other and unknown ids are left alone.

        A pending job takes its new place in its queue's claim order at once. ``now`` is
        accepted like the other management methods; nothing here depends on time."""
        ...

    def move(self, job_ids: Sequence[str], queue: str, *, now: float | None = None) -> list[str]:
        """Move waiting jobs (pending, scheduled, retrying, blocked) to ``queue`` in one
        atomic step; return their ids (those already in ``queue`` included). Other and
        unknown ids are left alone.

        A moved pending job is claimable from ``queue`` at once (its claim order index
        follows) and wakes the workers waiting for work."""
        ...

    def find_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Ids that start with ``prefix`` (normalized by
        :func:`conveyor.stores.controls.normalize_prefix`), in id order, at most ``limit``
        (1 to 1000). When more match, which ``limit`` of them are returned is up to the
        driver: callers use it to resolve a unique prefix or list candidates."""
        ...
