"""complete, fail/retry, the DLQ, cancel, retry from the DLQ, delete and refused moves."""

from __future__ import annotations

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import IllegalTransition, LeaseLost
from conveyor.job import FailureReason, JobError, JobState
from conveyor.stores.base import CancelResult, Completion, Store

from .support import add, claim, claim_one, error_for, must_get, new_id, state_of

# complete --------------------------------------------------------------------------------


def test_complete_stores_the_result_and_clears_the_lease(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id)
    clock.advance(3)

    assert store.complete([Completion(lease, b"\x00result")]) == []

    job = must_get(store, job_id)
    assert job.state is JobState.COMPLETED
    assert job.result == b"\x00result"
    assert job.lease_token is None
    assert job.finished_at == clock.now()
    assert job.attempt == 1
    assert job.errors == ()
    assert job.is_terminal


def test_completing_twice_reports_the_second_as_lost(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id)
    store.complete([Completion(lease, b"first")])
    clock.advance(1)

    assert store.complete([Completion(lease, b"second")]) == [job_id]

    job = must_get(store, job_id)
    assert job.state is JobState.COMPLETED
    assert job.result == b"first"
    assert job.finished_at == clock.now() - 1


def test_complete_of_many_leases_at_once(store: Store) -> None:
    ids = [add(store) for _ in range(5)]
    leases = claim(store, limit=5)

    assert store.complete([Completion(lease, lease.job_id.encode()) for lease in leases]) == []

    for job in store.get_many(ids):
        assert job.state is JobState.COMPLETED
        assert job.result == job.id.encode()


def test_nothing_is_possible_after_complete(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id)
    store.complete([Completion(lease, b"done")])

    with pytest.raises(LeaseLost):
        store.fail(lease, error_for(lease, clock), retry_at=None)
    with pytest.raises(LeaseLost):
        store.release(lease)
    with pytest.raises(LeaseLost):
        store.finish_cancelled(lease)
    assert store.heartbeat([lease], extend=10).lost == [job_id]
    assert store.cancel([job_id]) == CancelResult([], [], [job_id])
    assert store.cancel([job_id], force=True).skipped == [job_id]
    assert _retry_refused(store, job_id)
    assert claim(store, job_ids=[job_id]) == []
    job = must_get(store, job_id)
    assert job.state is JobState.COMPLETED
    assert job.result == b"done"
    assert job.errors == ()


def _retry_refused(store: Store, job_id: str) -> bool:
    """retry() must not move the job; refusing by skipping or by IllegalTransition is fine."""
    try:
        moved = store.retry([job_id])
    except IllegalTransition:
        moved = []
    return job_id not in moved


# fail / retry ----------------------------------------------------------------------------


def test_fail_with_retry_at_retries_after_staging(store: Store, clock: FakeClock) -> None:
    job_id = add(store, max_attempts=3)
    lease = claim_one(store, job_id)
    error = error_for(lease, clock, message="first failure")

    state = store.fail(lease, error, retry_at=clock.now() + 30)

    assert state is JobState.RETRYING
    job = must_get(store, job_id)
    assert job.state is JobState.RETRYING
    assert job.run_at == clock.now() + 30
    assert job.lease_token is None
    assert job.errors == (error,)
    assert job.failure_reason is None
    assert claim(store, limit=5) == []
    assert store.heartbeat([lease], extend=10).lost == [job_id]

    clock.advance(29)
    assert store.stage_due().promoted == 0
    assert state_of(store, job_id) is JobState.RETRYING
    clock.advance(1)
    assert store.stage_due().promoted == 1
    assert state_of(store, job_id) is JobState.PENDING

    second = claim_one(store, job_id, worker_id="worker-2")
    assert second.job.attempt == 2
    assert must_get(store, job_id).attempt == 2


