"""The in-memory store: the reference semantics of the Store contract.

Used for tests, for sync mode and as the model the other drivers are checked
against. One lock guards everything, so each hook is one atomic step; the rules are
those of :mod:`conveyor.stores.transitions`, applied by :mod:`conveyor.stores.table_ops`
to a :class:`MemoryTable`. Nothing survives the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from conveyor.clock import Clock, SystemClock
from conveyor.job import TERMINAL_STATES, WAITING_STATES, Job, JobState, StateCounts
from conveyor.stores.base import (
    Capabilities,
    ClaimParams,
    JobQuery,
    Page,
    PruneParams,
    PruneResult,
    Record,
    StoreInfo,
)
from conveyor.stores.job_table import KeyKind, KeyRow, drop_holds_of, drop_orphan_holds
from conveyor.stores.records import RecordTable
from conveyor.stores.selection import matches, unique_ids
from conveyor.stores.table_store import TableStore, retention

S = JobState
R = TypeVar("R")


@dataclass(slots=True)
class MemoryTable:
    """The memory store's data: a :class:`~conveyor.stores.job_table.JobTable` in dicts."""

    jobs: dict[str, Job] = field(default_factory=dict)
    dependents: dict[str, list[str]] = field(default_factory=dict)
    keys: dict[KeyKind, dict[str, KeyRow]] = field(
        default_factory=lambda: {kind: {} for kind in KeyKind}
    )
    records: RecordTable = field(default_factory=RecordTable.empty)
    woke: bool = False
    """Set when a job became pending: the store notifies waiters after the step."""

    def job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def put(self, job: Job) -> None:
        self.jobs[job.id] = job

    def drop(self, job_id: str) -> None:
        del self.jobs[job_id]

    def add_dependent(self, job_id: str, dependent: str) -> None:
        self.dependents.setdefault(job_id, []).append(dependent)

    def pop_dependents(self, job_id: str) -> list[str]:
        return self.dependents.pop(job_id, [])

    def wake(self) -> None:
        self.woke = True

    def hold(self, kind: KeyKind, key: str) -> KeyRow | None:
        return self.keys[kind].get(key)

    def put_hold(self, kind: KeyKind, key: str, row: KeyRow) -> None:
        self.keys[kind][key] = row

    def drop_hold(self, kind: KeyKind, key: str) -> None:
        del self.keys[kind][key]

    def holds(self, kind: KeyKind) -> list[tuple[str, KeyRow]]:
        return list(self.keys[kind].items())

    def drop_orphan_edges(self) -> int:
        """Forget dependency lists of gone jobs and gone jobs in lists; return how many."""
        dropped = 0
        for dep_id, waiting in list(self.dependents.items()):
            alive = [i for i in waiting if i in self.jobs]
            if dep_id not in self.jobs or not alive:
                dropped += len(waiting)
                del self.dependents[dep_id]
            elif len(alive) < len(waiting):
                dropped += len(waiting) - len(alive)
                self.dependents[dep_id] = alive
        return dropped


