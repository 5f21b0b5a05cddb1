"""The shared quarantine rule (conveyor.stores.corrupt): salvage names every damaged
field, keeps the rest, and never raises on any stored value."""

from __future__ import annotations

import dataclasses

import pytest

from conveyor.job import FailureReason, Job, JobError, JobState
from conveyor.stores.corrupt import (
    CORRUPT_ERROR_TYPE,
    check_job,
    claimable,
    quarantine_errors,
    quarantined,
    salvage,
    state_or_failed,
)

GOOD = Job(id="j1", queue="default", task="t", payload=b"p", state=JobState.PENDING)


def _raw(**changes: object) -> dict[str, object]:
    raw = {f.name: getattr(GOOD, f.name) for f in dataclasses.fields(Job)}
    raw.update(changes)
    return raw


def test_salvage_names_every_damaged_field_and_keeps_the_others() -> None:
    raw = _raw(priority="high", on_dependency_failure="explode", errors=[1], attempt=2)
    result = salvage(raw, {}, ValueError("first"), now=5.0)
    names = [problem.split(":")[0] for problem in result.problems]
    assert names == ["priority", "on_dependency_failure", "errors"]
    job = result.job
    assert (job.id, job.queue, job.task, job.payload) == ("j1", "default", "t", b"p")
    assert job.state is JobState.PENDING and job.attempt == 2
    assert job.failure_reason == FailureReason.CORRUPT
    (error,) = job.errors
    assert error.type == CORRUPT_ERROR_TYPE and error.attempt == 2 and error.failed_at == 5.0
    assert "'high'" in error.message and "'explode'" in error.message
    assert claimable(result)


def test_an_unknown_or_missing_state_reads_as_failed() -> None:
    unknown = salvage(_raw(state="exploded"), {}, KeyError("exploded"))
    assert unknown.job.state is JobState.FAILED and not unknown.state_known
    assert claimable(unknown)
    missing = salvage({"id": "j2"}, {}, KeyError("state"))
    assert missing.job.state is JobState.FAILED
    assert {p.split(":")[0] for p in missing.problems} >= {"queue", "task", "payload", "state"}
    assert state_or_failed("exploded") is JobState.FAILED
    assert state_or_failed("pending") is JobState.PENDING
    assert state_or_failed(None) is JobState.FAILED


def test_a_completed_job_with_damage_is_not_claimable() -> None:
    result = salvage(_raw(state="completed", errors="x"), {}, TypeError("x"))
    assert not claimable(result)


def test_a_long_stored_value_is_quoted_shortened() -> None:
    result = salvage(_raw(errors="x" * 10_000), {}, TypeError("x"))
    assert len(result.job.errors[-1].message) < 300


def test_quarantine_keeps_readable_errors_and_drops_the_lease() -> None:
    earlier = JobError(attempt=1, type="ValueError", message="boom")
    raw = _raw(errors=(earlier,), priority=None, lease_token="tok", state="processing")
    result = salvage(raw, {}, TypeError("priority"))
    job = quarantined(result, now=9.0)
    assert job.state is JobState.FAILED and job.lease_token is None and job.finished_at == 9.0
    assert [e["type"] for e in quarantine_errors(result, 9.0)] == ["ValueError", "CorruptJob"]
    assert job.errors[-1].failed_at == 9.0


@pytest.mark.parametrize(
    "field, value",
    [("priority", "1"), ("priority", True), ("attempt", 1.0), ("run_at", "now"), ("payload", "p")],
)
def test_check_job_refuses_wrong_types_the_worker_would_trip_on(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=field if field != "payload" else "payload"):
        check_job(dataclasses.replace(GOOD, **{field: value}))
    assert check_job(GOOD) is GOOD
