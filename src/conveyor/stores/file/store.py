"""The file store: jobs as files in one directory, shared by the processes of one host.

Every state change is one :class:`~conveyor.stores.file.transaction.Transaction` run under
an exclusive ``flock`` and committed through a journal (write, ``fsync``, rename,
``fsync`` of the directory), so it is atomic across processes and survives a crash.
Reads of single jobs, searches and the node list take no lock: files only ever appear
complete, by ``rename``. Semantics follow :mod:`conveyor.stores.base` and the reference
:class:`~conveyor.stores.memory.MemoryStore`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from conveyor.clock import Clock, SystemClock
from conveyor.errors import (
    ConfigurationError,
    InvalidOption,
    LeaseLost,
)
from conveyor.ids import is_job_id
from conveyor.job import (
    TERMINAL_STATES,
    WAITING_STATES,
    DependencyPolicy,
    EnqueueResult,
    FailureReason,
    Job,
    JobError,
    JobState,
    Lease,
    NewJob,
    StateCounts,
    check_transition,
)
from conveyor.stores import controls
from conveyor.stores.base import (
    CancelResult,
    Capabilities,
    ClaimParams,
    Completion,
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
    StoreInfo,
)
from conveyor.stores.corrupt import claimable, quarantined
from conveyor.stores.enqueue_plan import (
    KeyHold,
    PlannedJob,
    Reads,
    Stored,
    plan_enqueue,
    reads_for,
)
from conveyor.stores.file import layout
from conveyor.stores.file import records as file_records
from conveyor.stores.file.journal import Directory
from conveyor.stores.file.transaction import Transaction
from conveyor.stores.records import check_record
from conveyor.stores.rescue import decide_rescue
from conveyor.stores.selection import distinct_leases, matches, page_bounds, unique_ids
from conveyor.stores.wakeup import WakeChannel
from conveyor.validation import queue_name

S = JobState
log = logging.getLogger("conveyor.stores.file")
T = TypeVar("T")

DURABILITY = "crash-safe (write, fsync, rename, fsync dir)"


class FileStore:
    """A Store kept as files under one directory (see :mod:`conveyor.stores.file.layout`)."""

    capabilities = Capabilities(transactional_enqueue=False, blocking_wait=True, shared=True)

    def __init__(self, root: str, *, clock: Clock | None = None) -> None:
        if not os.path.isabs(root):
            raise ConfigurationError(f"the file store needs an absolute directory, got {root!r}")
        created = not os.path.exists(root)
        os.makedirs(root, mode=0o700, exist_ok=True)
        if created:
            os.chmod(root, 0o700)
        self.root = os.path.realpath(root)
        self.clock: Clock = clock or SystemClock()
        self._dir = Directory(self.root)
        self._wake = WakeChannel(os.path.join(self.root, layout.WAKE_BASE))
        self._pid = os.getpid()
        for rel in layout.DIRECTORIES:
            self._dir.makedirs(rel)
        with self._dir.locked():
            self._dir.clear_tmp()
            self._check_version()

    @classmethod
    def from_dsn(cls, dsn: str, clock: Clock | None = None) -> FileStore:
        """Open ``file:///absolute/dir`` (see :func:`~conveyor.stores.file.layout.parse_dsn`)."""
        return cls(layout.parse_dsn(dsn), clock=clock)

    def __repr__(self) -> str:
        return f"FileStore({self.root!r})"

    # lifecycle ---------------------------------------------------------------------------
    def _check_version(self) -> int | None:
        data = self._dir.read(layout.VERSION_FILE)
        if data is None:
            return None
        try:
            version = int(data.decode().strip())
        except ValueError as exc:
            raise ConfigurationError(f"{self.root}/VERSION is not a layout version") from exc
        if version > layout.LAYOUT_VERSION:
            raise ConfigurationError(
                f"{self.root} uses file store layout {version}; this Conveyor knows up to "
                f"{layout.LAYOUT_VERSION} (upgrade Conveyor)"
            )
        return version

    def migrate(self) -> int:
        """Write the layout version file if missing; return the version. Idempotent."""
        with self._locked():
            if self._check_version() is None:
                self._dir.write_durably(layout.VERSION_FILE, b"%d\n" % layout.LAYOUT_VERSION)
        return layout.LAYOUT_VERSION

    def close(self) -> None:
        """Release this process's lock descriptor and wake-up sockets; safe to call twice.

        The store stays usable: the next call reopens what it needs."""
        self._after_fork()
        self._wake.close()
        self._dir.close()

    def info(self) -> StoreInfo:
        """Driver, directory and durability."""
        with self._locked():
            version = self._check_version()
        return StoreInfo(
            "file", self.root, DURABILITY, version, {"locking": "flock on <root>/lock"}
        )

    def now(self) -> float:
        """The injected clock."""
        return self.clock.now()

    def _now(self, now: float | None) -> float:
        return self.clock.now() if now is None else now

    def _after_fork(self) -> None:
        """In a forked child, reset the wake-up channel's locks (the lock file reopens itself)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._wake.after_fork()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._after_fork()
        with self._dir.locked():
            yield

    def _write(self, work: Callable[[Transaction], T]) -> T:
        """Run ``work`` in one transaction under the lock; commit; wake waiters if needed."""
        with self._locked():
            tx = Transaction(self._dir)
            result = work(tx)
            tx.commit()
        if tx.woke:
            self._wake.notify()
        return result

    # producers ---------------------------------------------------------------------------
    def enqueue(
        self, jobs: Sequence[NewJob], *, connection: object | None = None, now: float | None = None
    ) -> list[EnqueueResult]:
        """Insert the batch atomically (validation first, then one commit)."""
        if connection is not None:
            raise ConfigurationError(
                "the file store cannot join a database transaction; use the postgresql store"
            )
        for job in jobs:
            if not is_job_id(job.id):
                raise InvalidOption("id", f"{job.id[:80]!r} is not a job id (a UUID)")
            queue_name(job.queue)
            if not layout.priority_fits(job.priority):
                raise InvalidOption("priority", f"{job.priority} is out of range")
        t = self._now(now)
        return self._write(lambda tx: self._enqueue(tx, jobs, t))

    def _enqueue(self, tx: Transaction, jobs: Sequence[NewJob], t: float) -> list[EnqueueResult]:
        plan = plan_enqueue(jobs, t, _read(tx, reads_for(jobs)))
        if any(tx.job(planned.job.id) is not None for planned in plan.jobs):
            raise InvalidOption("id", "a job with this id already exists (ids must be unique)")
        for planned in plan.jobs:
            self._insert(tx, planned, t)
        return plan.results

    def _insert(self, tx: Transaction, planned: PlannedJob, now: float) -> None:
        new, reason = planned.job, planned.failure_reason
        tx.put(
            Job(
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
        )
        for dep in planned.open_deps:
            tx.add_dependent(dep, new.id)
        if new.unique_key:
            expires = None if new.unique_for is None else now + new.unique_for
            tx.write_json(
                layout.unique_path(new.unique_key),
                {"key": new.unique_key, "job_id": new.id, "expires_at": expires},
            )
        if new.idempotency_key:
            tx.write_json(
                layout.idempotency_path(new.idempotency_key),
                {
                    "key": new.idempotency_key,
                    "job_id": new.id,
                    "expires_at": now + new.idempotency_for,
                    "fingerprint": new.fingerprint,
                },
            )

    # consumers ---------------------------------------------------------------------------
    def claim(self, params: ClaimParams) -> list[Lease]:
        """Lease up to ``limit`` pending jobs, queues in the given order."""
        now = self._now(params.now)
        return self._write(lambda tx: self._claim(tx, params, now))

    def _claim(self, tx: Transaction, params: ClaimParams, now: float) -> list[Lease]:
        chosen: list[Job] = []
        if params.job_ids is not None:
            for job_id in unique_ids(params.job_ids):
                job = tx.job(job_id)
                if job_id in tx.corrupt:
                    _quarantine(tx, job_id, now, None)
                elif job is not None and job.state is S.PENDING:
                    chosen.append(job)
            chosen = chosen[: params.limit]
        else:
            for queue in unique_ids(params.queues):
                room = params.limit - len(chosen)
                if room <= 0:
                    break
                if not layout.is_queue_dir(queue):
                    continue
                for name in heapq.nsmallest(room, tx.marker_names(S.PENDING, queue)):
                    job_id = layout.marker_id(name)
                    job = tx.job(job_id)
                    if job_id in tx.corrupt:
                        marker = f"{layout.index_dir(S.PENDING, queue)}/{name}"
                        _quarantine(tx, job_id, now, (queue, marker))
                    elif job is not None and job.state is S.PENDING:
                        chosen.append(job)
        leases = []
        for job in chosen:
            check_transition(job.id, job.state, S.PROCESSING)
            token = os.urandom(16).hex()
            expires = now + params.lease_for
            claimed = dataclasses.replace(
                job,
                state=S.PROCESSING,
                attempt=job.attempt + 1,
                lease_token=token,
                lease_expires_at=expires,
                worker_id=params.worker_id,
                started_at=now,
                finished_at=None,
                heartbeat_at=now,
                cancel_requested=False,
            )
            tx.put(claimed)
            leases.append(Lease(claimed, token, expires))
        return leases

    @staticmethod
    def _held(tx: Transaction, lease: Lease) -> Job | None:
        job = tx.job(lease.job_id)
        if job is None or job.state is not S.PROCESSING or job.lease_token != lease.token:
            return None
        return job

    def _require(self, tx: Transaction, lease: Lease) -> Job:
        job = self._held(tx, lease)
        if job is None:
            raise LeaseLost(lease.job_id)
        return job

    def heartbeat(
        self, leases: Sequence[Lease], *, extend: float, now: float | None = None
    ) -> HeartbeatResult:
        """Extend each held lease; report the lost and the cancel-requested."""
        leases = distinct_leases(leases)
        t = self._now(now)

        def work(tx: Transaction) -> HeartbeatResult:
            renewed: dict[str, float] = {}
            lost: list[str] = []
            cancel: list[str] = []
            for lease in leases:
                job = self._held(tx, lease)
                if job is None:
                    lost.append(lease.job_id)
                    continue
                expires = t + extend
                tx.put(dataclasses.replace(job, lease_expires_at=expires, heartbeat_at=t))
                renewed[job.id] = expires
                if job.cancel_requested:
                    cancel.append(job.id)
            return HeartbeatResult(renewed, lost, cancel)

        return self._write(work)

    def complete(self, completions: Sequence[Completion], *, now: float | None = None) -> list[str]:
        """Mark each held job completed and release its dependents."""
        t = self._now(now)
        return self._write(lambda tx: self._complete(tx, completions, t))

    def _complete(self, tx: Transaction, completions: Sequence[Completion], t: float) -> list[str]:
        lost: list[str] = []
        for done in completions:
            job = self._held(tx, done.lease)
            if job is None:
                lost.append(done.lease.job_id)
                continue
            check_transition(job.id, job.state, S.COMPLETED)
            tx.put(
                dataclasses.replace(
                    job,
                    state=S.COMPLETED,
                    result=done.result,
                    lease_token=None,
                    lease_expires_at=None,
                    finished_at=t,
                    cancel_requested=False,
                )
            )
            _release_dependents(tx, job.id, t)
        return lost

    def complete_and_claim(
        self, completions: Sequence[Completion], params: ClaimParams
    ) -> tuple[list[str], list[Lease]]:
        """Both in one transaction: one lock hold, one commit."""
        t = self._now(params.now)

        def work(tx: Transaction) -> tuple[list[str], list[Lease]]:
            lost = self._complete(tx, completions, t)
            return lost, self._claim(tx, params, t)

        return self._write(work)

    def fail(
        self,
        lease: Lease,
        error: JobError,
        *,
        retry_at: float | None,
        reason: FailureReason | None = None,
        now: float | None = None,
    ) -> JobState:
        """Record the error; retrying until ``retry_at`` or failed (DLQ)."""
        t = self._now(now)

        def work(tx: Transaction) -> JobState:
            job = self._require(tx, lease)
            target = S.RETRYING if retry_at is not None else S.FAILED
            check_transition(job.id, job.state, target)
            tx.put(
                dataclasses.replace(
                    job,
                    state=target,
                    errors=(*job.errors, error),
                    run_at=retry_at if retry_at is not None else job.run_at,
                    lease_token=None,
                    lease_expires_at=None,
                    finished_at=t,
                    failure_reason=(reason or FailureReason.EXHAUSTED).value
                    if target is S.FAILED
                    else None,
                    cancel_requested=False,
                )
            )
            if target is S.FAILED:
                _propagate_failure(tx, job.id, t)
            return target

        return self._write(work)

    def release(
        self, lease: Lease, *, run_at: float | None = None, now: float | None = None
    ) -> None:
        """Give the job back unstarted: pending, or scheduled if ``run_at`` is ahead."""
        t = self._now(now)

        def work(tx: Transaction) -> None:
            job = self._require(tx, lease)
            target = S.SCHEDULED if run_at is not None and run_at > t else S.PENDING
            check_transition(job.id, job.state, target)
            tx.put(
                dataclasses.replace(
                    job,
                    state=target,
                    attempt=max(job.attempt - 1, 0),
                    run_at=run_at if run_at is not None else job.run_at,
                    lease_token=None,
                    lease_expires_at=None,
                    worker_id=None,
                    started_at=None,
                    heartbeat_at=None,
                )
            )

        self._write(work)

    def finish_cancelled(self, lease: Lease, *, now: float | None = None) -> None:
        """End the held job as cancelled and cancel/fail its dependents."""
        t = self._now(now)
        self._write(lambda tx: _set_cancelled(tx, self._require(tx, lease), t))

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block on the wake-up channel until a commit makes work pending, or ``timeout``."""
        self._after_fork()
        return self._wake.wait(timeout)

    # maintenance -------------------------------------------------------------------------
    def stage_due(self, *, now: float | None = None, limit: int = 1000) -> StageResult:
        """Promote due scheduled/retrying jobs; report the next due time."""
        t = self._now(now)

        def work(tx: Transaction) -> StageResult:
            waiting: list[tuple[float, str]] = []
            for state in WAITING_STATES:
                for queue in tx.queues(state):
                    waiting.extend((b, job_id) for _, b, job_id in tx.markers(state, queue))
            promoted = 0
            next_due: float | None = None
            for run_at, job_id in sorted(waiting):
                if run_at <= t and promoted < limit:
                    job = tx.job(job_id)
                    if job is None or job.state not in WAITING_STATES:
                        continue
                    tx.put(dataclasses.replace(job, state=S.PENDING))
                    promoted += 1
                elif next_due is None or run_at < next_due:
                    next_due = run_at
            return StageResult(promoted, next_due)

        return self._write(work)

    def rescue_expired(self, params: RescueParams) -> RescueResult:
        """Retry or fail processing jobs whose lease expired."""
        t = self._now(params.now)
        return self._write(lambda tx: _rescue(tx, params, t))

    def prune(self, params: PruneParams) -> PruneResult:
        """Delete terminal jobs past their retention, except a parent whose chain step is
        not terminal yet; drop orphaned key holds and expired records (counted as orphans)."""
        t = self._now(params.now)
        ages = {
            S.COMPLETED: params.completed_after,
            S.FAILED: params.failed_after,
            S.CANCELLED: params.cancelled_after,
        }

        def work(tx: Transaction) -> PruneResult:
            doomed: list[tuple[float, str]] = []
            for state, age in ages.items():
                if age is None:
                    continue
                for queue in tx.queues(state):
                    doomed.extend((b, i) for _, b, i in tx.markers(state, queue) if b <= t - age)
            if doomed:
                needed = _needed_parents(tx)
                doomed = [(b, i) for b, i in doomed if i not in needed]
            if params.dry_run:
                return PruneResult(len(doomed), 0)
            orphans = 0
            for _, job_id in sorted(doomed)[: params.limit]:
                orphans += _drop_holds_of(tx, job_id)
                orphans += sum(
                    file_records.delete(tx, ns, job_id, None) for ns in params.job_records
                )
                tx.drop(job_id)
                tx.pop_dependents(job_id)
            if params.sweep:
                orphans += _drop_orphans(tx, t) + file_records.drop_expired(tx, t)
            return PruneResult(min(len(doomed), params.limit), orphans)

        return self._write(work)

    # management --------------------------------------------------------------------------
    def _read_job(self, job_id: str) -> Job | None:
        if not is_job_id(job_id):
            return None
        data = self._dir.read(layout.job_path(job_id))
        return None if data is None else layout.decode_job_or_salvage(data, job_id)[0]

    def get(self, job_id: str) -> Job | None:
        """One job by id (no lock: records are replaced atomically)."""
        return self._read_job(job_id)

    def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """Jobs by id, in order, unknown ids skipped."""
        found = (self._read_job(i) for i in job_ids)
        return [job for job in found if job is not None]

    def search(self, query: JobQuery) -> Page:
        """Filter, order by created_at then id, and page (reads every candidate record)."""
        limit, offset = page_bounds(query)
        if query.ids is not None:
            candidates = list(dict.fromkeys(query.ids))
        else:
            names = self._dir.listdir(layout.JOBS_DIR)
            candidates = [n[: -len(".json")] for n in names if n.endswith(".json")]
        found = [
            job
            for job in (self._read_job(i) for i in candidates)
            if job is not None and matches(job, query)
        ]
        found.sort(key=lambda j: (j.created_at, j.id), reverse=query.newest_first)
        return Page(found[offset : offset + limit], len(found), limit, offset)

    def stats(self, *, now: float | None = None) -> list[StateCounts]:
        """Counts per queue and state from the index, oldest pending time per queue."""
        by_queue: dict[str, StateCounts] = {}
        with self._locked():
            tx = Transaction(self._dir)
            for state in JobState:
                for queue in tx.queues(state):
                    markers = tx.markers(state, queue)
                    if not markers:
                        continue
                    entry = by_queue.setdefault(queue, StateCounts(queue))
                    entry.counts[state.value] = len(markers)
                    if state is S.PENDING:
                        entry.oldest_pending_at = min(b for _, b, _ in markers)
        return [by_queue[q] for q in sorted(by_queue)]

    def cancel(
        self, job_ids: Sequence[str], *, force: bool = False, now: float | None = None
    ) -> CancelResult:
        """Cancel waiting jobs now; processing ones by flag, or at once with ``force``."""
        t = self._now(now)

        def work(tx: Transaction) -> CancelResult:
            cancelled: list[str] = []
            requested: list[str] = []
            skipped: list[str] = []
            for job_id in unique_ids(job_ids):
                job = tx.job(job_id)
                if job is None or job.state in TERMINAL_STATES:
                    skipped.append(job_id)
                elif job.state is S.PROCESSING and not force:
                    tx.put(dataclasses.replace(job, cancel_requested=True))
                    requested.append(job_id)
                else:
                    _set_cancelled(tx, job, t)
                    cancelled.append(job_id)
            return CancelResult(cancelled, requested, skipped)

        return self._write(work)

    def retry(self, job_ids: Sequence[str], *, now: float | None = None) -> list[str]:
        """Failed/cancelled -> pending with fresh attempts (errors kept)."""
        t = self._now(now)

        def work(tx: Transaction) -> list[str]:
            moved: list[str] = []
            for job_id in unique_ids(job_ids):
                job = tx.job(job_id)
                if job is None or job.state not in (S.FAILED, S.CANCELLED):
                    continue
                check_transition(job_id, job.state, S.PENDING)
                tx.put(
                    dataclasses.replace(
                        job,
                        state=S.PENDING,
                        attempt=0,
                        rescue_count=0,
                        run_at=t,
                        failure_reason=None,
                        finished_at=None,
                        lease_token=None,
                        lease_expires_at=None,
                        cancel_requested=False,
                    )
                )
                moved.append(job_id)
            return moved

        return self._write(work)

    def delete(self, job_ids: Sequence[str]) -> int:
        """Delete non-processing jobs; dependents of unfinished ones get their policy."""
        t = self.clock.now()

        def work(tx: Transaction) -> int:
            deleted = 0
            for job_id in unique_ids(job_ids):
                job = tx.job(job_id)
                if job is None or job.state is S.PROCESSING:
                    continue
                tx.drop(job_id)
                deleted += 1
                if job.state is not S.COMPLETED:
                    _propagate_failure(tx, job_id, t)
                tx.pop_dependents(job_id)
            return deleted

        return self._write(work)

    # job controls ------------------------------------------------------------------------
    def reprioritize(
        self, job_ids: Sequence[str], priority: int, *, now: float | None = None
    ) -> list[str]:
        """Set the priority of waiting jobs in one commit (a pending job's marker is renamed
        to its new place in the claim order)."""
        value = controls.check_priority(priority)
        return self._change_waiting(job_ids, lambda job: dataclasses.replace(job, priority=value))

    def move(self, job_ids: Sequence[str], queue: str, *, now: float | None = None) -> list[str]:
        """Move waiting jobs to ``queue`` in one commit (each marker moves to the new queue's
        index directory); waiters are woken when a pending job moved."""
        target = controls.check_queue(queue)
        return self._change_waiting(job_ids, lambda job: dataclasses.replace(job, queue=target))

    def _change_waiting(self, job_ids: Sequence[str], change: Callable[[Job], Job]) -> list[str]:
        def work(tx: Transaction) -> list[str]:
            changed: list[str] = []
            for job_id in unique_ids(job_ids):
                job = tx.job(job_id)
                if job is None or job.state not in controls.MOVABLE_STATES:
                    continue
                tx.put(change(job))
                changed.append(job_id)
            return changed

        return self._write(work)

    def find_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Ids starting with ``prefix``, from one listing of the jobs directory."""
        start = controls.normalize_prefix(prefix)
        controls.check_find_limit(limit)
        names = self._dir.listdir(layout.JOBS_DIR)
        found = sorted(
            name[: -len(".json")]
            for name in names
            if name.startswith(start) and name.endswith(".json") and is_job_id(name[:-5])
        )
        return found[:limit]

    # nodes -------------------------------------------------------------------------------
    def register_node(self, node: NodeInfo, *, now: float | None = None) -> None:
        """Insert or replace the node's record, its ``heartbeat_at`` set to ``now``."""
        record = layout.encode_node(dataclasses.replace(node, heartbeat_at=self._now(now)))
        self._write(lambda tx: tx.write_bytes(layout.node_path(node.id), record))

    def remove_node(self, node_id: str) -> None:
        """Forget the node; unknown ids are ignored."""
        self._write(lambda tx: tx.remove(layout.node_path(node_id)))

    def _nodes(self) -> list[NodeInfo]:
        nodes = []
        for name in self._dir.listdir(layout.NODES_DIR):
            if not name.endswith(".json"):
                continue
            data = self._dir.read(f"{layout.NODES_DIR}/{name}")
            if data is not None:
                nodes.append(layout.decode_node(data))
        return nodes

    def list_nodes(self) -> list[NodeInfo]:
        """Every node, oldest ``started_at`` first (then by id)."""
        return sorted(self._nodes(), key=lambda n: (n.started_at, n.id))

    def prune_nodes(self, *, older_than: float, now: float | None = None) -> int:
        """Forget nodes whose heartbeat is before ``now - older_than``; return how many."""
        cutoff = self._now(now) - older_than

        def work(tx: Transaction) -> int:
            stale = [n.id for n in self._nodes() if n.heartbeat_at < cutoff]
            for node_id in stale:
                tx.remove(layout.node_path(node_id))
            return len(stale)

        return self._write(work)

    # records (see conveyor.stores.file.records) -------------------------------------------
    def get_record(self, namespace: str, key: str, *, now: float | None = None) -> Record | None:
        """The live record, or None (no lock: record files are replaced atomically)."""
        check_record(namespace, key)
        return file_records.get(self._dir, namespace, key, self._now(now))

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
        """Compare-and-set in one journalled transaction under the lock (the clock is
        read once the lock is held, so a wait for it never judges expiry by a stale time)."""
        check_record(namespace, key, value, expect_version=expect_version, expires_at=expires_at)
        return self._write(
            lambda tx: file_records.put(
                tx, namespace, key, value, expect_version, expires_at, self._now(now)
            )
        )

    def delete_record(self, namespace: str, key: str, *, expect_version: int | None = None) -> bool:
        """Delete the record, live or expired (at ``expect_version`` when given)."""
        check_record(namespace, key, expect_version=expect_version)
        return self._write(lambda tx: file_records.delete(tx, namespace, key, expect_version))

    def list_records(
        self, namespace: str, *, prefix: str = "", now: float | None = None
    ) -> list[Record]:
        """Live records of the namespace, by key (no lock)."""
        check_record(namespace, prefix or "-")
        return file_records.list_live(self._dir, namespace, prefix, self._now(now))


