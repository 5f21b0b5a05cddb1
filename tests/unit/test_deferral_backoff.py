"""Jobs deferred again and again by the same limit wait longer each time (no stampede)."""

from __future__ import annotations

import random

import pytest

from conveyor.clock import FakeClock
from conveyor.coordination.decisions import (
    BACKOFF_CAP,
    BACKOFF_MEMORY,
    backoff_delay,
    read_decisions,
    record_decision,
    record_deferral,
)
from conveyor.coordination.limiter import Limiter
from conveyor.stores.memory import MemoryStore


@pytest.mark.parametrize(
    ("base", "repeats", "expected"),
    [
        (1.0, 0, 1.0),
        (1.0, 1, 2.0),
        (1.0, 4, 16.0),
        (1.0, 5, BACKOFF_CAP),  # 32 capped at 30
        (1.0, 50, BACKOFF_CAP),
        (0.25, 5, 8.0),  # 2**5 at most
        (0.25, 9, 8.0),
        (3600.0, 3, 3600.0),  # a long exact wait is never cut short
    ],
)
def test_backoff_delay(base: float, repeats: int, expected: float) -> None:
    assert backoff_delay(base, repeats) == expected


class Highest(random.Random):
    """A random source that always draws the top of the range."""

    def random(self) -> float:
        return 1.0


def test_repeated_deferrals_by_one_source_wait_up_to_twice_as_long_each_time() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    top = [record_deferral(store, "a", "full", "concurrency", 1.0, Highest()) for _ in range(7)]
    assert top == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    drawn = [record_deferral(store, "b", "full", "concurrency", 1.0) for _ in range(7)]
    assert drawn[0] == 1.0, "the first wait is exact"
    assert all(1.0 <= d <= t for d, t in zip(drawn, top, strict=True))
    # another source, or a condition's decision in between, starts over
    assert record_deferral(store, "a", "full", "rate_limit", 1.0) == 1.0
    record_decision(store, "a", "defer", "closed", "time_window", 60.0)
    assert record_deferral(store, "a", "full", "rate_limit", 1.0) == 1.0
    assert [d.delay for d in read_decisions(store, "a")][-3:] == [1.0, 60.0, 1.0]


def test_old_deferrals_are_forgotten() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    for _ in range(3):
        record_deferral(store, "job", "full", "concurrency", 1.0)
    clock.advance(BACKOFF_MEMORY + 1)
    assert record_deferral(store, "job", "full", "concurrency", 1.0) == 1.0


def test_many_jobs_behind_one_limit_come_back_far_less_often() -> None:
    """Twenty jobs behind one start per 10 s: without back-off they would all come back
    every 10 s and all but one be put back again (19 + 18 + ... + 1 = 190 put-backs);
    spread out, most come back when a token is free."""
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    rng = random.Random(5)
    limiter = Limiter(store, slot_ttl=30, rng=rng)
    due = {f"job{n}": clock.now() for n in range(20)}
    put_backs = 0
    while due:
        for job_id in sorted(j for j, at in due.items() if at <= clock.now()):
            wait = limiter.take_rate("rate:lane", job_id, 1, 10.0)
            if wait is None:
                del due[job_id]
                continue
            put_backs += 1
            delay = record_deferral(store, job_id, "full", "rate_limit", wait, rng)
            due[job_id] = clock.now() + delay
        clock.advance(0.5)
    assert put_backs < 150, put_backs  # 138 with this seed; 190 without back-off
