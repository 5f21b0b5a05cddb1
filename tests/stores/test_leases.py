"""Leases: heartbeat, fencing of stale leases, release, cancellation and rescue."""

from __future__ import annotations

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import LeaseLost
from conveyor.job import FailureReason, JobState, Lease
from conveyor.stores.base import Completion, RescueParams, RescueResult, Store

from .support import add, claim, claim_one, error_for, must_get, state_of

# heartbeat -------------------------------------------------------------------------------


def test_heartbeat_extends_the_lease(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id, lease_for=30)
    clock.advance(20)

    beat = store.heartbeat([lease], extend=30)

    assert beat.renewed == {job_id: clock.now() + 30}
    assert beat.lost == []
    assert beat.cancel_requested == []
    stored = must_get(store, job_id)
    assert stored.lease_expires_at == clock.now() + 30
    assert stored.heartbeat_at == clock.now()
    assert stored.lease_token == lease.token


def test_heartbeat_keeps_the_rescuer_away(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id, lease_for=30)
    clock.advance(20)
    store.heartbeat([lease], extend=30)
    clock.advance(20)  # past the first expiry, inside the renewed one

    assert store.rescue_expired(RescueParams()) == RescueResult([], [])
    assert must_get(store, job_id).state is JobState.PROCESSING
    assert store.complete([Completion(lease, b"ok")]) == []
    assert state_of(store, job_id) is JobState.COMPLETED


def test_expired_lease_still_holds_until_someone_takes_the_job(
    store: Store, clock: FakeClock
) -> None:
    # Fencing is by token and state: an expired lease that nobody rescued is still held.
    job_id = add(store)
    lease = claim_one(store, job_id, lease_for=10)
    clock.advance(11)

    beat = store.heartbeat([lease], extend=10)

    assert beat.renewed == {job_id: clock.now() + 10}
    assert beat.lost == []
    assert store.complete([Completion(lease, b"late")]) == []
    assert must_get(store, job_id).result == b"late"


def test_heartbeat_of_a_batch_reports_held_and_lost(store: Store, clock: FakeClock) -> None:
    first = add(store)
    second = add(store)
    leases = claim(store, limit=2)
    by_id = {lease.job_id: lease for lease in leases}
    store.complete([Completion(by_id[second], None)])

    beat = store.heartbeat(leases, extend=15)

    assert beat.renewed == {first: clock.now() + 15}
    assert beat.lost == [second]
    assert beat.cancel_requested == []


def test_heartbeat_reports_a_cancel_request(store: Store) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id)

    result = store.cancel([job_id])

    assert result.requested == [job_id]
    assert result.cancelled == []
    stored = must_get(store, job_id)
    assert stored.state is JobState.PROCESSING
    assert stored.cancel_requested is True
    beat = store.heartbeat([lease], extend=30)
    assert beat.cancel_requested == [job_id]
    assert job_id in beat.renewed
    assert beat.lost == []

    store.finish_cancelled(lease)

    stored = must_get(store, job_id)
    assert stored.state is JobState.CANCELLED
    assert stored.lease_token is None
    assert store.heartbeat([lease], extend=30).lost == [job_id]


def test_forced_cancel_revokes_the_lease(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id)

    result = store.cancel([job_id], force=True)

    assert result.cancelled == [job_id]
    assert result.requested == []
    assert state_of(store, job_id) is JobState.CANCELLED
    beat = store.heartbeat([lease], extend=30)
    assert beat.lost == [job_id]
    assert beat.renewed == {}
    assert store.complete([Completion(lease, b"too late")]) == [job_id]
    with pytest.raises(LeaseLost):
        store.fail(lease, error_for(lease, clock), retry_at=clock.now() + 5)
    with pytest.raises(LeaseLost):
        store.release(lease)
    with pytest.raises(LeaseLost):
        store.finish_cancelled(lease)
    stored = must_get(store, job_id)
    assert stored.state is JobState.CANCELLED
    assert stored.result is None
    assert stored.errors == ()


# fencing ---------------------------------------------------------------------------------


def _taken_over(store: Store, clock: FakeClock, job_id: str) -> tuple[Lease, Lease]:
    """Worker A's lease expires, the rescuer re-queues the job and worker B claims it."""
    old = claim_one(store, job_id, worker_id="worker-a", lease_for=10)
    clock.advance(11)
    assert store.rescue_expired(RescueParams(retry_delay=2)).retried == [job_id]
    clock.advance(2)
    assert store.stage_due().promoted == 1
    new = claim_one(store, job_id, worker_id="worker-b", lease_for=30)
    assert new.job.attempt == 2
    assert new.token != old.token
    return old, new


