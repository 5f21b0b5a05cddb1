"""The pruner: finished jobs past their retention are deleted, in short batches.

Each :meth:`~conveyor.stores.base.Store.prune` call is one transaction of at most
``batch`` jobs, so a worker claiming on the same store waits at most one batch. A pass
walks completed, failed then cancelled jobs until none is left, and ends with one sweep
of key holds and dependency rows that other deletions left behind.

Inside workers, :class:`Pruner` runs a pass every ``interval`` seconds, on one process
at a time across every worker of the store (the leader lease ``pruner``). A pass that
has more to do than its time budget stops and carries on at the next step, so the
process that hosts it (the supervisor's tick, the solo worker's maintenance thread)
never stalls for long.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from conveyor.coordination import decisions
from conveyor.coordination.lease import LeaderLease
from conveyor.errors import InvalidOption, StoreError
from conveyor.job import JobState
from conveyor.maintenance.retention import Retention
from conveyor.stores.base import PruneParams, Store

log = logging.getLogger("conveyor.pruner")

LEASE_NAME = "pruner"
BATCH = 1000
"""Jobs deleted per transaction."""
JOB_RECORDS = (decisions.NAMESPACE,)
"""Record namespaces keyed by job id, deleted with their job."""
STEP_BUDGET = 1.0
"""Seconds a worker's pruning step may take before it yields to its host's other work."""


@dataclass(slots=True)
class PruneReport:
    """What a pass deleted (or, in a dry run, would delete)."""

    deleted: dict[str, int] = field(default_factory=dict)
    """Jobs per state (``completed``, ``failed``, ``cancelled``)."""
    orphans: int = 0
    """Rows deleted beside the jobs: their key holds, dependency rows and decision
    records, and what the final sweep found (orphans of other deletions, expired
    records)."""
    batches: int = 0
    seconds: float = 0.0
    longest_batch: float = 0.0
    """Longest single store call: how long a worker could have waited on it."""
    done: bool = True
    """False when the time budget ran out with old jobs left."""
    dry_run: bool = False

    @property
    def jobs(self) -> int:
        """Jobs deleted in every state."""
        return sum(self.deleted.values())

    def summary(self) -> str:
        """One line for logs: counts per state, orphans and timing."""
        counts = " ".join(f"{state}={n}" for state, n in self.deleted.items())
        if self.dry_run:
            return (
                f"would delete {self.jobs} jobs ({counts or 'none'}), "
                f"counted in {self.seconds:.2f}s"
            )
        return (
            f"deleted {self.jobs} jobs ({counts or 'none'}) and {self.orphans} related rows, "
            f"in {self.batches} batches, {self.seconds:.2f}s (longest {self.longest_batch:.3f}s)"
        )


def prune(
    store: Store,
    retention: Retention,
    *,
    batch: int = BATCH,
    budget: float | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> PruneReport:
    """One pass: delete jobs past ``retention``, ``batch`` per transaction.

    With ``budget`` (seconds), stop between batches once it is spent and report
    ``done=False``; a later pass continues where this one stopped (oldest first).
    With ``dry_run``, count per state and delete nothing.
    """
    if batch < 1:
        raise InvalidOption("batch", f"must be at least 1, got {batch!r}")
    clock = store.clock
    started = clock.monotonic()
    report = PruneReport(dry_run=dry_run)
    for state, age in retention.ages():
        if age is None:
            continue
        report.deleted[state.value] = 0
        while True:
            t0 = clock.monotonic()
            result = store.prune(_params(state, age, batch, now, dry_run))
            report.longest_batch = max(report.longest_batch, clock.monotonic() - t0)
            report.batches += 1
            report.deleted[state.value] += result.jobs
            report.orphans += result.orphans
            if dry_run or result.jobs < batch:
                break
            if budget is not None and clock.monotonic() - started >= budget:
                report.done = False
                report.seconds = clock.monotonic() - started
                return report
    if not dry_run:
        t0 = clock.monotonic()
        report.orphans += store.prune(_sweep_params(now)).orphans
        report.longest_batch = max(report.longest_batch, clock.monotonic() - t0)
        report.batches += 1
    report.seconds = clock.monotonic() - started
    return report


def _params(
    state: JobState, age: float, batch: int, now: float | None, dry_run: bool
) -> PruneParams:
    """Params that prune only ``state`` and leave the sweep to the end of the pass."""
    return PruneParams(
        completed_after=age if state is JobState.COMPLETED else None,
        failed_after=age if state is JobState.FAILED else None,
        cancelled_after=age if state is JobState.CANCELLED else None,
        limit=batch,
        now=now,
        sweep=False,
        dry_run=dry_run,
        job_records=JOB_RECORDS,
    )


def _sweep_params(now: float | None) -> PruneParams:
    return PruneParams(
        completed_after=None, failed_after=None, cancelled_after=None, now=now, sweep=True
    )


class Pruner:
    """Runs :func:`prune` every ``interval`` seconds while this process leads.

    ``step()`` is cheap when nothing is due (no store access), so a host may call it
    as often as it likes; the store's clock (``monotonic``) times the interval.
    """

    def __init__(
        self,
        store: Store,
        retention: Retention,
        *,
        holder: str,
        interval: float = 60.0,
        batch: int = BATCH,
        budget: float = STEP_BUDGET,
    ) -> None:
        if not interval > 0:
            raise InvalidOption(
                "interval", f"must be a positive number of seconds, not {interval!r}"
            )
        self.store = store
        self.retention = retention
        self.interval = float(interval)
        self.batch = batch
        self.budget = budget
        # The leader renews at every pass, so the lease must outlive one interval; if the
        # leader dies, another worker takes over after the ttl.
        self.lease = LeaderLease(store, LEASE_NAME, holder, ttl=max(2.5 * self.interval, 15.0))
        self._next: float | None = None
        self.backlog = False
        """True when the last pass ran out of budget; the next step continues at once."""

    @property
    def enabled(self) -> bool:
        """False when every state is kept forever (nothing to do, no lease taken)."""
        return any(age is not None for _, age in self.retention.ages())

    def due(self) -> bool:
        """Whether a step now would run a pass (if this process leads)."""
        return self.enabled and (
            self.backlog or self._next is None or self.store.clock.monotonic() >= self._next
        )

    def step(self) -> PruneReport | None:
        """Run a pass if one is due and this process leads; None otherwise."""
        if not self.due():
            return None
        self._next = self.store.clock.monotonic() + self.interval
        # Cleared first: a step that raises (store down) must wait for the interval, not
        # be retried at once by a host that loops without pause while there is a backlog.
        self.backlog = False
        if not self.lease.acquire():
            return None
        report = prune(self.store, self.retention, batch=self.batch, budget=self.budget)
        self.backlog = not report.done
        if report.jobs or report.orphans:
            log.info("pruner: %s", report.summary())
        return report

    def close(self) -> None:
        """Give the lease up (clean shutdown) so another worker can lead at once; on a
        store error the lease simply expires after its ttl."""
        if self.lease.held:
            try:
                self.lease.release()
            except StoreError as exc:
                log.warning("pruner: could not release the lease (%s); it expires by itself", exc)
