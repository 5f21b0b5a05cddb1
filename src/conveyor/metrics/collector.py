"""Per-minute aggregation of finished runs inside one worker process.

The hot path only adds to dictionaries in memory: :meth:`MinuteCollector.record` files a
finished run under its minute and its (queue, task, outcome), counting it and adding its
wait time (ready -> started) and run time (started -> finished) to mergeable histograms.
A flusher takes the minutes that have ended with :meth:`MinuteCollector.drain` every few
seconds and writes them to the store in one batch; rows from every worker of every node
then add up (counts add, histograms merge) to any window and any set of workers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from conveyor.metrics.histogram import Histogram

MINUTE = 60
"""Seconds per row: the finest resolution kept."""


def minute_of(at: float) -> int:
    """The start (epoch seconds) of the minute ``at`` falls in."""
    return int(at // MINUTE) * MINUTE


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """What one row counts: one minute of one queue, task and outcome."""

    minute: int
    queue: str
    task: str
    outcome: str
    """How the run ended: ``completed``, ``failed``, ``retried``, ``deferred``, …"""


@dataclass(slots=True)
class Series:
    """Runs of one key: how many, and their wait and run time distributions."""

    count: int = 0
    wait: Histogram = field(default_factory=Histogram)
    run: Histogram = field(default_factory=Histogram)

    def merge(self, other: Series) -> None:
        """Add ``other`` (another worker's row, or another minute) to this one."""
        self.count += other.count
        self.wait.merge(other.wait)
        self.run.merge(other.run)


@dataclass(slots=True)
class Busy:
    """One worker's time spent running jobs during one minute."""

    seconds: float = 0.0
    runs: int = 0


class MinuteCollector:
    """One process's rows, by minute, until a flusher drains them (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, Series] = {}
        self._busy: dict[tuple[int, str], Busy] = {}

    def record(
        self,
        *,
        queue: str,
        task: str,
        outcome: str,
        ready_at: float,
        started_at: float,
        finished_at: float,
        worker_id: str,
    ) -> None:
        """File one finished run under the minute it finished in."""
        minute = minute_of(finished_at)
        key = SeriesKey(minute, queue, task, outcome)
        ran = finished_at - started_at
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = Series()
            series.count += 1
            series.wait.observe(started_at - ready_at)
            series.run.observe(ran)
            busy = self._busy.get((minute, worker_id))
            if busy is None:
                busy = self._busy[(minute, worker_id)] = Busy()
            busy.seconds += max(ran, 0.0)
            busy.runs += 1

    def drain(
        self, *, before: float | None = None
    ) -> tuple[dict[SeriesKey, Series], dict[tuple[int, str], Busy]]:
        """Take the rows of minutes that ended by ``before`` (None: every row, at stop).

        What is taken is gone from the collector; a row of the current minute stays until
        the minute ends, so each minute is written once per worker in the common case.
        """
        cutoff = None if before is None else minute_of(before)
        with self._lock:
            series = {k: v for k, v in self._series.items() if cutoff is None or k.minute < cutoff}
            busy = {k: v for k, v in self._busy.items() if cutoff is None or k[0] < cutoff}
            for key in series:
                del self._series[key]
            for busy_key in busy:
                del self._busy[busy_key]
        return series, busy

    def restore(self, series: dict[SeriesKey, Series], busy: dict[tuple[int, str], Busy]) -> None:
        """Put drained rows back (their write failed), merged with anything recorded since."""
        with self._lock:
            for key, rows in series.items():
                current = self._series.get(key)
                if current is None:
                    self._series[key] = rows
                else:
                    current.merge(rows)
            for busy_key, spent in busy.items():
                now = self._busy.setdefault(busy_key, Busy())
                now.seconds += spent.seconds
                now.runs += spent.runs