def test_error_history_and_derived_attempts(store: Store, clock: FakeClock) -> None:
    job_id = add(store, max_attempts=3)
    errors = []
    for attempt in (1, 2):
        lease = claim_one(store, job_id, worker_id=f"w{attempt}")
        assert lease.job.attempt == attempt
        clock.advance(1)
        errors.append(error_for(lease, clock, message=f"failure {attempt}"))
        store.fail(lease, errors[-1], retry_at=clock.now() + 10)
        clock.advance(10)
        store.stage_due()
        assert must_get(store, job_id).errors == tuple(errors)
    lease = claim_one(store, job_id, worker_id="w3")
    started = clock.now()
    clock.advance(2)
    store.complete([Completion(lease, b"ok")])

    job = must_get(store, job_id)
    assert [e.attempt for e in job.errors] == [1, 2]
    assert [e.message for e in job.errors] == ["failure 1", "failure 2"]
    history = job.attempts
    assert [a.attempt for a in history] == [1, 2, 3]
    assert [a.outcome for a in history] == ["error", "error", "completed"]
    assert [a.worker_id for a in history] == ["w1", "w2", "w3"]
    assert history[2].started_at == started
    assert history[2].finished_at == clock.now()


@pytest.mark.parametrize(
    "reason", [FailureReason.EXHAUSTED, FailureReason.NOT_RETRYABLE, FailureReason.UNKNOWN_TASK]
)
def test_fail_without_retry_at_goes_to_the_dlq(
    store: Store, clock: FakeClock, reason: FailureReason
) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id)
    error = error_for(lease, clock, type="KeyError", message="no such key")

    state = store.fail(lease, error, retry_at=None, reason=reason)

    assert state is JobState.FAILED
    job = must_get(store, job_id)
    assert job.state is JobState.FAILED
    assert job.failure_reason == reason.value
    assert job.errors == (error,)
    assert job.lease_token is None
    assert job.finished_at == clock.now()
    assert [a.outcome for a in job.attempts] == ["error"]
    assert claim(store, limit=5) == []
    assert store.stage_due().promoted == 0


def test_errors_keep_every_field(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id, worker_id="host:1")
    error = JobError(
        attempt=1,
        type="pkg.CustomError",
        message="multi\nline 'quoted' \"message\" \u00e9\u4e2d",
        traceback='File "x.py", line 1\n  raise\n',
        worker_id="host:1",
        started_at=lease.job.started_at,
        failed_at=clock.now() + 0.25,
    )

    store.fail(lease, error, retry_at=None, reason=FailureReason.NOT_RETRYABLE)

    assert must_get(store, job_id).errors == (error,)


# retry from the DLQ ----------------------------------------------------------------------


def test_retry_moves_a_failed_job_back_with_fresh_attempts(store: Store, clock: FakeClock) -> None:
    job_id = add(store, max_attempts=1)
    lease = claim_one(store, job_id)
    error = error_for(lease, clock)
    store.fail(lease, error, retry_at=None, reason=FailureReason.EXHAUSTED)
    clock.advance(60)

    assert store.retry([job_id]) == [job_id]

    job = must_get(store, job_id)
    assert job.state is JobState.PENDING
    assert job.attempt == 0
    assert job.errors == (error,)
    again = claim_one(store, job_id)
    assert again.job.attempt == 1
    store.complete([Completion(again, b"second time lucky")])
    assert state_of(store, job_id) is JobState.COMPLETED


def test_retry_moves_a_cancelled_job_back(store: Store) -> None:
    job_id = add(store)
    assert store.cancel([job_id]).cancelled == [job_id]

    assert store.retry([job_id]) == [job_id]

    assert state_of(store, job_id) is JobState.PENDING
    assert must_get(store, job_id).attempt == 0


def test_retry_moves_nothing_that_is_not_failed_or_cancelled(
    store: Store, clock: FakeClock
) -> None:
    pending = add(store)
    scheduled = add(store, run_at=clock.now() + 100)
    processing = add(store, queue="busy")
    lease = claim_one(store, processing, queue="busy")

    assert store.retry([pending, scheduled, processing, new_id()]) == []

    assert state_of(store, pending) is JobState.PENDING
    assert state_of(store, scheduled) is JobState.SCHEDULED
    assert must_get(store, processing).lease_token == lease.token
    assert must_get(store, processing).attempt == 1


