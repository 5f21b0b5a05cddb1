"""The in-memory store: the reference semantics of the Store contract.

Used for tests, for sync mode and as the model the other drivers are checked
against. One lock guards everything, so each method is one atomic step. Nothing
survives the process.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from conveyor.clock import Clock, SystemClock
from conveyor.errors import (
    ConfigurationError,
    InvalidOption,
    LeaseLost,
)
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
from conveyor.stores.enqueue_plan import (
    KeyHold,
    PlannedJob,
    Reads,
    Stored,
    plan_enqueue,
    reads_for,
)
from conveyor.stores.records import RecordTable, check_record
from conveyor.stores.rescue import decide_rescue
from conveyor.stores.selection import distinct_leases, matches, page_bounds, unique_ids

S = JobState


@dataclass(slots=True)
class _KeyHold:
    job_id: str
    expires_at: float | None
    fingerprint: str = ""


class MemoryStore:
    """A Store held in this process's memory (reference semantics, no durability)."""

    capabilities = Capabilities(transactional_enqueue=False, blocking_wait=True, shared=False)

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._dependents: dict[str, list[str]] = {}
        self._unique: dict[str, _KeyHold] = {}
        self._idempotency: dict[str, _KeyHold] = {}
        self._nodes: dict[str, NodeInfo] = {}
        self._records = RecordTable.empty()
        self._wakeups = 0

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

    def now(self) -> float:
        """The injected clock."""
        return self.clock.now()

    def _now(self, now: float | None) -> float:
        return self.clock.now() if now is None else now

    # producers ---------------------------------------------------------------------------
    def enqueue(
        self, jobs: Sequence[NewJob], *, connection: object | None = None, now: float | None = None
    ) -> list[EnqueueResult]:
        """Insert the batch atomically (validation first, then writes)."""
        if connection is not None:
            raise ConfigurationError(
                "the memory store cannot join a database transaction; use the sqlite store"
            )
        t = self._now(now)
        with self._lock:
            plan = plan_enqueue(jobs, t, self._read(reads_for(jobs)))
            if any(planned.job.id in self._jobs for planned in plan.jobs):
                raise InvalidOption("id", "a job with this id already exists (ids must be unique)")
            for planned in plan.jobs:
                self._insert(planned, t)
            if any(planned.state is S.PENDING for planned in plan.jobs):
                self._wake()
        return plan.results

    def _wake(self) -> None:
        """Tell waiters that work may be available (call with the lock held)."""
        self._wakeups += 1
        self._lock.notify_all()

    def _read(self, reads: Reads) -> Stored:
        """What the planner needs to know of the stored jobs and keys (lock held)."""
        states = {i: self._jobs[i].state for i in reads.job_ids if i in self._jobs}
        unique = {k: self._hold(self._unique[k]) for k in reads.unique_keys if k in self._unique}
        idempotency = {
            k: self._hold(self._idempotency[k])
            for k in reads.idempotency_keys
            if k in self._idempotency
        }
        return Stored(states, unique, idempotency)

    def _hold(self, hold: _KeyHold) -> KeyHold:
        holder = self._jobs.get(hold.job_id)
        state = None if holder is None else holder.state
        return KeyHold(hold.job_id, hold.expires_at, state, hold.fingerprint)

    def _insert(self, planned: PlannedJob, now: float) -> None:
        new, state = planned.job, planned.state
        reason = planned.failure_reason
        job = Job(
            id=new.id,
            queue=new.queue,
            task=new.task,
            payload=new.payload,
            state=state,
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
        self._jobs[job.id] = job
        for dep in planned.open_deps:
            self._dependents.setdefault(dep, []).append(job.id)
        if new.unique_key:
            expires = None if new.unique_for is None else now + new.unique_for
            self._unique[new.unique_key] = _KeyHold(job.id, expires)
        if new.idempotency_key:
            self._idempotency[new.idempotency_key] = _KeyHold(
                job.id, now + new.idempotency_for, new.fingerprint
            )

    # consumers ---------------------------------------------------------------------------
    def claim(self, params: ClaimParams) -> list[Lease]:
        """Lease up to ``limit`` pending jobs, queues in the given order."""
        now = self._now(params.now)
        with self._lock:
            if params.job_ids is not None:
                chosen = [
                    self._jobs[i]
                    for i in params.job_ids
                    if i in self._jobs and self._jobs[i].state is S.PENDING
                ][: params.limit]
            else:
                chosen = []
                for queue in params.queues:
                    room = params.limit - len(chosen)
                    if room <= 0:
                        break
                    ready = [
                        j for j in self._jobs.values() if j.state is S.PENDING and j.queue == queue
                    ]
                    ready.sort(key=lambda j: (-j.priority, j.run_at, j.id))
                    chosen.extend(ready[:room])
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
                self._jobs[job.id] = claimed
                leases.append(Lease(claimed, token, expires))
            return leases

    def _held(self, lease: Lease) -> Job | None:
        job = self._jobs.get(lease.job_id)
        if job is None or job.state is not S.PROCESSING or job.lease_token != lease.token:
            return None
        return job

    def _require(self, lease: Lease) -> Job:
        job = self._held(lease)
        if job is None:
            raise LeaseLost(lease.job_id)
        return job

    def heartbeat(
        self, leases: Sequence[Lease], *, extend: float, now: float | None = None
    ) -> HeartbeatResult:
        """Extend each held lease; report the lost and the cancel-requested."""
        leases = distinct_leases(leases)
        t = self._now(now)
        renewed: dict[str, float] = {}
        lost: list[str] = []
        cancel: list[str] = []
        with self._lock:
            for lease in leases:
                job = self._held(lease)
                if job is None:
                    lost.append(lease.job_id)
                    continue
                expires = t + extend
                self._jobs[job.id] = dataclasses.replace(
                    job, lease_expires_at=expires, heartbeat_at=t
                )
                renewed[job.id] = expires
                if job.cancel_requested:
                    cancel.append(job.id)
        return HeartbeatResult(renewed, lost, cancel)

    def complete(self, completions: Sequence[Completion], *, now: float | None = None) -> list[str]:
        """Mark each held job completed and release its dependents."""
        t = self._now(now)
        lost: list[str] = []
        with self._lock:
            for done in completions:
                job = self._held(done.lease)
                if job is None:
                    lost.append(done.lease.job_id)
                    continue
                check_transition(job.id, job.state, S.COMPLETED)
                self._jobs[job.id] = dataclasses.replace(
                    job,
                    state=S.COMPLETED,
                    result=done.result,
                    lease_token=None,
                    lease_expires_at=None,
                    finished_at=t,
                    cancel_requested=False,
                )
                if self._release_dependents(job.id, t):
                    self._wake()
        return lost

    def complete_and_claim(
        self, completions: Sequence[Completion], params: ClaimParams
    ) -> tuple[list[str], list[Lease]]:
        """Both under one hold of the lock, so nothing happens in between."""
        with self._lock:
            lost = self.complete(completions, now=params.now)
            return lost, self.claim(params)

    def _release_dependents(self, job_id: str, now: float) -> int:
        """Unblock dependents whose last dependency this was; return how many became pending."""
        ready = 0
        for dep_id in self._dependents.pop(job_id, []):
            dep = self._jobs.get(dep_id)
            if dep is None or dep.state is not S.BLOCKED:
                continue
            left = max(dep.blocked_by - 1, 0)
            if left:
                self._jobs[dep_id] = dataclasses.replace(dep, blocked_by=left)
                continue
            target = S.SCHEDULED if dep.run_at > now else S.PENDING
            check_transition(dep_id, dep.state, target)
            self._jobs[dep_id] = dataclasses.replace(dep, blocked_by=0, state=target)
            ready += target is S.PENDING
        return ready

    def _propagate_failure(self, job_id: str, now: float) -> None:
        """Fail or cancel (by each one's policy) every job waiting on ``job_id``, transitively."""
        todo = list(self._dependents.pop(job_id, []))
        while todo:
            dep_id = todo.pop()
            dep = self._jobs.get(dep_id)
            if dep is None or dep.state is not S.BLOCKED:
                continue
            target = S.FAILED if dep.on_dependency_failure is DependencyPolicy.FAIL else S.CANCELLED
            check_transition(dep_id, dep.state, target)
            self._jobs[dep_id] = dataclasses.replace(
                dep,
                state=target,
                failure_reason=FailureReason.DEPENDENCY_FAILED.value,
                finished_at=now,
            )
            todo.extend(self._dependents.pop(dep_id, []))

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
        with self._lock:
            job = self._require(lease)
            target = S.RETRYING if retry_at is not None else S.FAILED
            check_transition(job.id, job.state, target)
            self._jobs[job.id] = dataclasses.replace(
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
            if target is S.FAILED:
                self._propagate_failure(job.id, t)
            return target

    def release(
        self, lease: Lease, *, run_at: float | None = None, now: float | None = None
    ) -> None:
        """Give the job back unstarted: pending, or scheduled if ``run_at`` is ahead."""
        t = self._now(now)
        with self._lock:
            job = self._require(lease)
            target = S.SCHEDULED if run_at is not None and run_at > t else S.PENDING
            check_transition(job.id, job.state, target)
            self._jobs[job.id] = dataclasses.replace(
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
            if target is S.PENDING:
                self._wake()

    def finish_cancelled(self, lease: Lease, *, now: float | None = None) -> None:
        """End the held job as cancelled and cancel/fail its dependents."""
        t = self._now(now)
        with self._lock:
            job = self._require(lease)
            self._set_cancelled(job, t)

    def _set_cancelled(self, job: Job, now: float) -> None:
        check_transition(job.id, job.state, S.CANCELLED)
        self._jobs[job.id] = dataclasses.replace(
            job,
            state=S.CANCELLED,
            lease_token=None,
            lease_expires_at=None,
            finished_at=now,
            failure_reason=FailureReason.CANCELLED.value,
            cancel_requested=False,
        )
        self._propagate_failure(job.id, now)

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block on the condition until an enqueue or release notifies, or ``timeout``."""
        with self._lock:
            seen = self._wakeups
            self._lock.wait_for(lambda: self._wakeups != seen, timeout=timeout)
            return self._wakeups != seen

    # maintenance -------------------------------------------------------------------------
    def stage_due(self, *, now: float | None = None, limit: int = 1000) -> StageResult:
        """Promote due scheduled/retrying jobs; report the next due time."""
        t = self._now(now)
        promoted = 0
        next_due: float | None = None
        with self._lock:
            waiting = sorted(
                (j for j in self._jobs.values() if j.state in WAITING_STATES),
                key=lambda j: (j.run_at, j.id),
            )
            for job in waiting:
                if job.run_at <= t and promoted < limit:
                    self._jobs[job.id] = dataclasses.replace(job, state=S.PENDING)
                    promoted += 1
                elif next_due is None or job.run_at < next_due:
                    next_due = job.run_at
            if promoted:
                self._wake()
        return StageResult(promoted, next_due)

    def rescue_expired(self, params: RescueParams) -> RescueResult:
        """Retry or fail processing jobs whose lease expired."""
        t = self._now(params.now)
        retried: list[str] = []
        failed: list[str] = []
        with self._lock:
            expired = sorted(
                (
                    j
                    for j in self._jobs.values()
                    if j.state is S.PROCESSING
                    and j.lease_expires_at is not None
                    and j.lease_expires_at < t
                ),
                key=lambda j: (j.lease_expires_at or 0.0, j.id),
            )[: params.limit]
            for job in expired:
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
                self._jobs[job.id] = dataclasses.replace(
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
                if reason:
                    failed.append(job.id)
                    self._propagate_failure(job.id, t)
                else:
                    retried.append(job.id)
        return RescueResult(retried, failed)

    def prune(self, params: PruneParams) -> PruneResult:
        """Delete terminal jobs past their retention (oldest first) with their key holds,
        except a parent whose chain step is not terminal yet; with ``sweep``, drop
        orphaned key holds and expired records too."""
        t = self._now(params.now)
        ages = {
            S.COMPLETED: params.completed_after,
            S.FAILED: params.failed_after,
            S.CANCELLED: params.cancelled_after,
        }
        with self._lock:
            # A chain step reads its parent's result when it runs: keep the parent till then.
            needed = {
                j.parent_id
                for j in self._jobs.values()
                if j.parent_id and j.state not in TERMINAL_STATES
            }
            old = sorted(
                (
                    (j.finished_at or j.created_at, j.id)
                    for j in self._jobs.values()
                    if j.state in TERMINAL_STATES
                    and (age := ages[j.state]) is not None
                    and (j.finished_at or j.created_at) <= t - age
                    and j.id not in needed
                ),
            )
            if params.dry_run:
                return PruneResult(len(old), 0)
            orphans = 0
            for _, job_id in old[: params.limit]:
                orphans += self._drop_holds_of(self._jobs.pop(job_id))
                self._dependents.pop(job_id, None)
                orphans += sum(self._records.delete(ns, job_id, None) for ns in params.job_records)
            if params.sweep:
                orphans += self._drop_orphans(t) + self._records.drop_expired(t)
        return PruneResult(min(len(old), params.limit), orphans)

    def _drop_holds_of(self, job: Job) -> int:
        dropped = 0
        for table, key in (
            (self._unique, job.unique_key),
            (self._idempotency, job.idempotency_key),
        ):
            hold = table.get(key) if key else None
            if key and hold is not None and hold.job_id == job.id:
                del table[key]
                dropped += 1
        return dropped

    def _drop_orphans(self, now: float) -> int:
        dropped = 0
        for table in (self._unique, self._idempotency):
            for key in [
                k
                for k, hold in table.items()
                if hold.job_id not in self._jobs
                or (hold.expires_at is not None and hold.expires_at <= now)
            ]:
                del table[key]
                dropped += 1
        for dep_id, waiting in list(self._dependents.items()):
            alive = [i for i in waiting if i in self._jobs]
            if dep_id not in self._jobs or not alive:
                dropped += len(waiting)
                del self._dependents[dep_id]
            elif len(alive) < len(waiting):
                dropped += len(waiting) - len(alive)
                self._dependents[dep_id] = alive
        return dropped

    # management --------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        """One job by id."""
        with self._lock:
            return self._jobs.get(job_id)

    def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """Jobs by id, in order, unknown ids skipped."""
        with self._lock:
            return [self._jobs[i] for i in job_ids if i in self._jobs]

    def search(self, query: JobQuery) -> Page:
        """Filter, order by created_at then id, and page."""
        limit, offset = page_bounds(query)
        with self._lock:
            found = [j for j in self._jobs.values() if matches(j, query)]
        found.sort(key=lambda j: (j.created_at, j.id), reverse=query.newest_first)
        return Page(found[offset : offset + limit], len(found), limit, offset)

    def stats(self, *, now: float | None = None) -> list[StateCounts]:
        """Counts per queue and state, oldest pending time per queue."""
        with self._lock:
            by_queue: dict[str, StateCounts] = {}
            for job in self._jobs.values():
                entry = by_queue.setdefault(job.queue, StateCounts(job.queue))
                entry.counts[job.state.value] = entry.counts.get(job.state.value, 0) + 1
                if job.state is S.PENDING and (
                    entry.oldest_pending_at is None or job.run_at < entry.oldest_pending_at
                ):
                    entry.oldest_pending_at = job.run_at
        return [by_queue[q] for q in sorted(by_queue)]

    def cancel(
        self, job_ids: Sequence[str], *, force: bool = False, now: float | None = None
    ) -> CancelResult:
        """Cancel waiting jobs now; processing ones by flag, or at once with ``force``."""
        t = self._now(now)
        cancelled: list[str] = []
        requested: list[str] = []
        skipped: list[str] = []
        with self._lock:
            for job_id in unique_ids(job_ids):
                job = self._jobs.get(job_id)
                if job is None or job.state in TERMINAL_STATES:
                    skipped.append(job_id)
                elif job.state is S.PROCESSING and not force:
                    self._jobs[job_id] = dataclasses.replace(job, cancel_requested=True)
                    requested.append(job_id)
                else:
                    self._set_cancelled(job, t)
                    cancelled.append(job_id)
        return CancelResult(cancelled, requested, skipped)

    def retry(self, job_ids: Sequence[str], *, now: float | None = None) -> list[str]:
        """Failed/cancelled -> pending with fresh attempts (errors kept)."""
        t = self._now(now)
        moved: list[str] = []
        with self._lock:
            for job_id in unique_ids(job_ids):
                job = self._jobs.get(job_id)
                if job is None or job.state not in (S.FAILED, S.CANCELLED):
                    continue
                check_transition(job_id, job.state, S.PENDING)
                self._jobs[job_id] = dataclasses.replace(
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
                moved.append(job_id)
            if moved:
                self._wake()
        return moved

    # job controls ------------------------------------------------------------------------
    def reprioritize(
        self, job_ids: Sequence[str], priority: int, *, now: float | None = None
    ) -> list[str]:
        """Set the priority of waiting jobs; the claim order reads it directly."""
        value = controls.check_priority(priority)
        return self._change_waiting(job_ids, lambda job: dataclasses.replace(job, priority=value))

    def move(self, job_ids: Sequence[str], queue: str, *, now: float | None = None) -> list[str]:
        """Move waiting jobs to ``queue``; wake waiters when a pending one moved."""
        target = controls.check_queue(queue)
        return self._change_waiting(job_ids, lambda job: dataclasses.replace(job, queue=target))

    def _change_waiting(self, job_ids: Sequence[str], change: Callable[[Job], Job]) -> list[str]:
        changed: list[str] = []
        with self._lock:
            for job_id in unique_ids(job_ids):
                job = self._jobs.get(job_id)
                if job is None or job.state not in controls.MOVABLE_STATES:
                    continue
                self._jobs[job_id] = change(job)
                changed.append(job_id)
            if any(self._jobs[i].state is S.PENDING for i in changed):
                self._wake()
        return changed

    def find_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Ids starting with ``prefix``, lowest first (a scan: the reference, not fast)."""
        start = controls.normalize_prefix(prefix)
        controls.check_find_limit(limit)
        with self._lock:
            found = sorted(i for i in self._jobs if i.startswith(start))
        return found[:limit]

    # nodes -------------------------------------------------------------------------------
    def register_node(self, node: NodeInfo, *, now: float | None = None) -> None:
        """Insert or replace the node's record, its ``heartbeat_at`` set to ``now``."""
        t = self._now(now)
        with self._lock:
            self._nodes[node.id] = dataclasses.replace(node, heartbeat_at=t)

    def remove_node(self, node_id: str) -> None:
        """Forget the node; unknown ids are ignored."""
        with self._lock:
            self._nodes.pop(node_id, None)

    def list_nodes(self) -> list[NodeInfo]:
        """Every node, oldest ``started_at`` first (then by id)."""
        with self._lock:
            nodes = list(self._nodes.values())
        return sorted(nodes, key=lambda n: (n.started_at, n.id))

    def prune_nodes(self, *, older_than: float, now: float | None = None) -> int:
        """Forget nodes whose heartbeat is before ``now - older_than``; return how many."""
        cutoff = self._now(now) - older_than
        with self._lock:
            stale = [i for i, n in self._nodes.items() if n.heartbeat_at < cutoff]
            for node_id in stale:
                del self._nodes[node_id]
        return len(stale)

    def delete(self, job_ids: Sequence[str]) -> int:
        """Delete non-processing jobs; dependents of unfinished ones get their policy."""
        t = self.clock.now()
        deleted = 0
        with self._lock:
            for job_id in unique_ids(job_ids):
                job = self._jobs.get(job_id)
                if job is None or job.state is S.PROCESSING:
                    continue
                del self._jobs[job_id]
                deleted += 1
                if job.state is not S.COMPLETED:
                    self._propagate_failure(job_id, t)
                self._dependents.pop(job_id, None)
        return deleted

    # testing aids --------------------------------------------------------------------------
    # records -----------------------------------------------------------------------------
    def get_record(self, namespace: str, key: str, *, now: float | None = None) -> Record | None:
        """The live record, or None."""
        check_record(namespace, key)
        with self._lock:
            return self._records.get(namespace, key, self._now(now))

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
        """Compare-and-set under the store lock."""
        check_record(namespace, key, value, expect_version=expect_version, expires_at=expires_at)
        with self._lock:
            return self._records.put(
                namespace, key, value, expect_version, expires_at, self._now(now)
            )

    def delete_record(self, namespace: str, key: str, *, expect_version: int | None = None) -> bool:
        """Delete the record (at ``expect_version`` when given)."""
        check_record(namespace, key, expect_version=expect_version)
        with self._lock:
            return self._records.delete(namespace, key, expect_version)

    def list_records(
        self, namespace: str, *, prefix: str = "", now: float | None = None
    ) -> list[Record]:
        """Live records of the namespace, by key."""
        check_record(namespace, prefix or "-")
        with self._lock:
            return self._records.list(namespace, prefix, self._now(now))

    def all_jobs(self) -> list[Job]:
        """Every job, oldest first (for tests and the sync mode)."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: (j.created_at, j.id))
