"""The store front: the public :class:`~conveyor.stores.base.Store` over a driver's hooks.

Like Oban's ``Engine`` module, one place stands between every caller and every driver:
it checks arguments (record names and values, ids, page bounds, priorities, queue
names, id prefixes), drops repeated ids and leases, answers empty batches, reads the
clock once per operation, and keeps the node registry on records. Drivers subclass it
and implement only the hooks of :mod:`conveyor.stores.driver`, so no driver holds a
copy of these checks and a new driver is written from that short list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import orjson

from conveyor.clock import Clock
from conveyor.errors import ConfigurationError, StoreError
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
from conveyor.stores import controls
from conveyor.stores.base import (
    CancelResult,
    Capabilities,
    ClaimParams,
    Completion,
    Failure,
    HeartbeatResult,
    JobQuery,
    NodeInfo,
    Page,
    PruneParams,
    PruneResult,
    Record,
    RescueParams,
    RescueResult,
    StageResult,
)
from conveyor.stores.driver import JobStorage, RecordStorage, Wakeups
from conveyor.stores.node_records import node_from_json
from conveyor.stores.records import check_record
from conveyor.stores.selection import distinct_leases, page_bounds, unique_ids

NODE_NAMESPACE = "node"
"""Records namespace of the node registry: key = node id, value = the NodeInfo JSON."""


class StoreFront(JobStorage, RecordStorage, Wakeups):
    """Checks, clock and node registry for every driver; subclasses implement the hooks."""

    name: str = "store"
    """The driver's name in messages ("memory", "sqlite", "postgresql", "redis", "file")."""
    capabilities: Capabilities
    clock: Clock

    def now(self) -> float:
        """The store's clock: the one that judges leases and due times."""
        return self.clock.now()

    def _now(self, now: float | None) -> float:
        return self.clock.now() if now is None else now

    # producers ---------------------------------------------------------------------------
    def enqueue(
        self, jobs: Sequence[NewJob], *, connection: object | None = None, now: float | None = None
    ) -> list[EnqueueResult]:
        """Insert jobs atomically; see :meth:`conveyor.stores.base.Store.enqueue`."""
        if connection is not None and not self.capabilities.transactional_enqueue:
            raise ConfigurationError(
                f"the {self.name} store cannot join a database transaction; "
                "enqueue with connection=… needs the sqlite or postgresql store"
            )
        if not jobs:
            return []
        return self._enqueue(jobs, self._now(now), connection)

    # consumers ---------------------------------------------------------------------------
    def claim(self, params: ClaimParams) -> list[Lease]:
        """Lease up to ``params.limit`` pending jobs to ``params.worker_id``."""
        if params.limit <= 0:
            return []
        return self._claim(params, self._now(params.now), params.now)

    def heartbeat(
        self, leases: Sequence[Lease], *, extend: float, now: float | None = None
    ) -> HeartbeatResult:
        """Extend held leases; report lost ones and cancel requests, each job once."""
        distinct = distinct_leases(leases)
        if not distinct:
            return HeartbeatResult({}, [], [])
        return self._heartbeat(distinct, extend, self._now(now), now)

    def complete(self, completions: Sequence[Completion], *, now: float | None = None) -> list[str]:
        """Mark jobs completed (batched); return ids whose lease was lost."""
        if not completions:
            return []
        return self._complete(completions, self._now(now))

    def complete_and_claim(
        self, completions: Sequence[Completion], params: ClaimParams
    ) -> tuple[list[str], list[Lease]]:
        """Acknowledge and claim in one atomic step (the worker's hot path)."""
        return self._complete_and_claim(completions, params, self._now(params.now), params.now)

    def fail(
        self,
        lease: Lease,
        error: JobError,
        *,
        retry_at: float | None,
        reason: FailureReason | None = None,
        now: float | None = None,
    ) -> JobState:
        """Record a failed attempt: retrying until ``retry_at``, or failed with ``reason``."""
        return self._fail(lease, Failure(error, retry_at, reason), self._now(now))

    def release(
        self, lease: Lease, *, run_at: float | None = None, now: float | None = None
    ) -> None:
        """Give an unstarted or interrupted job back (``attempt -= 1``)."""
        self._release(lease, run_at, self._now(now))

    def finish_cancelled(self, lease: Lease, *, now: float | None = None) -> None:
        """End a processing job as ``cancelled`` (the handler honoured a cancel)."""
        self._finish_cancelled(lease, self._now(now))

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block until work may be available in ``queues`` or ``timeout`` passes."""
        return self._wait_for_work(queues, max(timeout, 0.0))

    # maintenance -------------------------------------------------------------------------
    def stage_due(self, *, now: float | None = None, limit: int = 1000) -> StageResult:
        """Move scheduled/retrying jobs whose ``run_at`` has come to pending."""
        return self._stage_due(self._now(now), max(limit, 0))

    def rescue_expired(self, params: RescueParams) -> RescueResult:
        """Recover processing jobs whose lease expired."""
        return self._rescue_expired(params, self._now(params.now), params.now)

    def prune(self, params: PruneParams) -> PruneResult:
        """Delete old terminal jobs and orphaned keys/dependency rows."""
        return self._prune(params, self._now(params.now))

    # management / read model -------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        """One job by id, or None."""
        return self._get(job_id)

    def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """Jobs by id, in the given order, skipping unknown ids."""
        if not job_ids:
            return []
        return self._get_many(job_ids)

    def search(self, query: JobQuery) -> Page:
        """Jobs matching ``query``, ordered by ``created_at`` then id."""
        limit, offset = page_bounds(query)
        return self._search(query, limit, offset)

    def stats(self, *, now: float | None = None) -> list[StateCounts]:
        """Jobs per queue and state, and each queue's oldest pending job."""
        return self._stats(self._now(now))

    def cancel(
        self, job_ids: Sequence[str], *, force: bool = False, now: float | None = None
    ) -> CancelResult:
        """Cancel jobs: waiting ones at once, processing ones by flag or with ``force``."""
        ids = unique_ids(job_ids)
        if not ids:
            return CancelResult([], [], [])
        return self._cancel(ids, force, self._now(now))

    def retry(self, job_ids: Sequence[str], *, now: float | None = None) -> list[str]:
        """Move failed/cancelled jobs back to pending with fresh attempts."""
        ids = unique_ids(job_ids)
        return self._retry(ids, self._now(now)) if ids else []

    def delete(self, job_ids: Sequence[str]) -> int:
        """Delete jobs that are not processing; return how many were deleted."""
        ids = unique_ids(job_ids)
        return self._delete(ids, self.clock.now()) if ids else 0

    def reprioritize(
        self, job_ids: Sequence[str], priority: int, *, now: float | None = None
    ) -> list[str]:
        """Set the priority of waiting jobs in one atomic step; return their ids."""
        value = controls.check_priority(priority)
        ids = unique_ids(job_ids)
        return self._reprioritize(ids, value, self._now(now)) if ids else []

    def move(self, job_ids: Sequence[str], queue: str, *, now: float | None = None) -> list[str]:
        """Move waiting jobs to ``queue`` in one atomic step; return their ids."""
        target = controls.check_queue(queue)
        ids = unique_ids(job_ids)
        return self._move(ids, target, self._now(now)) if ids else []

    def find_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Ids that start with ``prefix`` (normalized), in id order, at most ``limit``."""
        start = controls.normalize_prefix(prefix)
        return self._find_ids(start, controls.check_find_limit(limit))

    # records -----------------------------------------------------------------------------
    def get_record(self, namespace: str, key: str, *, now: float | None = None) -> Record | None:
        """The record, or None if there is none or it has expired."""
        check_record(namespace, key)
        return self._get_record(namespace, key, self._now(now))

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
        """Compare-and-set: the new record, or None on conflict."""
        check_record(namespace, key, value, expect_version=expect_version, expires_at=expires_at)
        proposed = Record(namespace, key, value, 0, expires_at)
        return self._put_record(proposed, expect_version, self._now(now))

    def delete_record(self, namespace: str, key: str, *, expect_version: int | None = None) -> bool:
        """Delete the record, live or expired; True if one was deleted."""
        check_record(namespace, key, expect_version=expect_version)
        return self._delete_record(namespace, key, expect_version)

    def list_records(
        self, namespace: str, *, prefix: str = "", now: float | None = None
    ) -> list[Record]:
        """Live records of ``namespace`` whose key starts with ``prefix``, by key."""
        check_record(namespace, prefix or "-")
        return self._list_records(namespace, prefix, self._now(now))

    # nodes (kept on records) -------------------------------------------------------------
    def register_node(self, node: NodeInfo, *, now: float | None = None) -> None:
        """Insert or replace the node's record; ``heartbeat_at`` becomes ``now``."""
        t = self._now(now)
        stamped = dataclasses.replace(node, heartbeat_at=t)
        value = orjson.dumps(dataclasses.asdict(stamped))
        check_record(NODE_NAMESPACE, node.id, value)
        proposed = Record(NODE_NAMESPACE, node.id, value, 0)
        for _ in range(_NODE_WRITE_TRIES):
            current = self._get_record(NODE_NAMESPACE, node.id, t)
            version = None if current is None else current.version
            if self._put_record(proposed, version, t) is not None:
                return
        raise StoreError(f"node {node.id}: its registry record kept changing while written")

    def remove_node(self, node_id: str) -> None:
        """Forget a node (clean shutdown). Unknown ids are ignored."""
        check_record(NODE_NAMESPACE, node_id)
        self._delete_record(NODE_NAMESPACE, node_id, None)

    def list_nodes(self) -> list[NodeInfo]:
        """Every registered node, oldest ``started_at`` first (then by id)."""
        records = self._list_records(NODE_NAMESPACE, "", self.clock.now())
        nodes = [node_from_json(record.value.decode()) for record in records]
        return sorted(nodes, key=lambda n: (n.started_at, n.id))

    def prune_nodes(self, *, older_than: float, now: float | None = None) -> int:
        """Forget nodes whose last heartbeat is more than ``older_than`` seconds old."""
        t = self._now(now)
        cutoff = t - older_than
        pruned = 0
        for record in self._list_records(NODE_NAMESPACE, "", t):
            if node_from_json(record.value.decode()).heartbeat_at < cutoff:
                pruned += self._delete_record(NODE_NAMESPACE, record.key, record.version)
        return pruned


_NODE_WRITE_TRIES = 5
"""A node's record is written by its own supervisor only; a conflict means a prune or
remove ran between the read and the write, so a few tries settle it."""