class MemoryStore(TableStore[MemoryTable]):
    """A Store held in this process's memory (reference semantics, no durability)."""

    name = "memory"
    capabilities = Capabilities(transactional_enqueue=False, blocking_wait=True, shared=False)

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._lock = threading.Condition()
        self._table = MemoryTable()
        self._wakeups = 0

    def _atomic(self, work: Callable[[MemoryTable], R]) -> R:
        """Hold the lock for one atomic step; wake waiters if a job became pending."""
        with self._lock:
            table = self._table
            try:
                return work(table)
            finally:
                if table.woke:
                    table.woke = False
                    self._wakeups += 1
                    self._lock.notify_all()

    # lifecycle ---------------------------------------------------------------------------
    def migrate(self) -> int:
        """Nothing to migrate; version 1."""
        return 1

    def close(self) -> None:
        """Wake any waiter; the data stays until the object is dropped."""
        with self._lock:
            self._lock.notify_all()

    def info(self) -> StoreInfo:
        """Memory has no durability."""
        return StoreInfo("memory", "memory://", "none (process memory; lost on exit)", 1)

    # finders ---------------------------------------------------------------------------
    def _choose(self, table: MemoryTable, params: ClaimParams, now: float) -> list[Job]:
        jobs = table.jobs
        if params.job_ids is not None:
            named = (jobs.get(i) for i in unique_ids(params.job_ids))
            return [j for j in named if j is not None and j.state is S.PENDING][: params.limit]
        chosen: list[Job] = []
        for queue in params.queues:
            room = params.limit - len(chosen)
            if room <= 0:
                break
            ready = [j for j in jobs.values() if j.state is S.PENDING and j.queue == queue]
            ready.sort(key=lambda j: (-j.priority, j.run_at, j.id))
            chosen.extend(ready[:room])
        return chosen

    def _waiting(self, table: MemoryTable) -> list[tuple[float, str]]:
        return sorted((j.run_at, j.id) for j in table.jobs.values() if j.state in WAITING_STATES)

    def _expired(self, table: MemoryTable, now: float, limit: int) -> list[str]:
        expired = sorted(
            (j.lease_expires_at, j.id)
            for j in table.jobs.values()
            if j.state is S.PROCESSING
            and j.lease_expires_at is not None
            and j.lease_expires_at < now
        )
        return [job_id for _, job_id in expired[:limit]]

    def _wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block on the condition until a step made a job pending, or ``timeout``."""
        with self._lock:
            seen = self._wakeups
            self._lock.wait_for(lambda: self._wakeups != seen, timeout=timeout)
            return self._wakeups != seen

    # maintenance -------------------------------------------------------------------------
    def _prune(self, params: PruneParams, now: float) -> PruneResult:
        """Delete terminal jobs past their retention (oldest first) with their key holds,
        except a parent whose chain step is not terminal yet; with ``sweep``, drop
        orphaned key holds and expired records too."""
        ages = retention(params)
        with self._lock:
            table = self._table
            jobs = table.jobs
            # A chain step reads its parent's result when it runs: keep the parent till then.
            needed = {j.parent_id for j in jobs.values() if j.parent_id and not j.is_terminal}
            old = sorted(
                (j.finished_at or j.created_at, j.id)
                for j in jobs.values()
                if j.state in TERMINAL_STATES
                and (age := ages[j.state]) is not None
                and (j.finished_at or j.created_at) <= now - age
                and j.id not in needed
            )
            if params.dry_run:
                return PruneResult(len(old), 0)
            orphans = 0
            for _, job_id in old[: params.limit]:
                orphans += drop_holds_of(table, jobs.pop(job_id))
                table.dependents.pop(job_id, None)
                orphans += sum(table.records.delete(ns, job_id, None) for ns in params.job_records)
            if params.sweep:
                orphans += drop_orphan_holds(table, now) + table.drop_orphan_edges()
                orphans += table.records.drop_expired(now)
        return PruneResult(min(len(old), params.limit), orphans)

    # management --------------------------------------------------------------------------
    def _get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._table.jobs.get(job_id)

    def _get_many(self, job_ids: Sequence[str]) -> list[Job]:
        with self._lock:
            jobs = self._table.jobs
            return [jobs[i] for i in job_ids if i in jobs]

    def _search(self, query: JobQuery, limit: int, offset: int) -> Page:
        with self._lock:
            found = [j for j in self._table.jobs.values() if matches(j, query)]
        found.sort(key=lambda j: (j.created_at, j.id), reverse=query.newest_first)
        return Page(found[offset : offset + limit], len(found), limit, offset)

    def _stats(self, now: float) -> list[StateCounts]:
        by_queue: dict[str, StateCounts] = {}
        with self._lock:
            for job in self._table.jobs.values():
                entry = by_queue.setdefault(job.queue, StateCounts(job.queue))
                entry.counts[job.state.value] = entry.counts.get(job.state.value, 0) + 1
                if job.state is S.PENDING and (
                    entry.oldest_pending_at is None or job.run_at < entry.oldest_pending_at
                ):
                    entry.oldest_pending_at = job.run_at
        return [by_queue[q] for q in sorted(by_queue)]

    def _find_ids(self, prefix: str, limit: int) -> list[str]:
        """A scan of every id: the reference, not fast."""
        with self._lock:
            found = sorted(i for i in self._table.jobs if i.startswith(prefix))
        return found[:limit]

    # records -----------------------------------------------------------------------------
    def _get_record(self, namespace: str, key: str, now: float) -> Record | None:
        with self._lock:
            return self._table.records.get(namespace, key, now)

    def _put_record(
        self, proposed: Record, expect_version: int | None, now: float
    ) -> Record | None:
        with self._lock:
            return self._table.records.put(proposed, expect_version, now)

    def _delete_record(self, namespace: str, key: str, expect_version: int | None) -> bool:
        with self._lock:
            return self._table.records.delete(namespace, key, expect_version)

    def _list_records(self, namespace: str, prefix: str, now: float) -> list[Record]:
        with self._lock:
            return self._table.records.list(namespace, prefix, now)

    # testing aids ------------------------------------------------------------------------
    def all_jobs(self) -> list[Job]:
        """Every job, oldest first (for tests and the sync mode)."""
        with self._lock:
            return sorted(self._table.jobs.values(), key=lambda j: (j.created_at, j.id))
