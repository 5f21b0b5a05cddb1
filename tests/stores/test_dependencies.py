"""Dependencies: blocked jobs, release on completion, failure propagation, bad graphs."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import DependencyCycle, UnknownDependency
from conveyor.job import DependencyPolicy, EnqueueResult, FailureReason, JobState, NewJob
from conveyor.stores.base import Completion, RescueParams, Store

from .support import add, claim_one, count_jobs, error_for, must_get, new_id, state_of

FAIL = DependencyPolicy.FAIL
CANCEL = DependencyPolicy.CANCEL


def _complete(store: Store, job_id: str, queue: str = "parents") -> None:
    lease = claim_one(store, job_id, queue=queue)
    assert store.complete([Completion(lease, None)]) == []


def _fail(store: Store, clock: FakeClock, job_id: str, queue: str = "parents") -> None:
    lease = claim_one(store, job_id, queue=queue)
    store.fail(lease, error_for(lease, clock), retry_at=None, reason=FailureReason.NOT_RETRYABLE)


def test_job_waiting_on_a_pending_job_starts_blocked(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    parent = add(store, queue="parents")
    child = make_job(depends_on=(parent,))

    assert store.enqueue([child]) == [EnqueueResult(child.id, JobState.BLOCKED, False)]

    job = must_get(store, child.id)
    assert job.state is JobState.BLOCKED
    assert job.blocked_by == 1
    assert job.depends_on == (parent,)


def test_completion_releases_the_dependent(store: Store) -> None:
    parent = add(store, queue="parents")
    child = add(store, depends_on=(parent,))

    _complete(store, parent)

    job = must_get(store, child)
    assert job.state is JobState.PENDING
    assert job.blocked_by == 0
    assert claim_one(store, child).job.attempt == 1


def test_completion_releases_to_scheduled_when_run_at_is_ahead(
    store: Store, clock: FakeClock
) -> None:
    parent = add(store, queue="parents")
    child = add(store, depends_on=(parent,), run_at=clock.now() + 100)
    assert state_of(store, child) is JobState.BLOCKED

    _complete(store, parent)

    assert state_of(store, child) is JobState.SCHEDULED
    clock.advance(100)
    assert store.stage_due().promoted == 1
    assert state_of(store, child) is JobState.PENDING


def test_completion_after_run_at_releases_to_pending(store: Store, clock: FakeClock) -> None:
    parent = add(store, queue="parents")
    child = add(store, depends_on=(parent,), run_at=clock.now() + 10)
    clock.advance(20)

    _complete(store, parent)

    assert state_of(store, child) is JobState.PENDING


def test_blocked_by_counts_down_with_each_completed_dependency(store: Store) -> None:
    first = add(store, queue="parents")
    second = add(store, queue="parents")
    child = add(store, depends_on=(first, second))
    assert must_get(store, child).blocked_by == 2

    _complete(store, first)
    job = must_get(store, child)
    assert (job.state, job.blocked_by) == (JobState.BLOCKED, 1)

    _complete(store, second)
    job = must_get(store, child)
    assert (job.state, job.blocked_by) == (JobState.PENDING, 0)


def test_depending_on_a_completed_job_is_pending_at_once(store: Store) -> None:
    parent = add(store, queue="parents")
    _complete(store, parent)
    blocker = add(store, queue="parents")

    ready = add(store, depends_on=(parent,))
    waiting = add(store, depends_on=(parent, blocker))

    assert must_get(store, ready).state is JobState.PENDING
    assert must_get(store, ready).blocked_by == 0
    job = must_get(store, waiting)
    assert (job.state, job.blocked_by) == (JobState.BLOCKED, 1)


def test_a_retrying_dependency_keeps_dependents_blocked(store: Store, clock: FakeClock) -> None:
    parent = add(store, queue="parents")
    child = add(store, depends_on=(parent,))
    lease = claim_one(store, parent, queue="parents")

    store.fail(lease, error_for(lease, clock), retry_at=clock.now() + 5)
    clock.advance(5)
    store.stage_due()

    assert state_of(store, child) is JobState.BLOCKED
    _complete(store, parent)
    assert state_of(store, child) is JobState.PENDING


@pytest.mark.parametrize(
    ("policy", "expected"), [(FAIL, JobState.FAILED), (CANCEL, JobState.CANCELLED)]
)
def test_failed_dependency_applies_the_policy(
    store: Store, clock: FakeClock, policy: DependencyPolicy, expected: JobState
) -> None:
    parent = add(store, queue="parents")
    child = add(store, depends_on=(parent,), on_dependency_failure=policy)

    _fail(store, clock, parent)

    job = must_get(store, child)
    assert job.state is expected
    if policy is FAIL:
        assert job.failure_reason == FailureReason.DEPENDENCY_FAILED
    assert store.stage_due().promoted == 0


def test_failure_propagates_through_a_chain(store: Store, clock: FakeClock) -> None:
    a = add(store, queue="parents")
    b = add(store, depends_on=(a,), on_dependency_failure=CANCEL)
    c = add(store, depends_on=(b,), on_dependency_failure=FAIL)
    d = add(store, depends_on=(c,), on_dependency_failure=CANCEL)
    unrelated = add(store, queue="parents")
    e = add(store, depends_on=(unrelated,))

    _fail(store, clock, a)

    assert state_of(store, b) is JobState.CANCELLED
    assert state_of(store, c) is JobState.FAILED
    assert must_get(store, c).failure_reason == FailureReason.DEPENDENCY_FAILED
    assert state_of(store, d) is JobState.CANCELLED
    assert state_of(store, e) is JobState.BLOCKED


def test_a_dependent_with_another_open_dependency_still_fails(
    store: Store, clock: FakeClock
) -> None:
    failing = add(store, queue="parents")
    other = add(store, queue="parents")
    child = add(store, depends_on=(other, failing))

    _fail(store, clock, failing)

    assert state_of(store, child) is JobState.FAILED
    _complete(store, other)
    assert state_of(store, child) is JobState.FAILED


def test_rescue_to_failed_propagates(store: Store, clock: FakeClock) -> None:
    parent = add(store, queue="parents", max_attempts=1)
    child = add(store, depends_on=(parent,), on_dependency_failure=CANCEL)
    claim_one(store, parent, queue="parents", lease_for=10)
    clock.advance(11)

    assert store.rescue_expired(RescueParams()).failed == [parent]

    assert state_of(store, child) is JobState.CANCELLED


@pytest.mark.parametrize(
    ("policy", "expected"), [(FAIL, JobState.FAILED), (CANCEL, JobState.CANCELLED)]
)
def test_cancelling_a_waiting_parent_applies_the_policy(
    store: Store, policy: DependencyPolicy, expected: JobState
) -> None:
    parent = add(store, queue="parents")
    child = add(store, depends_on=(parent,), on_dependency_failure=policy)
    grandchild = add(store, depends_on=(child,))

    assert store.cancel([parent]).cancelled == [parent]

    assert state_of(store, child) is expected
    assert state_of(store, grandchild) is JobState.FAILED


def test_cooperative_cancel_of_a_running_parent_propagates_when_it_ends(store: Store) -> None:
    parent = add(store, queue="parents")
    child = add(store, depends_on=(parent,), on_dependency_failure=CANCEL)
    lease = claim_one(store, parent, queue="parents")

    assert store.cancel([parent]).requested == [parent]
    assert state_of(store, child) is JobState.BLOCKED

    store.finish_cancelled(lease)

    assert state_of(store, parent) is JobState.CANCELLED
    assert state_of(store, child) is JobState.CANCELLED


def test_forced_cancel_of_a_running_parent_propagates(store: Store) -> None:
    parent = add(store, queue="parents")
    child = add(store, depends_on=(parent,))
    claim_one(store, parent, queue="parents")

    store.cancel([parent], force=True)

    assert state_of(store, child) is JobState.FAILED


@pytest.mark.parametrize(
    ("policy", "expected"), [(FAIL, JobState.FAILED), (CANCEL, JobState.CANCELLED)]
)
@pytest.mark.parametrize("dependency_end", ["failed", "cancelled"])
def test_depending_on_a_dead_job_applies_the_policy_at_once(
    store: Store,
    clock: FakeClock,
    make_job: Callable[..., NewJob],
    dependency_end: str,
    policy: DependencyPolicy,
    expected: JobState,
) -> None:
    parent = add(store, queue="parents")
    if dependency_end == "failed":
        _fail(store, clock, parent)
    else:
        store.cancel([parent])
    child = make_job(depends_on=(parent,), on_dependency_failure=policy)

    [result] = store.enqueue([child])

    assert result == EnqueueResult(child.id, expected, False)
    job = must_get(store, child.id)
    assert job.state is expected
    if policy is FAIL:
        assert job.failure_reason == FailureReason.DEPENDENCY_FAILED
    assert store.stage_due().promoted == 0


def test_dependencies_within_one_batch(store: Store, make_job: Callable[..., NewJob]) -> None:
    a = make_job(queue="parents")
    b = make_job(depends_on=(a.id,))
    c = make_job(depends_on=(a.id, b.id))

    results = store.enqueue([a, b, c])

    assert [r.state for r in results] == [JobState.PENDING, JobState.BLOCKED, JobState.BLOCKED]
    assert must_get(store, c.id).blocked_by == 2
    _complete(store, a.id)
    assert state_of(store, b.id) is JobState.PENDING
    assert must_get(store, c.id).blocked_by == 1
    _complete(store, b.id, queue="default")
    assert state_of(store, c.id) is JobState.PENDING


def test_a_batch_may_list_a_dependent_before_its_dependency(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    parent = make_job(queue="parents")
    child = make_job(depends_on=(parent.id,))

    results = store.enqueue([child, parent])

    assert [r.state for r in results] == [JobState.BLOCKED, JobState.PENDING]
    _complete(store, parent.id)
    assert state_of(store, child.id) is JobState.PENDING


def test_unknown_dependency_writes_nothing(store: Store, make_job: Callable[..., NewJob]) -> None:
    existing = add(store, queue="parents")
    missing = new_id()
    batch = [
        make_job(),
        make_job(depends_on=(existing,)),
        make_job(depends_on=(existing, missing)),
        make_job(unique_key="u-1"),
    ]

    with pytest.raises(UnknownDependency) as info:
        store.enqueue(batch)

    assert info.value.job_id == missing
    assert store.get_many([j.id for j in batch]) == []
    assert count_jobs(store) == 1
    # Nothing of the batch was half-written: its unique key is still free.
    fresh = make_job(unique_key="u-1")
    assert store.enqueue([fresh]) == [EnqueueResult(fresh.id, JobState.PENDING, False)]


def _cycle_batch(make_job: Callable[..., NewJob], shape: str) -> tuple[list[NewJob], set[str]]:
    ids = [new_id() for _ in range(4)]
    if shape == "self":
        return [make_job(id=ids[0], depends_on=(ids[0],))], {ids[0]}
    if shape == "pair":
        jobs = [
            make_job(id=ids[0], depends_on=(ids[1],)),
            make_job(id=ids[1], depends_on=(ids[0],)),
        ]
        return jobs, {ids[0], ids[1]}
    jobs = [
        make_job(id=ids[3]),
        make_job(id=ids[0], depends_on=(ids[2], ids[3])),
        make_job(id=ids[1], depends_on=(ids[0],)),
        make_job(id=ids[2], depends_on=(ids[1],)),
    ]
    return jobs, {ids[0], ids[1], ids[2]}


@pytest.mark.parametrize("shape", ["self", "pair", "triangle"])
def test_cycle_in_a_batch_is_refused_and_named(
    store: Store, make_job: Callable[..., NewJob], shape: str
) -> None:
    jobs, members = _cycle_batch(make_job, shape)
    existing = add(store, queue="parents")

    with pytest.raises(DependencyCycle) as info:
        store.enqueue([*jobs, make_job(depends_on=(existing,))])

    cycle = info.value.cycle
    assert cycle[0] == cycle[-1]
    assert set(cycle) == members
    assert len(cycle) == len(members) + 1
    assert all(job_id in str(info.value) for job_id in members)
    edges = {job.id: set(job.depends_on) for job in jobs}
    steps = list(pairwise(cycle))
    assert all(b in edges[a] for a, b in steps) or all(a in edges[b] for a, b in steps)
    assert store.get_many([j.id for j in jobs]) == []
    assert count_jobs(store) == 1


def test_a_dependency_on_a_duplicate_waits_for_the_job_holding_the_key(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    holder = add(store, queue="parents", unique_key="nightly")
    dup = make_job(queue="parents", unique_key="nightly")
    child = make_job(depends_on=(dup.id,))

    results = store.enqueue([dup, child])

    assert results[0] == EnqueueResult(holder, JobState.PENDING, True)
    assert results[1].state is JobState.BLOCKED
    _complete(store, holder)
    assert state_of(store, child.id) is JobState.PENDING


# batches that mix unique keys and dependencies --------------------------------------------
# The rule (docs/store-contract.md): a batch means what enqueuing its jobs one at a time
# would mean, each job after the batch jobs it depends on, otherwise in batch order.


def test_a_job_depending_on_a_job_with_its_own_unique_key_is_its_duplicate(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    """The dependency is enqueued first, so it holds the key; the dependent duplicates it."""
    b = make_job(unique_key="k")
    a = make_job(unique_key="k", depends_on=(b.id,))

    results = store.enqueue([a, b])

    assert results == [
        EnqueueResult(b.id, JobState.PENDING, True),
        EnqueueResult(b.id, JobState.PENDING, False),
    ]
    assert store.get(a.id) is None
    assert count_jobs(store) == 1


def test_a_transitive_dependency_with_the_same_key_holds_it(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    """A -> C -> B, A and B share a key: B is planned first and keeps it; no cycle."""
    b = make_job(queue="parents", unique_key="k")
    c = make_job(depends_on=(b.id,))
    a = make_job(unique_key="k", depends_on=(c.id,))

    results = store.enqueue([a, b, c])

    assert results == [
        EnqueueResult(b.id, JobState.PENDING, True),
        EnqueueResult(b.id, JobState.PENDING, False),
        EnqueueResult(c.id, JobState.BLOCKED, False),
    ]
    assert must_get(store, c.id).depends_on == (b.id,)
    _complete(store, b.id)
    assert state_of(store, c.id) is JobState.PENDING


def test_among_unrelated_jobs_the_first_in_the_batch_keeps_the_key(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    x = make_job(queue="parents")
    a = make_job(unique_key="k", depends_on=(x.id,))
    b = make_job(unique_key="k")

    results = store.enqueue([a, b, x])

    assert results == [
        EnqueueResult(a.id, JobState.BLOCKED, False),
        EnqueueResult(a.id, JobState.BLOCKED, True),
        EnqueueResult(x.id, JobState.PENDING, False),
    ]
    assert store.get(b.id) is None


def test_dependencies_are_planned_in_the_order_they_are_listed(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    x = make_job(queue="parents", unique_key="k")
    y = make_job(queue="parents", unique_key="k")
    a = make_job(depends_on=(x.id, y.id))

    results = store.enqueue([a, y, x])

    assert results == [
        EnqueueResult(a.id, JobState.BLOCKED, False),
        EnqueueResult(x.id, JobState.PENDING, True),
        EnqueueResult(x.id, JobState.PENDING, False),
    ]
    stored = must_get(store, a.id)
    assert stored.depends_on == (x.id,)
    assert stored.blocked_by == 1


def test_a_dependency_on_an_in_batch_duplicate_is_stored_as_its_holder(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    first = make_job(queue="parents", unique_key="k")
    second = make_job(queue="parents", unique_key="k")
    child = make_job(depends_on=(second.id, first.id))

    results = store.enqueue([first, second, child])

    assert [r.id for r in results] == [first.id, first.id, child.id]
    stored = must_get(store, child.id)
    assert stored.depends_on == (first.id,)
    assert stored.blocked_by == 1
    _complete(store, first.id)
    assert state_of(store, child.id) is JobState.PENDING


@pytest.mark.parametrize("policy", [FAIL, CANCEL])
def test_a_batch_job_that_ends_at_once_does_not_hold_its_unique_key(
    store: Store, clock: FakeClock, make_job: Callable[..., NewJob], policy: DependencyPolicy
) -> None:
    dead = add(store, queue="parents")
    _fail(store, clock, dead)
    doomed = make_job(unique_key="k", depends_on=(dead,), on_dependency_failure=policy)
    later = make_job(unique_key="k")

    results = store.enqueue([doomed, later])

    ended = JobState.FAILED if policy is FAIL else JobState.CANCELLED
    assert results == [
        EnqueueResult(doomed.id, ended, False),
        EnqueueResult(later.id, JobState.PENDING, False),
    ]
    assert count_jobs(store) == 3


def test_a_job_that_ends_at_once_holds_a_unique_key_with_a_window_for_the_window(
    store: Store, clock: FakeClock, make_job: Callable[..., NewJob]
) -> None:
    """A window holds its key whatever the job's state, as for a job that ran and ended;
    only a key without a window is freed by the job ending (the case above)."""
    dead = add(store, queue="parents")
    _fail(store, clock, dead)
    doomed = make_job(unique_key="k", unique_for=60.0, depends_on=(dead,))
    within = make_job(unique_key="k")

    assert store.enqueue([doomed, within]) == [
        EnqueueResult(doomed.id, JobState.FAILED, False),
        EnqueueResult(doomed.id, JobState.FAILED, True),
    ]
    clock.advance(61)
    after = make_job(unique_key="k")
    assert store.enqueue([after]) == [EnqueueResult(after.id, JobState.PENDING, False)]


def test_an_unknown_dependency_is_refused_before_an_idempotency_conflict(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    add(store, idempotency_key="order-1", fingerprint="a")
    missing = new_id()
    batch = [
        make_job(idempotency_key="order-1", fingerprint="b"),
        make_job(depends_on=(missing,)),
    ]

    with pytest.raises(UnknownDependency) as info:
        store.enqueue(batch)

    assert info.value.job_id == missing
    assert count_jobs(store) == 1