def test_heartbeat_names_each_job_once_when_a_lease_is_given_twice(
    store: Store, clock: FakeClock
) -> None:
    """Every store reports a job once in each list, however often its lease is passed
    (the reference store once listed a cancel request twice)."""
    cancelled = add(store)
    held = claim_one(store, cancelled)
    store.cancel([cancelled])
    gone = add(store)
    old, _new = _taken_over(store, clock, gone)

    beat = store.heartbeat([held, held, old, old], extend=30)

    assert beat.renewed == {cancelled: clock.now() + 30}
    assert beat.cancel_requested == [cancelled]
    assert beat.lost == [gone]


def test_stale_heartbeat_is_reported_lost(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    old, new = _taken_over(store, clock, job_id)
    expires = must_get(store, job_id).lease_expires_at

    beat = store.heartbeat([old], extend=300)

    assert beat.lost == [job_id]
    assert beat.renewed == {}
    stored = must_get(store, job_id)
    assert stored.lease_expires_at == expires
    assert stored.lease_token == new.token


def test_stale_complete_is_reported_lost_and_changes_nothing(
    store: Store, clock: FakeClock
) -> None:
    job_id = add(store)
    old, new = _taken_over(store, clock, job_id)

    assert store.complete([Completion(old, b"stale result")]) == [job_id]

    stored = must_get(store, job_id)
    assert stored.state is JobState.PROCESSING
    assert stored.lease_token == new.token
    assert stored.worker_id == "worker-b"
    assert stored.attempt == 2
    assert stored.result is None
    # The new holder is unaffected.
    assert store.complete([Completion(new, b"fresh")]) == []
    assert must_get(store, job_id).result == b"fresh"


@pytest.mark.parametrize("operation", ["fail-retry", "fail-dlq", "release", "finish_cancelled"])
def test_stale_lease_operations_raise_lease_lost(
    store: Store, clock: FakeClock, operation: str
) -> None:
    job_id = add(store)
    old, new = _taken_over(store, clock, job_id)
    before = must_get(store, job_id)

    with pytest.raises(LeaseLost) as info:
        if operation == "fail-retry":
            store.fail(old, error_for(old, clock), retry_at=clock.now() + 5)
        elif operation == "fail-dlq":
            store.fail(old, error_for(old, clock), retry_at=None, reason=FailureReason.EXHAUSTED)
        elif operation == "release":
            store.release(old)
        else:
            store.finish_cancelled(old)

    assert info.value.job_id == job_id
    after = must_get(store, job_id)
    assert after == before
    assert after.lease_token == new.token


def test_complete_batch_reports_only_the_lost(store: Store, clock: FakeClock) -> None:
    stale_id = add(store)
    old, new = _taken_over(store, clock, stale_id)
    fresh_id = add(store)
    fresh = claim_one(store, fresh_id)

    lost = store.complete([Completion(old, b"a"), Completion(fresh, b"b")])

    assert lost == [stale_id]
    assert state_of(store, fresh_id) is JobState.COMPLETED
    assert must_get(store, stale_id).lease_token == new.token


# release ---------------------------------------------------------------------------------


def test_release_returns_the_job_to_pending(store: Store) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id)

    store.release(lease)

    stored = must_get(store, job_id)
    assert stored.state is JobState.PENDING
    assert stored.attempt == 0
    assert stored.lease_token is None
    assert store.heartbeat([lease], extend=10).lost == [job_id]
    again = claim_one(store, job_id, worker_id="worker-2")
    assert again.job.attempt == 1


