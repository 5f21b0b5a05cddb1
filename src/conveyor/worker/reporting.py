"""What a worker tells the outside world: counters, memory, and a reporter hook.

A worker run by the supervisor reports job starts/ends, liveness and leaks over
a pipe (:mod:`conveyor.worker.child`); a worker run on its own uses
:class:`NullReporter`.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from conveyor.job import Lease

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
LEAK_REPORT_MIB = 16.0
"""A task whose runs raised the child's peak RSS by this much in total is reported."""


@dataclass(slots=True)
class WorkerStats:
    """Counters a worker keeps about itself."""

    processed: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    released: int = 0
    deferred: int = 0
    """Put back by a condition or a limit (no attempt used)."""
    lost: int = 0
    unrecorded: int = 0
    """Outcomes the store refused to record (logged with the job id; the lease expires)."""


class Reporter(Protocol):
    """Receives a worker's events; every method must be cheap and never raise."""

    def claimed(self, leases: Sequence[Lease]) -> None:
        """A batch was claimed (empty: the previous batch is done with)."""
        ...

    def job_started(self, lease: Lease, timeout: float | None) -> None:
        """A job began running."""
        ...

    def job_finished(self, job_id: str, outcome: str) -> None:
        """A job ended (completed, retrying, failed, cancelled, released, lost), or its
        handler returned (``ran``: the outcome is recorded later)."""
        ...

    def alive(self, stats: WorkerStats) -> None:
        """Periodic liveness with the current counters."""
        ...

    def leak(self, task: str, growth_mib: float, runs: int) -> None:
        """A task keeps growing the process's memory."""
        ...

    def recycling(self, reason: str) -> None:
        """The worker is stopping to be replaced (max tasks, memory, lifetime)."""
        ...

    def memory_exceeded(self, job_id: str, message: str) -> None:
        """The running job passed its memory limit and did not stop when interrupted."""
        ...


class NullReporter:
    """Reports to nobody (a worker run on its own)."""

    def claimed(self, leases: Sequence[Lease]) -> None:
        """Nothing to tell."""

    def job_started(self, lease: Lease, timeout: float | None) -> None:
        """Nothing to tell."""

    def job_finished(self, job_id: str, outcome: str) -> None:
        """Nothing to tell."""

    def alive(self, stats: WorkerStats) -> None:
        """Nothing to tell."""

    def leak(self, task: str, growth_mib: float, runs: int) -> None:
        """Nothing to tell."""

    def recycling(self, reason: str) -> None:
        """Nothing to tell."""

    def memory_exceeded(self, job_id: str, message: str) -> None:
        """Nobody to kill us: the interrupt keeps being repeated instead."""


def rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Highest RSS this process has reached (one cheap syscall)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(slots=True)
class LeakTracker:
    """Attributes growth of the peak RSS to the task that caused it.

    Peak RSS only rises when memory reaches a new high, so a task that keeps
    memory across runs keeps raising it while well-behaved tasks stop doing so
    after warm-up. Each task is reported once, past :data:`LEAK_REPORT_MIB`.
    """

    threshold_mib: float = LEAK_REPORT_MIB
    growth: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)

    def record(self, task: str, peak_before: int, peak_after: int) -> tuple[float, int] | None:
        """Note one run; return ``(growth MiB, runs)`` the first time the task crosses."""
        self.runs[task] = self.runs.get(task, 0) + 1
        if peak_after <= peak_before:
            return None
        total = self.growth.get(task, 0) + peak_after - peak_before
        self.growth[task] = total
        mib = total / (1 << 20)
        if mib >= self.threshold_mib and task not in self.reported:
            self.reported.add(task)
            return mib, self.runs[task]
        return None
