"""Unique keys and idempotency keys, enforced by the store itself."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import IdempotencyConflict
from conveyor.job import EnqueueResult, FailureReason, JobState, NewJob
from conveyor.stores.base import Completion, Store

from .support import add, claim_one, count_jobs, enqueue_one, error_for, must_get

# unique keys -----------------------------------------------------------------------------


def _put_in_state(store: Store, clock: FakeClock, job_id: str, state: str) -> None:
    """Move the pending job ``job_id`` (queue ``default``) into ``state``."""
    if state == "pending":
        return
    lease = claim_one(store, job_id)
    if state == "processing":
        return
    if state == "retrying":
        store.fail(lease, error_for(lease, clock), retry_at=clock.now() + 100)
    elif state == "completed":
        store.complete([Completion(lease, None)])
    elif state == "failed":
        store.fail(lease, error_for(lease, clock), retry_at=None, reason=FailureReason.EXHAUSTED)
    elif state == "cancelled":
        store.finish_cancelled(lease)
    assert must_get(store, job_id).state == state


@pytest.mark.parametrize("state", ["pending", "processing", "retrying"])
def test_unique_key_is_held_while_the_job_is_active(
    store: Store, clock: FakeClock, make_job: Callable[..., NewJob], state: str
) -> None:
    first = make_job(unique_key="report:2024")
    enqueue_one(store, first)
    _put_in_state(store, clock, first.id, state)
    second = make_job(unique_key="report:2024", payload=b"other")

    [result] = store.enqueue([second])

    assert result == EnqueueResult(first.id, JobState(state), True)
    assert store.get(second.id) is None
    assert count_jobs(store) == 1
    assert must_get(store, first.id).payload == first.payload


def test_unique_key_is_held_by_scheduled_and_blocked_jobs(
    store: Store, clock: FakeClock, make_job: Callable[..., NewJob]
) -> None:
    scheduled = make_job(unique_key="s", run_at=clock.now() + 100)
    blocker = add(store, queue="parents")
    blocked = make_job(unique_key="b", depends_on=(blocker,))
    store.enqueue([scheduled, blocked])

    results = store.enqueue([make_job(unique_key="s"), make_job(unique_key="b")])

    assert results == [
        EnqueueResult(scheduled.id, JobState.SCHEDULED, True),
        EnqueueResult(blocked.id, JobState.BLOCKED, True),
    ]
    assert count_jobs(store) == 3


@pytest.mark.parametrize("end", ["completed", "failed", "cancelled"])
def test_unique_key_frees_when_the_job_ends(
    store: Store, clock: FakeClock, make_job: Callable[..., NewJob], end: str
) -> None:
    first = make_job(unique_key="nightly")
    enqueue_one(store, first)
    _put_in_state(store, clock, first.id, end)
    second = make_job(unique_key="nightly")

    assert store.enqueue([second]) == [EnqueueResult(second.id, JobState.PENDING, False)]

    assert must_get(store, second.id).unique_key == "nightly"
    # The new job now holds the key.
    third = make_job(unique_key="nightly")
    assert store.enqueue([third]) == [EnqueueResult(second.id, JobState.PENDING, True)]
    assert store.get(third.id) is None


def test_unique_for_holds_the_key_for_its_window_even_after_completion(
    store: Store, clock: FakeClock, make_job: Callable[..., NewJob]
) -> None:
    first = make_job(unique_key="digest", unique_for=60.0)
    enqueue_one(store, first)
    _put_in_state(store, clock, first.id, "completed")
    clock.advance(59)

    early = make_job(unique_key="digest", unique_for=60.0)
    assert store.enqueue([early]) == [EnqueueResult(first.id, JobState.COMPLETED, True)]
    assert store.get(early.id) is None

    clock.advance(2)
    late = make_job(unique_key="digest", unique_for=60.0)
    assert store.enqueue([late]) == [EnqueueResult(late.id, JobState.PENDING, False)]
    assert count_jobs(store) == 2


def test_distinct_or_missing_unique_keys_never_collide(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    jobs = [make_job(unique_key="a"), make_job(unique_key="b"), make_job(), make_job()]

    results = store.enqueue(jobs)

    assert [r.duplicate for r in results] == [False] * 4
    assert count_jobs(store) == 4


def test_same_unique_key_twice_in_one_batch_keeps_the_first(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    first = make_job(unique_key="k")
    second = make_job(unique_key="k")

    results = store.enqueue([first, second])

    assert results == [
        EnqueueResult(first.id, JobState.PENDING, False),
        EnqueueResult(first.id, JobState.PENDING, True),
    ]
    assert store.get(second.id) is None
    assert count_jobs(store) == 1


# idempotency keys ------------------------------------------------------------------------


def test_same_idempotency_key_and_fingerprint_returns_the_first_job(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    first = make_job(idempotency_key="order-7", fingerprint="sha:1")
    enqueue_one(store, first)
    again = make_job(idempotency_key="order-7", fingerprint="sha:1")

    [result] = store.enqueue([again])

    assert result.id == first.id
    assert result.duplicate is True
    assert store.get(again.id) is None
    assert count_jobs(store) == 1


def test_idempotency_key_holds_after_completion(
    store: Store, clock: FakeClock, make_job: Callable[..., NewJob]
) -> None:
    first = make_job(idempotency_key="pay-1", fingerprint="fp")
    enqueue_one(store, first)
    _put_in_state(store, clock, first.id, "completed")
    clock.advance(3600)

    [result] = store.enqueue([make_job(idempotency_key="pay-1", fingerprint="fp")])

    assert (result.id, result.duplicate) == (first.id, True)
    assert count_jobs(store) == 1


def test_different_fingerprint_conflicts_and_writes_nothing(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    first = make_job(idempotency_key="order-8", fingerprint="sha:1")
    enqueue_one(store, first)
    innocent = make_job(unique_key="innocent")
    clash = make_job(idempotency_key="order-8", fingerprint="sha:2")

    with pytest.raises(IdempotencyConflict) as info:
        store.enqueue([innocent, clash])

    assert info.value.key == "order-8"
    assert info.value.existing_id == first.id
    assert store.get(innocent.id) is None
    assert store.get(clash.id) is None
    assert count_jobs(store) == 1
    # The unique key of the refused batch was not taken.
    retry = make_job(unique_key="innocent")
    assert enqueue_one(store, retry) == EnqueueResult(retry.id, JobState.PENDING, False)


def test_idempotency_key_frees_after_its_window(
    store: Store, clock: FakeClock, make_job: Callable[..., NewJob]
) -> None:
    first = make_job(idempotency_key="ping", fingerprint="a", idempotency_for=100.0)
    enqueue_one(store, first)
    clock.advance(99)
    assert enqueue_one(store, make_job(idempotency_key="ping", fingerprint="a")).id == first.id

    clock.advance(2)
    later = make_job(idempotency_key="ping", fingerprint="b", idempotency_for=100.0)

    assert enqueue_one(store, later) == EnqueueResult(later.id, JobState.PENDING, False)
    assert count_jobs(store) == 2
    # The new job owns the key for its own window.
    again = make_job(idempotency_key="ping", fingerprint="b")
    assert enqueue_one(store, again).id == later.id
    with pytest.raises(IdempotencyConflict):
        store.enqueue([make_job(idempotency_key="ping", fingerprint="a")])
