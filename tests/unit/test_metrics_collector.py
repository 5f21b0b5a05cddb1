"""The per-minute collector: rows by minute and key, drained whole, never lost on a failed write."""

from __future__ import annotations

import threading

from conveyor.metrics.collector import MinuteCollector, SeriesKey, minute_of
from conveyor.metrics.histogram import ZERO_BUCKET

T0 = 1_800_000_000.0  # a minute boundary


def record(
    collector: MinuteCollector,
    finished: float,
    *,
    outcome: str = "completed",
    task: str = "t",
    wait: float = 0.5,
    ran: float = 0.25,
    worker: str = "w1",
) -> None:
    collector.record(
        queue="default",
        task=task,
        outcome=outcome,
        ready_at=finished - ran - wait,
        started_at=finished - ran,
        finished_at=finished,
        worker_id=worker,
    )


def test_runs_are_filed_by_the_minute_they_finished_in_and_by_key() -> None:
    collector = MinuteCollector()
    record(collector, T0 + 10)
    record(collector, T0 + 59.9)
    record(collector, T0 + 60, outcome="failed")
    record(collector, T0 + 61, task="other")
    series, _ = collector.drain()
    assert {k: v.count for k, v in series.items()} == {
        SeriesKey(int(T0), "default", "t", "completed"): 2,
        SeriesKey(int(T0) + 60, "default", "t", "failed"): 1,
        SeriesKey(int(T0) + 60, "default", "other", "completed"): 1,
    }
    first = series[SeriesKey(int(T0), "default", "t", "completed")]
    assert first.wait.quantile(0.5) == first.wait.quantile(1.0)
    assert abs((first.wait.quantile(0.5) or 0) - 0.5) <= 0.025
    assert abs((first.run.quantile(0.5) or 0) - 0.25) <= 0.0125


def test_a_drain_takes_ended_minutes_and_leaves_the_current_one() -> None:
    collector = MinuteCollector()
    record(collector, T0 + 5)
    record(collector, T0 + 65)
    series, busy = collector.drain(before=T0 + 70)
    assert [k.minute for k in series] == [int(T0)]
    assert list(busy) == [(int(T0), "w1")]
    rest, _ = collector.drain()
    assert [k.minute for k in rest] == [int(T0) + 60]
    assert collector.drain() == ({}, {})


def test_rows_put_back_after_a_failed_write_merge_with_new_ones() -> None:
    collector = MinuteCollector()
    record(collector, T0 + 1)
    taken = collector.drain()
    record(collector, T0 + 2)  # recorded while the write was failing
    collector.restore(*taken)
    series, busy = collector.drain()
    [row] = series.values()
    assert row.count == 2 and row.run.count == 2 and row.wait.count == 2
    assert busy[(int(T0), "w1")].runs == 2
    assert busy[(int(T0), "w1")].seconds == 0.5


def test_a_clock_step_back_counts_as_zero_wait() -> None:
    collector = MinuteCollector()
    collector.record(
        queue="q",
        task="t",
        outcome="completed",
        ready_at=T0 + 10,
        started_at=T0 + 5,
        finished_at=T0 + 6,
        worker_id="w",
    )
    [row] = collector.drain()[0].values()
    assert row.wait.buckets == {ZERO_BUCKET: 1}


def test_threads_recording_at_once_lose_nothing() -> None:
    collector = MinuteCollector()

    def work(worker: str) -> None:
        for i in range(2000):
            record(collector, T0 + (i % 120), worker=worker)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    series, busy = collector.drain()
    assert sum(row.count for row in series.values()) == 8000
    assert sum(b.runs for b in busy.values()) == 8000
    assert {k.minute for k in series} == {minute_of(T0), minute_of(T0 + 60)}
