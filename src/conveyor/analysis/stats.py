"""Throughput, failure rate and wait/run percentiles from per-minute metric rows.

Rows from every worker and minute add up: counts are summed and histograms merged per
group (queue, task, or both) and per period (minute, hour, day, or the whole window),
so a p95 over a day and ten nodes is read from one merged histogram, never averaged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from conveyor.metrics.collector import Series, SeriesKey

Period = Literal["minute", "hour", "day"]

PERIOD_SECONDS: Final[dict[str, int]] = {"minute": 60, "hour": 3600, "day": 86400}
"""Length of each period; periods start on UTC boundaries."""

GROUP_FIELDS: Final = ("queue", "task")
"""What rows can be grouped by."""

FAILED_OUTCOMES: Final = frozenset({"failed", "retried"})
"""Outcomes of a run that raised (a retried run failed its attempt)."""


@dataclass(slots=True)
class Summary:
    """One group in one period (or the whole window)."""

    group: tuple[str, ...]
    """The values of the grouping fields, in the order asked for."""
    start: float
    """The period's start (the window's start without periods)."""
    seconds: float
    """The period's length (the window's, without periods)."""
    runs: Series = field(default_factory=Series)
    by_outcome: dict[str, int] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Finished runs per second."""
        return self.runs.count / self.seconds

    @property
    def failure_rate(self) -> float:
        """Share of finished runs that raised (0 when none finished)."""
        failed = sum(n for outcome, n in self.by_outcome.items() if outcome in FAILED_OUTCOMES)
        return failed / self.runs.count if self.runs.count else 0.0

    def wait(self, q: float) -> float | None:
        """Wait time (ready to started) at quantile ``q``, within 5 %."""
        return self.runs.wait.quantile(q)

    def run(self, q: float) -> float | None:
        """Run time (started to finished) at quantile ``q``, within 5 %."""
        return self.runs.run.quantile(q)


def summarize(
    rows: Mapping[SeriesKey, Series],
    *,
    since: float,
    until: float,
    group_by: Sequence[str] = ("queue",),
    by: Period | None = None,
) -> list[Summary]:
    """Summaries of the rows whose minute lies in ``[since, until)``, per group and period,
    ordered by period then group.

    Raises:
        ValueError: An unknown grouping field or period, or an empty window.
    """
    unknown = [name for name in group_by if name not in GROUP_FIELDS]
    if unknown:
        raise ValueError(f"cannot group by {unknown}; choose from {list(GROUP_FIELDS)}")
    if by is not None and by not in PERIOD_SECONDS:
        raise ValueError(f"unknown period {by!r}; choose from {list(PERIOD_SECONDS)}")
    if not until > since:
        raise ValueError("the window is empty: 'until' must be after 'since'")
    step = PERIOD_SECONDS[by] if by else None
    summaries: dict[tuple[float, tuple[str, ...]], Summary] = {}
    for key, series in rows.items():
        if not since <= key.minute < until:
            continue
        group = tuple(getattr(key, name) for name in group_by)
        start = float(key.minute // step * step) if step else since
        summary = summaries.get((start, group))
        if summary is None:
            length = float(step) if step else until - since
            summary = summaries[(start, group)] = Summary(group, start, length)
        summary.runs.merge(series)
        summary.by_outcome[key.outcome] = summary.by_outcome.get(key.outcome, 0) + series.count
    return [summaries[k] for k in sorted(summaries)]
