"""Backlog prediction: will a queue drain, when, and with how many workers.

From what was measured over a recent window (jobs that arrived, jobs the current workers
finished) and the queue's depth now: at current rates the backlog drains in
``depth / (service - arrival)`` seconds, or grows by ``arrival - service`` per second
when arrivals outpace service. The workers needed to drain it within a target time follow
from the service rate of one worker, measured, not assumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Forecast:
    """A queue's backlog at current rates."""

    queue: str
    depth: int
    arrival_rate: float
    """Jobs per second that arrived over the window."""
    service_rate: float
    """Jobs per second the workers finished over the window."""
    workers: int
    drain_seconds: float | None
    """Seconds until the queue is empty at current rates; None while it is not shrinking."""
    growth_per_minute: float
    """Jobs per minute the backlog grows by (0 when it shrinks or holds)."""
    workers_needed: int | None
    """Workers that would drain it within the target; None without a target or without a
    measured per-worker rate (no worker finished anything in the window)."""

    @property
    def growing(self) -> bool:
        """True when arrivals outpace service."""
        return self.growth_per_minute > 0


def forecast(
    queue: str,
    *,
    depth: int,
    arrived: int,
    served: int,
    window: float,
    workers: int,
    target: float | None = None,
) -> Forecast:
    """Predict ``queue``'s backlog from ``arrived`` and ``served`` jobs over ``window``
    seconds by ``workers`` workers, with ``depth`` jobs waiting now.

    Raises:
        ValueError: A count is negative, the window is not positive, or the target is
            not positive.
    """
    if min(depth, arrived, served, workers) < 0:
        raise ValueError("depth, arrived, served and workers must not be negative")
    if not window > 0:
        raise ValueError(f"the window must be a positive number of seconds, not {window!r}")
    if target is not None and not target > 0:
        raise ValueError(f"the target must be a positive number of seconds, not {target!r}")
    arrival, service = arrived / window, served / window
    net = service - arrival
    if depth == 0 and net >= 0:
        drain: float | None = 0.0
    else:
        drain = depth / net if net > 0 else None
    per_worker = service / workers if workers and service else 0.0
    needed = None
    if target is not None and per_worker > 0:
        needed = max(1, math.ceil((arrival + depth / target) / per_worker - 1e-9))
    return Forecast(
        queue,
        depth,
        arrival,
        service,
        workers,
        drain,
        max(-net, 0.0) * 60,
        needed,
    )