# helpers ---------------------------------------------------------------------------------
def _read(tx: Transaction, reads: Reads) -> Stored:
    """What the planner needs to know of the stored jobs and keys (inside the transaction)."""
    states = {}
    for job_id in reads.job_ids:
        job = tx.job(job_id)
        if job is not None:
            states[job_id] = job.state
    unique = {}
    for key in reads.unique_keys:
        hold = tx.read_json(layout.unique_path(key))
        if hold is not None:
            unique[key] = _hold(tx, hold)
    idempotency = {}
    for key in reads.idempotency_keys:
        hold = tx.read_json(layout.idempotency_path(key))
        if hold is not None:
            idempotency[key] = _hold(tx, hold)
    return Stored(states, unique, idempotency)


def _hold(tx: Transaction, hold: dict[str, Any]) -> KeyHold:
    holder = tx.job(str(hold["job_id"]))
    expires = hold.get("expires_at")
    return KeyHold(
        str(hold["job_id"]),
        None if expires is None else float(expires),
        None if holder is None else holder.state,
        str(hold.get("fingerprint", "")),
    )


def _release_dependents(tx: Transaction, job_id: str, now: float) -> None:
    """Unblock dependents whose last dependency this was."""
    for dep_id in tx.pop_dependents(job_id):
        dep = tx.job(dep_id)
        if dep is None or dep.state is not S.BLOCKED:
            continue
        left = max(dep.blocked_by - 1, 0)
        if left:
            tx.put(dataclasses.replace(dep, blocked_by=left))
            continue
        target = S.SCHEDULED if dep.run_at > now else S.PENDING
        check_transition(dep_id, dep.state, target)
        tx.put(dataclasses.replace(dep, blocked_by=0, state=target))