def test_retry_of_a_completed_job_is_refused(store: Store) -> None:
    job_id = add(store)
    store.complete([Completion(claim_one(store, job_id), b"r")])

    assert _retry_refused(store, job_id)

    job = must_get(store, job_id)
    assert job.state is JobState.COMPLETED
    assert job.result == b"r"


def test_retry_of_a_mixed_selection_moves_only_the_dlq(store: Store, clock: FakeClock) -> None:
    failed = add(store)
    lease = claim_one(store, failed)
    store.fail(lease, error_for(lease, clock), retry_at=None, reason=FailureReason.EXHAUSTED)
    pending = add(store)

    assert store.retry([pending, failed]) == [failed]
    assert state_of(store, failed) is JobState.PENDING


# cancel ----------------------------------------------------------------------------------


def test_cancel_of_waiting_jobs_is_immediate(store: Store, clock: FakeClock) -> None:
    pending = add(store)
    scheduled = add(store, run_at=clock.now() + 100)
    blocker = add(store, queue="parents")
    blocked = add(store, depends_on=(blocker,))
    retrying = add(store, queue="r")
    lease = claim_one(store, retrying, queue="r")
    store.fail(lease, error_for(lease, clock), retry_at=clock.now() + 100)
    unknown = new_id()

    result = store.cancel([pending, scheduled, blocked, retrying, unknown])

    assert sorted(result.cancelled) == sorted([pending, scheduled, blocked, retrying])
    assert result.requested == []
    assert result.skipped == [unknown]
    for job_id in (pending, scheduled, blocked, retrying):
        job = must_get(store, job_id)
        assert job.state is JobState.CANCELLED
        assert job.finished_at == clock.now()
    assert state_of(store, blocker) is JobState.PENDING
    clock.advance(200)
    assert store.stage_due().promoted == 0
    assert [lease.job_id for lease in claim(store, ["default", "parents", "r"], limit=10)] == [
        blocker
    ]


def test_cancel_of_terminal_jobs_is_skipped(store: Store, clock: FakeClock) -> None:
    done = add(store)
    store.complete([Completion(claim_one(store, done), None)])
    dead = add(store)
    lease = claim_one(store, dead)
    store.fail(lease, error_for(lease, clock), retry_at=None, reason=FailureReason.EXHAUSTED)
    gone = add(store)
    store.cancel([gone])

    result = store.cancel([done, dead, gone])

    assert result.cancelled == []
    assert sorted(result.skipped) == sorted([done, dead, gone])
    assert state_of(store, done) is JobState.COMPLETED
    assert state_of(store, dead) is JobState.FAILED
    assert must_get(store, dead).failure_reason == FailureReason.EXHAUSTED


# delete ----------------------------------------------------------------------------------


def test_delete_removes_jobs_that_are_not_processing(store: Store, clock: FakeClock) -> None:
    pending = add(store)
    done = add(store, queue="done")
    store.complete([Completion(claim_one(store, done, queue="done"), b"x")])
    running = add(store, queue="busy")
    lease = claim_one(store, running, queue="busy")

    deleted = store.delete([pending, done, running, new_id()])

    assert deleted == 2
    assert store.get(pending) is None
    assert store.get(done) is None
    assert must_get(store, running).lease_token == lease.token
    assert store.get_many([pending, done, running]) == [must_get(store, running)]
    assert claim(store, limit=5) == []
    assert store.complete([Completion(lease, b"ok")]) == []
    assert store.delete([running]) == 1
    assert store.get(running) is None


def test_delete_of_an_unfinished_dependency_applies_the_policy(store: Store) -> None:
    parent = add(store, queue="parents")
    child = add(store, depends_on=(parent,))

    assert store.delete([parent]) == 1

    job = must_get(store, child)
    assert job.state is JobState.FAILED
    assert job.failure_reason == FailureReason.DEPENDENCY_FAILED


def test_delete_of_a_completed_dependency_leaves_dependents_alone(store: Store) -> None:
    parent = add(store, queue="parents")
    store.complete([Completion(claim_one(store, parent, queue="parents"), None)])
    child = add(store, depends_on=(parent,))
    assert state_of(store, child) is JobState.PENDING

    assert store.delete([parent]) == 1

    assert state_of(store, child) is JobState.PENDING
