"""claim and stage_due: ordering, queue preference, limits, lease fields, scheduling."""

from __future__ import annotations

import threading
from collections.abc import Callable

from conveyor.clock import FakeClock
from conveyor.job import JobError, JobState, NewJob
from conveyor.stores.base import ClaimParams, Completion, RescueParams, StageResult, Store

from .support import add, claim, claim_one, must_get, new_id, state_of


def test_claim_sets_the_lease_fields(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    clock.advance(5)
    now = clock.now()

    [lease] = claim(store, worker_id="host-1:123", lease_for=45.0)

    assert lease.job_id == job_id
    assert lease.token
    assert lease.expires_at == now + 45.0
    assert lease.job.state is JobState.PROCESSING
    assert lease.job.attempt == 1
    stored = must_get(store, job_id)
    assert stored.state is JobState.PROCESSING
    assert stored.attempt == 1
    assert stored.lease_token == lease.token
    assert stored.lease_expires_at == now + 45.0
    assert stored.worker_id == "host-1:123"
    assert stored.started_at == now
    assert stored.heartbeat_at == now


def test_each_claim_gets_a_fresh_token(store: Store) -> None:
    add(store)
    add(store)

    leases = claim(store, limit=2)

    assert len(leases) == 2
    assert leases[0].token != leases[1].token


def test_explicit_now_judges_the_lease(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    at = clock.now() + 7.0

    [lease] = store.claim(ClaimParams(queues=["default"], worker_id="w", lease_for=10.0, now=at))

    assert lease.expires_at == at + 10.0
    stored = must_get(store, job_id)
    assert stored.started_at == at
    assert stored.lease_expires_at == at + 10.0


def test_higher_priority_first_then_oldest_run_at_then_id(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    ids = sorted(new_id() for _ in range(6))
    # Enqueue in an order unrelated to the expected claim order.
    spec = [
        (ids[5], 0, now - 10),  # same priority and run_at as ids[4]: id decides
        (ids[0], 0, now - 5),  # newer run_at than ids[4]/ids[5]
        (ids[4], 0, now - 10),
        (ids[1], 5, now),  # higher priority beats older run_at
        (ids[3], -5, now - 1000),  # lowest priority last despite the oldest run_at
        (ids[2], 5, now - 1),
    ]
    for job_id, priority, run_at in spec:
        add(store, id=job_id, priority=priority, run_at=run_at)

    leases = claim(store, limit=10)

    assert [lease.job_id for lease in leases] == [ids[2], ids[1], ids[4], ids[5], ids[0], ids[3]]


def test_limit_is_respected(store: Store) -> None:
    ids = [add(store) for _ in range(5)]

    first = claim(store, limit=2)
    second = claim(store, limit=2)
    third = claim(store, limit=2)
    fourth = claim(store, limit=2)

    assert [len(first), len(second), len(third), len(fourth)] == [2, 2, 1, 0]
    claimed = [lease.job_id for lease in first + second + third]
    assert sorted(claimed) == sorted(ids)
    assert all(state_of(store, i) is JobState.PROCESSING for i in ids)


def test_queue_order_given_is_honoured_over_priority(store: Store) -> None:
    in_a = add(store, queue="a", priority=50)
    in_b = add(store, queue="b", priority=-50)

    [first] = claim(store, ["b", "a"], limit=1)
    [second] = claim(store, ["b", "a"], limit=1)

    assert first.job_id == in_b
    assert second.job_id == in_a


def test_queues_fill_the_batch_in_preference_order(store: Store) -> None:
    a_low = add(store, queue="a", priority=0)
    a_high = add(store, queue="a", priority=10)
    a_mid = add(store, queue="a", priority=5)
    b_only = add(store, queue="b")
    c_job = add(store, queue="c", priority=100)

    leases = claim(store, ["b", "a", "c"], limit=3)

    assert [lease.job_id for lease in leases] == [b_only, a_high, a_mid]
    assert state_of(store, a_low) is JobState.PENDING
    assert state_of(store, c_job) is JobState.PENDING


def test_queues_not_asked_for_are_left_alone(store: Store) -> None:
    other = add(store, queue="other")

    assert claim(store, ["default", "mail"], limit=10) == []
    assert state_of(store, other) is JobState.PENDING


def test_claim_on_an_empty_store_returns_nothing(store: Store) -> None:
    assert claim(store, ["default"], limit=5) == []


def test_claim_of_explicit_job_ids_ignores_queues(store: Store) -> None:
    held = add(store, queue="mail", priority=10)
    [taken] = claim(store, ["mail"], limit=1)
    assert taken.job_id == held
    wanted = add(store, queue="mail", priority=-10)
    bystander = add(store, queue="mail", priority=5)

    leases = claim(
        store, ["nothing-here"], limit=5, worker_id="sync", job_ids=[wanted, held, new_id()]
    )

    assert [lease.job_id for lease in leases] == [wanted]
    assert leases[0].job.attempt == 1
    stored = must_get(store, wanted)
    assert stored.state is JobState.PROCESSING
    assert stored.worker_id == "sync"
    assert state_of(store, bystander) is JobState.PENDING
    # The job already held by another worker keeps its lease.
    assert must_get(store, held).lease_token == taken.token


def test_a_claimed_job_is_not_claimed_again(store: Store) -> None:
    job_id = add(store)
    [lease] = claim(store, worker_id="w1")

    assert claim(store, worker_id="w2", limit=10) == []
    assert claim(store, worker_id="w2", job_ids=[job_id]) == []
    stored = must_get(store, job_id)
    assert stored.lease_token == lease.token
    assert stored.worker_id == "w1"


def test_concurrent_claims_never_share_a_job(store: Store) -> None:
    ids = {add(store) for _ in range(120)}
    barrier = threading.Barrier(4)
    taken: list[list[str]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            while True:
                leases = claim(store, worker_id=f"w{n}", limit=7)
                if not leases:
                    return
                taken[n].extend(lease.job_id for lease in leases)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    everything = [job_id for chunk in taken for job_id in chunk]
    assert len(everything) == len(set(everything)) == 120
    assert set(everything) == ids
    for job in store.get_many(sorted(ids)):
        assert job.state is JobState.PROCESSING
        assert job.attempt == 1


def test_blocked_jobs_are_not_claimed(store: Store) -> None:
    parent = add(store, queue="parents")
    child = add(store, depends_on=(parent,))

    assert claim(store, ["default"], limit=10) == []
    assert claim(store, ["default"], job_ids=[child]) == []
    assert state_of(store, child) is JobState.BLOCKED


def test_scheduled_job_waits_for_stage_due(store: Store, clock: FakeClock) -> None:
    job_id = add(store, run_at=clock.now() + 60)

    assert claim(store, limit=10) == []
    assert store.stage_due().promoted == 0
    assert claim(store, limit=10) == []
    assert state_of(store, job_id) is JobState.SCHEDULED

    clock.advance(59)
    assert store.stage_due().promoted == 0
    assert claim(store, limit=10) == []

    clock.advance(1)
    staged = store.stage_due()
    assert staged.promoted == 1
    assert state_of(store, job_id) is JobState.PENDING
    [lease] = claim(store, limit=10)
    assert lease.job_id == job_id
    assert lease.job.attempt == 1


def test_stage_due_reports_the_next_due_time(store: Store, clock: FakeClock) -> None:
    start = clock.now()
    soon = add(store, run_at=start + 10)
    later = add(store, run_at=start + 30)
    add(store)  # pending: never counted
    retried = add(store, queue="r")
    [lease] = claim(store, ["r"])
    store.fail(
        lease,
        JobError(attempt=1, type="E", message="x", failed_at=start),
        retry_at=start + 20,
    )
    assert state_of(store, retried) is JobState.RETRYING

    first = store.stage_due()
    assert (first.promoted, first.next_due_at) == (0, start + 10)

    clock.advance(10)
    second = store.stage_due()
    assert (second.promoted, second.next_due_at) == (1, start + 20)
    assert state_of(store, soon) is JobState.PENDING

    clock.advance(10)
    third = store.stage_due()
    assert (third.promoted, third.next_due_at) == (1, start + 30)
    assert state_of(store, retried) is JobState.PENDING

    clock.advance(100)
    fourth = store.stage_due()
    assert (fourth.promoted, fourth.next_due_at) == (1, None)
    assert state_of(store, later) is JobState.PENDING

    assert store.stage_due() == StageResult(0, None)


def test_stage_due_respects_its_limit(store: Store, clock: FakeClock) -> None:
    ids = [add(store, run_at=clock.now() + 5) for _ in range(5)]
    clock.advance(5)

    assert store.stage_due(limit=2).promoted == 2
    assert sum(state_of(store, i) is JobState.PENDING for i in ids) == 2
    assert store.stage_due(limit=10).promoted == 3
    assert all(state_of(store, i) is JobState.PENDING for i in ids)


def test_stage_due_with_explicit_now(store: Store, clock: FakeClock) -> None:
    job_id = add(store, run_at=clock.now() + 100)

    assert store.stage_due(now=clock.now() + 99).promoted == 0
    assert store.stage_due(now=clock.now() + 100).promoted == 1
    assert state_of(store, job_id) is JobState.PENDING


def test_released_claim_goes_back_in_order(store: Store) -> None:
    first = add(store, priority=1)
    second = add(store)
    lease = claim_one(store, first)
    store.release(lease)

    leases = claim(store, limit=2)

    assert [lease.job_id for lease in leases] == [first, second]
    assert [lease.job.attempt for lease in leases] == [1, 1]


def test_complete_and_claim_acknowledges_then_leases_in_one_step(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    first, second = make_job(queue="q"), make_job(queue="q")
    child = make_job(queue="q", depends_on=(first.id,))
    store.enqueue([first, second, child])
    (lease,) = store.claim(ClaimParams(queues=["q"], worker_id="w", limit=1))
    assert lease.job_id == first.id

    lost, leases = store.complete_and_claim(
        [Completion(lease, b"r1")], ClaimParams(queues=["q"], worker_id="w", limit=2)
    )

    assert lost == []
    assert must_get(store, first.id).state is JobState.COMPLETED
    assert must_get(store, first.id).result == b"r1"
    # the completion released the dependent before the claim looked
    assert sorted(lease.job_id for lease in leases) == sorted([second.id, child.id])
    assert all(must_get(store, lease.job_id).state is JobState.PROCESSING for lease in leases)


def test_complete_and_claim_reports_a_stale_lease_and_still_claims(
    store: Store, make_job: Callable[..., NewJob], clock: FakeClock
) -> None:
    stale_job, other = make_job(queue="q"), make_job(queue="q", priority=-1)
    store.enqueue([stale_job, other])
    (stale,) = store.claim(ClaimParams(queues=["q"], worker_id="a", lease_for=5))
    clock.advance(6)
    store.rescue_expired(RescueParams(retry_delay=0))
    lost, leases = store.complete_and_claim(
        [Completion(stale, None)], ClaimParams(queues=["q"], worker_id="a", limit=1)
    )
    assert lost == [stale_job.id]
    assert must_get(store, stale_job.id).state is JobState.RETRYING
    assert [lease.job_id for lease in leases] == [other.id]


def test_complete_and_claim_with_nothing_to_acknowledge_is_a_claim(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    job = make_job(queue="q")
    store.enqueue([job])
    assert (
        store.complete_and_claim([], ClaimParams(queues=["q"], worker_id="w"))[1][0].job_id
        == job.id
    )
    assert store.complete_and_claim([], ClaimParams(queues=["q"], worker_id="w")) == ([], [])