def _quarantine(tx: Transaction, job_id: str, now: float, found_at: tuple[str, str] | None) -> None:
    """Dead-letter a claimed job whose file cannot be decoded (failed, ``corrupt``, the
    decode error recorded), rewriting its file; ``found_at`` is the (queue, marker path)
    the claim found it by, which a damaged file may not name."""
    salvaged = tx.corrupt[job_id]
    if not claimable(salvaged):
        return
    job = quarantined(salvaged, now)
    if not layout.is_queue_dir(job.queue):
        if found_at is None:
            return  # no queue to file it under: reads still show it as corrupt
        job = dataclasses.replace(job, queue=found_at[0])
    tx.put(job)
    # The markers follow from the decoded states, which a damaged file does not give:
    # drop the one the claim came by, and write the new one whatever the old was.
    if found_at is not None:
        tx.remove(found_at[1])
    tx.write_bytes(layout.marker_path(job), b"")
    del tx.corrupt[job_id]
    log.error("job %s quarantined (failed, corrupt): %s", job_id, salvaged.message)
    _propagate_failure(tx, job_id, now)


def _propagate_failure(tx: Transaction, job_id: str, now: float) -> None:
    """Fail or cancel (by each one's policy) every job waiting on ``job_id``, transitively."""
    todo = tx.pop_dependents(job_id)
    while todo:
        dep_id = todo.pop()
        dep = tx.job(dep_id)
        if dep is None or dep.state is not S.BLOCKED:
            continue
        target = S.FAILED if dep.on_dependency_failure is DependencyPolicy.FAIL else S.CANCELLED
        check_transition(dep_id, dep.state, target)
        tx.put(
            dataclasses.replace(
                dep,
                state=target,
                failure_reason=FailureReason.DEPENDENCY_FAILED.value,
                finished_at=now,
            )
        )
        todo.extend(tx.pop_dependents(dep_id))


