"""Autoscaling: how many workers the backlog calls for, with hysteresis.

:func:`suggest_workers` is the stateless signal (also printed by
``conveyor scaling`` for external autoscalers such as a Kubernetes HPA/KEDA);
:class:`Autoscaler` adds bounds and hysteresis for the supervisor: it grows by
one child per decision while work waits, and shrinks by one only after the
suggestion has stayed below the current count for ``scale_down_after`` seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from conveyor.job import JobState, StateCounts

WAIT_TARGET = 1.0
"""Seconds a job may wait before the backlog counts as urgent."""


def suggest_workers(
    *, pending: int, busy: int, oldest_wait: float, jobs_per_worker: int = 1
) -> int:
    """Workers needed to run what is running plus what waits.

    ``busy + pending`` jobs want a worker each (``jobs_per_worker`` lets one worker
    stand for several short jobs). A backlog that has waited past
    :data:`WAIT_TARGET` asks for at least one more worker than are busy.
    """
    want = math.ceil((busy + pending) / max(jobs_per_worker, 1))
    if pending and oldest_wait >= WAIT_TARGET:
        want = max(want, busy + 1)
    return want


@dataclass(frozen=True, slots=True)
class Backlog:
    """What some queues hold: the input of a scaling decision."""

    queues: tuple[str, ...]
    """The queues counted (those asked for, else every queue with jobs)."""
    pending: int
    processing: int
    oldest_pending_at: float | None
    """When the oldest pending job became due; None when nothing is pending."""

    def oldest_wait(self, now: float) -> float:
        """Seconds the oldest pending job has waited at ``now`` (0 when none waits)."""
        if self.oldest_pending_at is None:
            return 0.0
        return max(now - self.oldest_pending_at, 0.0)


def backlog(stats: Iterable[StateCounts], queues: Sequence[str] | None = None) -> Backlog:
    """Add up ``stats`` over ``queues`` (every queue when None or empty)."""
    chosen = [entry for entry in stats if not queues or entry.queue in queues]
    waiting = [e.oldest_pending_at for e in chosen if e.oldest_pending_at is not None]
    return Backlog(
        queues=tuple(queues or [entry.queue for entry in chosen]),
        pending=sum(entry.counts.get(JobState.PENDING.value, 0) for entry in chosen),
        processing=sum(entry.counts.get(JobState.PROCESSING.value, 0) for entry in chosen),
        oldest_pending_at=min(waiting, default=None),
    )


@dataclass(slots=True)
class Autoscaler:
    """Bounds plus hysteresis around :func:`suggest_workers`."""

    low: int
    high: int
    scale_down_after: float = 10.0
    _below_since: float | None = None

    def decide(
        self, now: float, *, current: int, pending: int, busy: int, oldest_wait: float
    ) -> int:
        """The child count to aim for now (``now`` is monotonic seconds)."""
        want = min(
            max(suggest_workers(pending=pending, busy=busy, oldest_wait=oldest_wait), self.low),
            self.high,
        )
        if want > current:
            self._below_since = None
            return current + 1
        if want < current:
            if self._below_since is None:
                self._below_since = now
            if now - self._below_since >= self.scale_down_after:
                self._below_since = now
                return current - 1
            return current
        self._below_since = None
        return current
