"""Acknowledging runs: each outcome becomes exactly one fenced store call.

A completion waits to be written with the next claim (one commit for both), or
alone once the oldest pending one is as old as the ack window, or before a job that
may run long. Any other outcome is written at once. Writes retry while the store is
unavailable and the lease is still held; a lease lost meanwhile drops the write (the
rescuer runs the job again). Each end is counted, reported and published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from conveyor.errors import LeaseLost, StoreError, StoreUnavailable
from conveyor.events import JobFinished
from conveyor.job import Lease
from conveyor.runtime import Runtime
from conveyor.stores.base import Completion
from conveyor.worker.executor import Kind, Outcome
from conveyor.worker.heartbeat import LeaseKeeper
from conveyor.worker.reporting import Reporter, WorkerStats

log = logging.getLogger("conveyor.worker")

FLUSH_SHARE = 0.03
"""Writing pending completions may take this share of a busy worker's time: a store whose
writes take longer than ``ack_flush_interval * FLUSH_SHARE`` gets fewer, larger batches..."""
FLUSH_STRETCH = 4.0
"""...waiting at most this many times ``ack_flush_interval``."""
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 5.0
"""Back-off after a store error: doubles from the first to the longest wait."""

COMPLETED = Outcome(Kind.COMPLETED)
RELEASED = Outcome(Kind.RELEASED)

_COUNTERS = {
    "retrying": "retried",
    "failed": "failed",
    "cancelled": "cancelled",
    "skipped": "cancelled",
    "deferred": "deferred",
    "released": "released",
    "lost": "lost",
    "unrecorded": "unrecorded",
}
"""The :class:`WorkerStats` counter each end of a run adds to."""


def next_backoff(previous: float) -> float:
    """The wait after ``previous`` (0: the first error)."""
    return min(max(previous * 2, BACKOFF_FIRST), BACKOFF_MAX)


class Acknowledger:
    """One worker's pending completions and the store calls that record its runs."""

    def __init__(
        self,
        app: Runtime,
        keeper: LeaseKeeper,
        reporter: Reporter,
        stats: WorkerStats,
        *,
        worker_id: str,
        flush_interval: float,
    ) -> None:
        self.app = app
        self.store = app.store
        self.keeper = keeper
        self.reporter = reporter
        self.stats = stats
        self.worker_id = worker_id
        self.flush_interval = flush_interval
        self.pending: list[Completion] = []
        """Completions not written yet (see the module docstring)."""
        self.lost: set[str] = set()
        """Jobs whose lease the heartbeat found lost: their writes are dropped."""
        self.sleep: Callable[[float], None] = time.sleep
        """How write retries wait (tests record the waits instead)."""
        self._ack_by = 0.0
        """Monotonic time by which the oldest pending completion must be written."""
        self.window = flush_interval
        """How long completions may wait: ``ack_flush_interval``, or longer when the store's
        writes are slow (see :data:`FLUSH_SHARE`)."""
        self._quick_tasks: set[str] = set()
        """Tasks whose last run here was shorter than the ack window: pending
        completions may wait through one of them (a job of any other task might run long)."""
        self._runtimes: dict[str, float] = {}

    # pending completions -----------------------------------------------------------------
    def take(self) -> list[Completion]:
        """The pending completions, to be written with a claim (no longer pending)."""
        acks, self.pending = self.pending, []
        return acks

    def put_back(self, acks: list[Completion]) -> None:
        """Completions a failed claim did not write: pending again, unless lost."""
        self.pending = self.still_held(acks) + self.pending

    def due(self, lease: Lease) -> bool:
        """Whether pending completions must be written before ``lease``'s job starts: the
        oldest is as old as the ack window, or the job may run long (its task is not
        known to be quick), which would hold them for its whole run."""
        return lease.job.task not in self._quick_tasks or self.app.clock.monotonic() >= self._ack_by

    def ran(self, task: str, runtime: float) -> None:
        """Note how long a run of ``task`` took (quick tasks let completions wait)."""
        if runtime < self.window:
            self._quick_tasks.add(task)
        else:
            self._quick_tasks.discard(task)

    # recording ---------------------------------------------------------------------------
    def acknowledge(self, lease: Lease, outcome: Outcome, runtime: float) -> None:
        """Turn an outcome into its one fenced store call.

        The lease stays tracked (the heartbeat renews it) until the call succeeds, so
        a store outage delays the acknowledgement instead of losing the job's result."""
        job = lease.job
        if outcome.kind is not Kind.DEFERRED:  # a put-back job did not run here
            self.stats.processed += 1
        if outcome.kind is Kind.COMPLETED:
            # acknowledged with the next claim (one commit), or by flush once the
            # oldest is window old or before a job that may run long (due)
            if not self.pending:
                self._ack_by = self.app.clock.monotonic() + self.window
            self.pending.append(Completion(lease, outcome.result))
            self._runtimes[job.id] = runtime
            return
        label = self._record(lease, outcome)
        self.keeper.untrack(job.id)
        self.lost.discard(job.id)
        self.count(label)
        self.finished(lease, outcome, label, runtime)

    def release_unstarted(self, leases: list[Lease]) -> None:
        """Give back what was claimed but not started (a stop came), retrying through a
        store outage: a lease left to expire would cost the job a rescue."""
        for lease in leases:
            label = self._record(lease, RELEASED)
            self.keeper.untrack(lease.job_id)
            self.lost.discard(lease.job_id)
            self.count(label)

    def _record(self, lease: Lease, outcome: Outcome) -> str:
        """Make the outcome's store call, retrying while the store is unavailable and the
        lease is still ours. Returns the label it ended with (the outcome, ``lost`` or
        ``unrecorded``)."""
        job_id, kind = lease.job_id, outcome.kind.value
        backoff = 0.0
        while True:
            try:
                self._store_outcome(lease, outcome)
                return kind
            except LeaseLost:
                log.warning("job %s: lease lost before its %s was recorded", job_id, kind)
                return "lost"
            except StoreUnavailable as exc:
                if job_id in self.lost:
                    log.error(
                        "job %s: lease expired while the store was unavailable; its %s was "
                        "not recorded and the job will be rescued",
                        job_id,
                        kind,
                    )
                    return "lost"
                backoff = next_backoff(backoff)
                log.warning(
                    "job %s: store unavailable recording its %s (%s); retrying in %.2fs",
                    job_id,
                    kind,
                    exc,
                    backoff,
                )
                self.sleep(backoff)
            except StoreError as exc:
                log.error(
                    "job %s: the store refused to record its %s: %s: %s",
                    job_id,
                    kind,
                    type(exc).__name__,
                    exc,
                )
                return "unrecorded"

    def _store_outcome(self, lease: Lease, outcome: Outcome) -> None:
        kind = outcome.kind
        if kind is Kind.RETRYING:
            assert outcome.error is not None
            self.store.fail(lease, outcome.error, retry_at=outcome.retry_at)
        elif kind is Kind.FAILED:
            assert outcome.error is not None
            self.store.fail(lease, outcome.error, retry_at=None, reason=outcome.reason)
        elif kind is Kind.CANCELLED or kind is Kind.SKIPPED:
            self.store.finish_cancelled(lease)
        else:  # DEFERRED, RELEASED (a released job may wait: a store error put it back)
            self.store.release(lease, run_at=outcome.retry_at)

    def count(self, label: str) -> None:
        """Add one to the counter of ``label`` (completions are counted when written)."""
        counter = _COUNTERS.get(label)
        if counter is not None:
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)

    # writing pending completions ---------------------------------------------------------
    def flush(self) -> None:
        """Acknowledge deferred completions now (before idling or stopping), retrying while
        the store is unavailable and the leases are still held."""
        acks = self.take()
        backoff = 0.0
        while acks:
            try:
                started = self.app.clock.monotonic()
                lost = self.store.complete(acks)
                self._measured(self.app.clock.monotonic() - started)
            except StoreUnavailable as exc:
                acks = self.still_held(acks)
                backoff = next_backoff(backoff)
                log.warning(
                    "store unavailable acknowledging %d jobs (%s); retrying in %.2fs",
                    len(acks),
                    exc,
                    backoff,
                )
                self.sleep(backoff)
                continue
            except StoreError as exc:
                log.error(
                    "the store refused to record the completion of jobs %s: %s: %s",
                    ", ".join(a.lease.job_id for a in acks),
                    type(exc).__name__,
                    exc,
                )
                for done in acks:
                    runtime = self._done_with(done.lease.job_id)
                    self.count("unrecorded")
                    self.finished(done.lease, COMPLETED, "unrecorded", runtime)
                return
            self.acknowledged(acks, lost)
            return

    def _measured(self, took: float) -> None:
        """Widen the ack window (up to :data:`FLUSH_STRETCH` times the interval) so that
        writing completions stays under :data:`FLUSH_SHARE` of the time; a faster write
        narrows it again (0 stays 0: each completion at once)."""
        interval = self.flush_interval
        self.window = min(max(interval, took / FLUSH_SHARE), interval * FLUSH_STRETCH)

    def still_held(self, acks: list[Completion]) -> list[Completion]:
        """Drop completions whose lease expired meanwhile (the rescuer runs them again)."""
        if not self.lost:
            return acks
        held: list[Completion] = []
        for done in acks:
            job_id = done.lease.job_id
            if job_id in self.lost:
                log.error(
                    "job %s: lease expired while the store was unavailable; its completion "
                    "was not recorded and the job will be rescued",
                    job_id,
                )
                self._done_with(job_id)
                self.count("lost")
                self.finished(done.lease, COMPLETED, "lost", 0.0)
            else:
                held.append(done)
        return held

    def _done_with(self, job_id: str) -> float:
        """Stop renewing the job's lease; return its run time."""
        self.keeper.untrack(job_id)
        self.lost.discard(job_id)
        return self._runtimes.pop(job_id, 0.0)

    def acknowledged(self, acks: list[Completion], lost: list[str]) -> None:
        """Completions the store wrote, except those whose lease was ``lost``."""
        lost_ids = set(lost)
        for done in acks:
            runtime = self._done_with(done.lease.job_id)
            if done.lease.job_id in lost_ids:
                self.stats.lost += 1
                log.warning("job %s: lease lost, result dropped", done.lease.job_id)
                self.finished(done.lease, COMPLETED, "lost", runtime)
            else:
                self.stats.completed += 1
                self.finished(done.lease, COMPLETED, "completed", runtime)

    def finished(self, lease: Lease, outcome: Outcome, label: str, runtime: float) -> None:
        """Report and publish the end of a run."""
        self.reporter.job_finished(lease.job_id, label)
        events = self.app.events
        if not events.wants(JobFinished):
            return
        job = lease.job
        error = outcome.error
        retry_in = None
        if outcome.retry_at is not None:
            retry_in = max(outcome.retry_at - self.app.clock.now(), 0.0)
        events.publish(
            JobFinished(
                job.id,
                job.task,
                job.queue,
                job.attempt,
                self.worker_id,
                label,
                runtime,
                f"{error.type}: {error.message}" if error else "",
                retry_in=retry_in,
                reason=str(outcome.reason or ""),
                detail=outcome.detail,
                traceback=error.traceback if error else "",
            )
        )