def _set_cancelled(tx: Transaction, job: Job, now: float) -> None:
    check_transition(job.id, job.state, S.CANCELLED)
    tx.put(
        dataclasses.replace(
            job,
            state=S.CANCELLED,
            lease_token=None,
            lease_expires_at=None,
            finished_at=now,
            failure_reason=FailureReason.CANCELLED.value,
            cancel_requested=False,
        )
    )
    _propagate_failure(tx, job.id, now)


def _rescue(tx: Transaction, params: RescueParams, t: float) -> RescueResult:
    retried: list[str] = []
    failed: list[str] = []
    expired: list[tuple[float, str]] = []
    for queue in tx.queues(S.PROCESSING):
        expired.extend((b, i) for _, b, i in tx.markers(S.PROCESSING, queue) if b < t)
    for _, job_id in sorted(expired)[: params.limit]:
        job = tx.job(job_id)
        if job is None or job.state is not S.PROCESSING:
            continue
        decision = decide_rescue(
            job.id,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            rescue_count=job.rescue_count,
            worker_id=job.worker_id,
            started_at=job.started_at,
            params=params,
            now=t,
        )
        target, reason, error, rescues = (
            decision.target,
            decision.reason,
            decision.error,
            decision.rescues,
        )
        tx.put(
            dataclasses.replace(
                job,
                state=target,
                rescue_count=rescues,
                errors=(*job.errors, error),
                run_at=job.run_at if decision.retry_at is None else decision.retry_at,
                lease_token=None,
                lease_expires_at=None,
                finished_at=t,
                failure_reason=reason,
                cancel_requested=False,
            )
        )
        if reason:
            failed.append(job.id)
            _propagate_failure(tx, job.id, t)
        else:
            retried.append(job.id)
    return RescueResult(retried, failed)


