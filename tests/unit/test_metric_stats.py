"""Summaries of metric rows: counts add, histograms merge, periods and groups split."""

from __future__ import annotations

import pytest

from conveyor.analysis.stats import summarize
from conveyor.metrics.collector import MinuteCollector, Series, SeriesKey

DAY = 1_799_971_200  # a UTC midnight


def rows(*runs: tuple[float, str, str, str, float]) -> dict[SeriesKey, Series]:
    """(finished at, queue, task, outcome, run seconds) -> drained rows, two workers."""
    workers = [MinuteCollector(), MinuteCollector()]
    for n, (at, queue, task, outcome, ran) in enumerate(runs):
        workers[n % 2].record(
            queue=queue,
            task=task,
            outcome=outcome,
            ready_at=at - ran - 1.0,
            started_at=at - ran,
            finished_at=at,
            worker_id=f"w{n % 2}",
        )
    merged: dict[SeriesKey, Series] = {}
    for worker in workers:
        for key, series in worker.drain()[0].items():
            merged.setdefault(key, Series()).merge(series)
    return merged


def test_the_whole_window_per_queue() -> None:
    data = rows(
        *[(DAY + i, "emails", "send", "completed", 0.1) for i in range(90)],
        *[(DAY + 100 + i, "emails", "send", "retried", 2.0) for i in range(10)],
        (DAY + 30, "reports", "build", "failed", 5.0),
    )
    emails, reports = summarize(data, since=DAY, until=DAY + 3600)
    assert emails.group == ("emails",) and emails.runs.count == 100
    assert emails.throughput == pytest.approx(100 / 3600)
    assert emails.failure_rate == pytest.approx(0.1)
    assert emails.run(0.5) == pytest.approx(0.1, rel=0.051)
    assert emails.run(0.99) == pytest.approx(2.0, rel=0.051)
    assert emails.wait(0.5) == pytest.approx(1.0, rel=0.051)
    assert reports.failure_rate == 1.0 and reports.by_outcome == {"failed": 1}


def test_periods_split_on_utc_boundaries_and_rows_outside_are_left_out() -> None:
    data = rows(
        (DAY + 10, "q", "t", "completed", 0.1),
        (DAY + 3599, "q", "t", "completed", 0.1),
        (DAY + 3600, "q", "t", "completed", 0.1),
        (DAY + 7200, "q", "t", "completed", 0.1),  # at 'until': outside
        (DAY - 1, "q", "t", "completed", 0.1),  # before 'since': outside
    )
    hours = summarize(data, since=DAY, until=DAY + 7200, by="hour", group_by=("queue", "task"))
    assert [(s.start - DAY, s.runs.count, s.group) for s in hours] == [
        (0, 2, ("q", "t")),
        (3600, 1, ("q", "t")),
    ]
    assert hours[0].throughput == pytest.approx(2 / 3600)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"group_by": ("worker",)}, "cannot group by"),
        ({"by": "week"}, "unknown period"),
        ({"until": DAY}, "window is empty"),
    ],
)
def test_bad_requests_are_refused(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"since": DAY, "until": DAY + 60}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        summarize({}, **args)  # type: ignore[arg-type]