def test_release_keeps_attempts_of_earlier_runs(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    first = claim_one(store, job_id)
    store.fail(first, error_for(first, clock), retry_at=clock.now())
    store.stage_due()
    second = claim_one(store, job_id)
    assert second.job.attempt == 2

    store.release(second)

    stored = must_get(store, job_id)
    assert stored.state is JobState.PENDING
    assert stored.attempt == 1
    assert len(stored.errors) == 1


def test_release_with_run_at_ahead_schedules_the_job(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id)

    store.release(lease, run_at=clock.now() + 60)

    stored = must_get(store, job_id)
    assert stored.state is JobState.SCHEDULED
    assert stored.run_at == clock.now() + 60
    assert stored.attempt == 0
    assert claim(store, limit=5) == []
    clock.advance(60)
    assert store.stage_due().promoted == 1
    assert claim_one(store, job_id).job.attempt == 1


def test_release_with_run_at_in_the_past_is_pending(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id)

    store.release(lease, run_at=clock.now() - 1)

    assert state_of(store, job_id) is JobState.PENDING


# rescue ----------------------------------------------------------------------------------


def test_rescue_retries_expired_and_leaves_live_leases_alone(
    store: Store, clock: FakeClock
) -> None:
    expired_id = add(store)
    live_id = add(store, queue="long")
    expired = claim_one(store, expired_id, worker_id="stalled", lease_for=10)
    live = claim_one(store, live_id, queue="long", lease_for=100)
    clock.advance(11)

    result = store.rescue_expired(RescueParams(retry_delay=5, max_rescues=3))

    assert result == RescueResult([expired_id], [])
    job = must_get(store, expired_id)
    assert job.state is JobState.RETRYING
    assert job.run_at == clock.now() + 5
    assert job.rescue_count == 1
    assert job.lease_token is None
    assert len(job.errors) == 1
    assert job.errors[0].type == "LeaseExpired"
    assert job.errors[0].attempt == 1
    assert store.heartbeat([expired], extend=10).lost == [expired_id]
    untouched = must_get(store, live_id)
    assert untouched.state is JobState.PROCESSING
    assert untouched.lease_token == live.token
    assert untouched.rescue_count == 0
    assert untouched.errors == ()
    # Nothing left to rescue; a second pass is a no-op.
    assert store.rescue_expired(RescueParams(retry_delay=5)) == RescueResult([], [])


def test_rescue_ignores_a_lease_that_has_not_expired(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    claim_one(store, job_id, lease_for=10)
    clock.advance(9)

    assert store.rescue_expired(RescueParams()) == RescueResult([], [])
    assert state_of(store, job_id) is JobState.PROCESSING


def test_rescue_with_no_attempt_left_fails_exhausted(store: Store, clock: FakeClock) -> None:
    job_id = add(store, max_attempts=2)
    for attempt in (1, 2):
        lease = claim_one(store, job_id, lease_for=10)
        assert lease.job.attempt == attempt
        clock.advance(11)
        result = store.rescue_expired(RescueParams(retry_delay=1, max_rescues=10))
        if attempt == 1:
            assert result == RescueResult([job_id], [])
            clock.advance(1)
            store.stage_due()

    assert result == RescueResult([], [job_id])
    job = must_get(store, job_id)
    assert job.state is JobState.FAILED
    assert job.failure_reason == FailureReason.EXHAUSTED
    assert [(e.attempt, e.type) for e in job.errors] == [(1, "LeaseExpired"), (2, "LeaseExpired")]
    assert job.lease_token is None


def test_rescue_count_reaching_max_rescues_fails_poison(store: Store, clock: FakeClock) -> None:
    job_id = add(store, max_attempts=10)
    outcomes = []
    for _ in range(3):
        claim_one(store, job_id, lease_for=10)
        clock.advance(11)
        outcomes.append(store.rescue_expired(RescueParams(retry_delay=1, max_rescues=3)))
        clock.advance(1)
        store.stage_due()

    assert outcomes == [
        RescueResult([job_id], []),
        RescueResult([job_id], []),
        RescueResult([], [job_id]),
    ]
    job = must_get(store, job_id)
    assert job.state is JobState.FAILED
    assert job.failure_reason == FailureReason.POISON
    assert job.rescue_count == 3
    assert job.attempt == 3
    assert [e.type for e in job.errors] == ["LeaseExpired"] * 3


def test_rescue_respects_its_limit(store: Store, clock: FakeClock) -> None:
    ids = [add(store) for _ in range(3)]
    claim(store, limit=3, lease_for=10)
    clock.advance(11)

    first = store.rescue_expired(RescueParams(limit=2))
    second = store.rescue_expired(RescueParams(limit=2))

    assert len(first.retried) == 2
    assert len(second.retried) == 1
    assert sorted(first.retried + second.retried) == sorted(ids)


def test_rescue_with_explicit_now(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    claim_one(store, job_id, lease_for=10)

    assert store.rescue_expired(RescueParams(now=clock.now() + 5)) == RescueResult([], [])
    result = store.rescue_expired(RescueParams(now=clock.now() + 11, retry_delay=3))

    assert result.retried == [job_id]
    assert must_get(store, job_id).run_at == clock.now() + 14
