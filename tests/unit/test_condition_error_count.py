"""The run of condition errors is counted past the decisions a job's record keeps, so a
``condition_error_limit`` above :data:`KEEP` still fails the job in the end."""

from __future__ import annotations

from conveyor.clock import FakeClock
from conveyor.coordination.decisions import (
    KEEP,
    record_condition_error,
    record_decision,
    record_deferral,
)
from conveyor.stores.memory import MemoryStore


def test_the_count_goes_on_past_the_kept_decisions() -> None:
    store = MemoryStore(clock=FakeClock())
    counts = [record_condition_error(store, "job", "boom", 30.0) for _ in range(KEEP + 5)]
    assert counts == list(range(1, KEEP + 6))  # before the fix: stuck at KEEP + 1


def test_another_decision_ends_the_run_of_errors() -> None:
    store = MemoryStore(clock=FakeClock())
    for _ in range(KEEP + 3):
        record_condition_error(store, "job", "boom", 30.0)
    record_decision(store, "job", "defer", "outside the window", "time_window", 60.0)
    assert record_condition_error(store, "job", "boom", 30.0) == 1
    record_deferral(store, "job", "full", "concurrency", 1.0)
    assert record_condition_error(store, "job", "boom", 30.0) == 1
    assert record_condition_error(store, "job", "boom", 30.0) == 2