def _needed_parents(tx: Transaction) -> set[str]:
    """Jobs a chain step that is not terminal yet reads when it runs (its ``parent_id``).

    Reads every unfinished job's record, once per batch and only when some job is old
    enough to delete: no index names a job's steps on this store."""
    needed: set[str] = set()
    for state in S:
        if state in TERMINAL_STATES:
            continue
        for queue in tx.queues(state):
            for _, _, job_id in tx.markers(state, queue):
                job = tx.job(job_id)
                if job is not None and job.parent_id:
                    needed.add(job.parent_id)
    return needed


def _drop_holds_of(tx: Transaction, job_id: str) -> int:
    """Remove the key holds that ``job_id`` (about to be deleted) owns."""
    job = tx.job(job_id)
    dropped = 0
    if job is None:
        return dropped
    for key, path in (
        (job.unique_key, layout.unique_path),
        (job.idempotency_key, layout.idempotency_path),
    ):
        if key:
            hold = tx.read_json(path(key))
            if hold is not None and hold.get("job_id") == job_id:
                tx.remove(path(key))
                dropped += 1
    return dropped


def _drop_orphans(tx: Transaction, now: float) -> int:
    dropped = 0
    for directory in (layout.UNIQUE_DIR, layout.IDEMPOTENCY_DIR):
        for name in tx.dir.listdir(directory):
            rel = f"{directory}/{name}"
            hold = tx.read_json(rel)
            if hold is None:
                continue
            expires = hold.get("expires_at")
            if tx.job(str(hold["job_id"])) is None or (expires is not None and expires <= now):
                tx.remove(rel)
                dropped += 1
    return dropped
