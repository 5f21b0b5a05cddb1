"""How the Redis codec shows a job hash it cannot decode (issue 10, defect 5): the claim
path raises :class:`CorruptJobData` naming the bad field; read commands get a placeholder."""

from __future__ import annotations

import pytest

from conveyor.job import FailureReason, JobError, JobState
from conveyor.stores.redis import codec

GOOD: dict[bytes, bytes] = {
    b"id": b"j1",
    b"queue": b"default",
    b"task": b"t.add",
    b"payload": b"\x00data",
    b"state": b"pending",
    b"priority": b"5",
    b"attempt": b"0",
    b"max_attempts": b"3",
    b"run_at": b"10.5",
    b"on_dependency_failure": b"fail",
    b"task_version": b"1",
    b"created_at": b"10.25",
}
ERROR = codec.encode_error(JobError(1, "ValueError", "boom", failed_at=11.0))


def test_a_good_hash_decodes_the_same_on_both_paths() -> None:
    job = codec.job_from_fields(GOOD, [ERROR])
    assert job.id == "j1" and job.priority == 5 and job.errors[0].message == "boom"
    assert codec.read_job("j1", GOOD, [ERROR]) == job


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({b"payload": None}, "missing field payload"),
        ({b"priority": b"urgent"}, "field priority is malformed (b'urgent')"),
        ({b"state": b"exploded"}, "field state is malformed (b'exploded')"),
        ({b"on_dependency_failure": b"shrug"}, "field on_dependency_failure is malformed"),
        ({b"tags": b"9:ab"}, "field tags is malformed"),
        ({b"queue": b"\xff"}, "field queue is malformed"),
    ],
)
def test_the_claim_path_names_the_bad_field(
    change: dict[bytes, bytes | None], message: str
) -> None:
    fields = {**GOOD, **change}
    stored = {k: v for k, v in fields.items() if v is not None}
    with pytest.raises(codec.CorruptJobData) as caught:
        codec.job_from_fields(stored, [])
    assert str(caught.value).startswith(message)


def test_a_garbage_error_entry_is_named_by_its_position() -> None:
    with pytest.raises(codec.CorruptJobData, match=r"^error entry 1 cannot be decoded"):
        codec.job_from_fields(GOOD, [ERROR, b"J[1, 2]"])


def test_a_placeholder_keeps_what_it_can_read() -> None:
    fields = {k: v for k, v in GOOD.items() if k not in (b"payload", b"created_at")}
    job = codec.read_job("j1", fields, [ERROR, b"\xffgarbage"])
    assert (job.id, job.queue, job.task, job.state, job.priority) == (
        "j1",
        "default",
        "t.add",
        JobState.PENDING,
        5,
    )
    assert job.payload == b"" and job.created_at == 0.0
    assert job.failure_reason == FailureReason.CORRUPT
    assert [e.type for e in job.errors] == ["ValueError", codec.CORRUPT_ERROR_TYPE]
    assert job.errors[-1].message == "stored job cannot be decoded: missing field payload"


def test_a_placeholder_of_an_unknown_state_is_failed() -> None:
    job = codec.read_job("j1", {**GOOD, b"state": b"exploded"}, [])
    assert job.state is JobState.FAILED
    assert job.failure_reason == FailureReason.CORRUPT


def test_a_hash_that_names_another_id_is_shown_under_its_key() -> None:
    job = codec.read_job("j1", {**GOOD, b"id": b"j2"}, [])
    assert job.id == "j1"
    assert job.failure_reason == FailureReason.CORRUPT
    assert "field id does not match its key: j2" in job.errors[-1].message


def test_the_first_bad_field_in_the_jobs_order_is_named() -> None:
    """Several bad fields: the one that comes first in a Job (error entries between
    ``result`` and ``failure_reason``) is named, whatever the hash's order."""
    stored = {**GOOD, b"created_at": b"soon", b"priority": b"urgent"}
    with pytest.raises(codec.CorruptJobData, match=r"^field priority is malformed"):
        codec.job_from_fields(stored, [])
    with pytest.raises(codec.CorruptJobData, match=r"^error entry 0 cannot be decoded"):
        codec.job_from_fields({**GOOD, b"created_at": b"soon"}, [b"\xffgarbage"])
    with pytest.raises(codec.CorruptJobData, match=r"^field created_at is malformed"):
        codec.job_from_fields({**GOOD, b"created_at": b"soon", b"tags": b"1:a"}, [])
