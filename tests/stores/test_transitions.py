"""Every driver against the pure lifecycle rules of :mod:`conveyor.stores.transitions`.

Each test reads a job, runs one operation on the driver, reads the job again and checks
it equals what the pure rule computes from the job read before. So the SQL statements
and the Redis scripts, which do not call the rules, are held to them field by field.

Fields a driver chooses itself are left out of the comparison: the lease token (random)
only, which is taken from the lease the driver returned. Times are injected (``now=``)
so that a driver with a lease clock of its own (SQLite) is judged by the same clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import IllegalTransition
from conveyor.job import DependencyPolicy, FailureReason, Job, JobState, Lease, NewJob
from conveyor.stores import transitions
from conveyor.stores.base import ClaimParams, Completion, RescueParams, Store
from conveyor.stores.enqueue_plan import Stored, plan_enqueue
from conveyor.stores.transitions import Effect, Step

from .support import add, error_for, must_get, new_job

S = JobState
LEASE_FOR = 30.0


def _claim(store: Store, clock: FakeClock, job_id: str, worker: str = "worker-1") -> Lease:
    params = ClaimParams(
        queues=["default"], worker_id=worker, lease_for=LEASE_FOR, job_ids=[job_id], now=clock.now()
    )
    [lease] = store.claim(params)
    return lease


def _check(store: Store, job_id: str, expected: Job | Step) -> None:
    """The stored job equals the rule's result, field by field."""
    want = expected.job if isinstance(expected, Step) else expected
    got = must_get(store, job_id)
    differing = {
        f.name: (getattr(got, f.name), getattr(want, f.name))
        for f in dataclasses.fields(Job)
        if getattr(got, f.name) != getattr(want, f.name)
    }
    assert not differing, f"{type(store).__name__} differs from the rule (got, want): {differing}"


def _running(store: Store, clock: FakeClock, **fields: Any) -> Lease:
    return _claim(store, clock, add(store, **fields))


# producers and consumers -----------------------------------------------------------------


@pytest.mark.parametrize("late", [False, True], ids=["pending", "scheduled"])
def test_enqueue_stores_the_created_job(store: Store, clock: FakeClock, late: bool) -> None:
    job = new_job(run_at=clock.now() + 60 if late else None, tags=("a",), priority=3)
    now = clock.now()
    [planned] = plan_enqueue([job], now, Stored()).jobs

    store.enqueue([job], now=now)

    _check(store, job.id, transitions.created(planned, now))


def test_claim_of_a_repeated_id_leases_the_job_once(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    params = ClaimParams(queues=["default"], worker_id="w", limit=5, job_ids=[job_id, job_id])

    leases = store.claim(params)

    assert [lease.job_id for lease in leases] == [job_id]
    assert must_get(store, job_id).lease_token == leases[0].token


@pytest.mark.parametrize("history", [False, True], ids=["fresh", "after-a-failure"])
def test_claim(store: Store, clock: FakeClock, history: bool) -> None:
    job_id = add(store)
    if history:  # a retry: errors, a finish time and a staged run_at to carry or clear
        lease = _claim(store, clock, job_id)
        store.fail(lease, error_for(lease, clock), retry_at=clock.now() + 1, now=clock.now())
        clock.advance(2)
        store.stage_due(now=clock.now())
    before = must_get(store, job_id)
    clock.advance(2)

    lease = _claim(store, clock, job_id, worker="w-7")

    expected = transitions.claimed(
        before,
        worker_id="w-7",
        token=lease.token,
        expires_at=clock.now() + LEASE_FOR,
        now=clock.now(),
    )
    _check(store, job_id, expected)
    assert lease.expires_at == clock.now() + LEASE_FOR


def test_heartbeat(store: Store, clock: FakeClock) -> None:
    lease = _running(store, clock)
    before = must_get(store, lease.job_id)
    clock.advance(5)

    store.heartbeat([lease], extend=45.0, now=clock.now())

    expected = transitions.renewed(before, expires_at=clock.now() + 45.0, now=clock.now())
    _check(store, lease.job_id, expected)


@pytest.mark.parametrize("requested", [False, True], ids=["plain", "cancel-requested"])
def test_complete(store: Store, clock: FakeClock, requested: bool) -> None:
    lease = _running(store, clock)
    if requested:
        store.cancel([lease.job_id], now=clock.now())
    before = must_get(store, lease.job_id)
    clock.advance(3)

    assert store.complete([Completion(lease, b"\x00done")], now=clock.now()) == []

    _check(store, lease.job_id, transitions.completed(before, b"\x00done", clock.now()))


@pytest.mark.parametrize("reason", [None, FailureReason.NOT_RETRYABLE])
@pytest.mark.parametrize("retrying", [True, False], ids=["retrying", "failed"])
def test_fail(store: Store, clock: FakeClock, retrying: bool, reason: FailureReason | None) -> None:
    lease = _running(store, clock)
    before = must_get(store, lease.job_id)
    clock.advance(4)
    error = error_for(lease, clock)
    retry_at = clock.now() + 10 if retrying else None

    state = store.fail(lease, error, retry_at=retry_at, reason=reason, now=clock.now())

    expected = transitions.failed_attempt(
        before, error, retry_at=retry_at, reason=reason, now=clock.now()
    )
    assert state is expected.job.state
    _check(store, lease.job_id, expected)


@pytest.mark.parametrize("delay", [None, 0.0, 20.0], ids=["now", "due", "later"])
def test_release(store: Store, clock: FakeClock, delay: float | None) -> None:
    lease = _running(store, clock)
    before = must_get(store, lease.job_id)
    clock.advance(1)
    run_at = None if delay is None else clock.now() + delay

    store.release(lease, run_at=run_at, now=clock.now())

    _check(store, lease.job_id, transitions.released(before, run_at=run_at, now=clock.now()))


# cancelling ------------------------------------------------------------------------------


def test_finish_cancelled(store: Store, clock: FakeClock) -> None:
    lease = _running(store, clock)
    store.cancel([lease.job_id], now=clock.now())
    before = must_get(store, lease.job_id)
    clock.advance(2)

    store.finish_cancelled(lease, now=clock.now())

    _check(store, lease.job_id, transitions.cancelled(before, clock.now()))


@pytest.mark.parametrize("late", [False, True], ids=["pending", "scheduled"])
def test_cancel_a_waiting_job(store: Store, clock: FakeClock, late: bool) -> None:
    job_id = add(store, run_at=clock.now() + 60 if late else None)
    before = must_get(store, job_id)
    clock.advance(1)

    store.cancel([job_id], now=clock.now())

    _check(store, job_id, transitions.cancelled(before, clock.now()))


def test_cancel_a_running_job_requests_it(store: Store, clock: FakeClock) -> None:
    lease = _running(store, clock)
    before = must_get(store, lease.job_id)

    store.cancel([lease.job_id], now=clock.now())

    _check(store, lease.job_id, transitions.cancel_requested(before))


def test_forced_cancel_of_a_running_job(store: Store, clock: FakeClock) -> None:
    lease = _running(store, clock)
    before = must_get(store, lease.job_id)
    clock.advance(1)

    store.cancel([lease.job_id], force=True, now=clock.now())

    _check(store, lease.job_id, transitions.cancelled(before, clock.now()))


# maintenance -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_attempts", "max_rescues"),
    [(3, 3), (1, 3), (3, 1)],
    ids=["retry", "exhausted", "poison"],
)
@pytest.mark.parametrize("requested", [False, True], ids=["plain", "cancel-requested"])
def test_rescue(
    store: Store, clock: FakeClock, max_attempts: int, max_rescues: int, requested: bool
) -> None:
    lease = _running(store, clock, max_attempts=max_attempts)
    if requested:
        store.cancel([lease.job_id], now=clock.now())
    before = must_get(store, lease.job_id)
    clock.advance(LEASE_FOR + 1)
    params = RescueParams(retry_delay=7.0, max_rescues=max_rescues, now=clock.now())

    store.rescue_expired(params)

    _check(store, lease.job_id, transitions.rescued(before, params, clock.now()))


@pytest.mark.parametrize("how", ["failed", "poison"])
def test_retry_from_the_dlq(store: Store, clock: FakeClock, how: str) -> None:
    lease = _running(store, clock)
    if how == "failed":
        store.fail(lease, error_for(lease, clock), retry_at=None, now=clock.now())
    else:
        clock.advance(LEASE_FOR + 1)
        store.rescue_expired(RescueParams(max_rescues=1, now=clock.now()))
    before = must_get(store, lease.job_id)
    clock.advance(5)

    assert store.retry([lease.job_id], now=clock.now()) == [lease.job_id]

    _check(store, lease.job_id, transitions.retried(before, clock.now()))


def test_retry_of_a_cancelled_job(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    store.cancel([job_id], now=clock.now())
    before = must_get(store, job_id)
    clock.advance(5)

    store.retry([job_id], now=clock.now())

    _check(store, job_id, transitions.retried(before, clock.now()))


def test_stage_due_scheduled(store: Store, clock: FakeClock) -> None:
    job_id = add(store, run_at=clock.now() + 10)
    before = must_get(store, job_id)
    clock.advance(11)

    assert store.stage_due(now=clock.now()).promoted == 1

    _check(store, job_id, transitions.staged(before))


def test_stage_due_retrying(store: Store, clock: FakeClock) -> None:
    lease = _running(store, clock)
    store.fail(lease, error_for(lease, clock), retry_at=clock.now() + 5, now=clock.now())
    before = must_get(store, lease.job_id)
    clock.advance(6)

    assert store.stage_due(now=clock.now()).promoted == 1

    _check(store, lease.job_id, transitions.staged(before))


# dependents ------------------------------------------------------------------------------


def _enqueue(store: Store, clock: FakeClock, *jobs: NewJob) -> None:
    store.enqueue(list(jobs), now=clock.now())


def test_completing_the_last_dependency_releases_dependents(store: Store, clock: FakeClock) -> None:
    parent, other = new_job(), new_job()
    now_child = new_job(depends_on=(parent.id,))
    late_child = new_job(depends_on=(parent.id,), run_at=clock.now() + 100)
    two_deps = new_job(depends_on=(parent.id, other.id))
    _enqueue(store, clock, parent, other, now_child, late_child, two_deps)
    lease = _claim(store, clock, parent.id)
    before = {j.id: must_get(store, j.id) for j in (now_child, late_child, two_deps)}
    clock.advance(3)

    store.complete([Completion(lease, None)], now=clock.now())

    for job_id, job in before.items():
        _check(store, job_id, transitions.unblocked(job, clock.now()))


@pytest.mark.parametrize("policy", list(DependencyPolicy))
@pytest.mark.parametrize("how", ["fail", "cancel", "force", "waiting", "rescue", "delete"])
def test_dependents_get_their_policy(
    store: Store, clock: FakeClock, policy: DependencyPolicy, how: str
) -> None:
    parent = new_job(max_attempts=1)
    child = new_job(depends_on=(parent.id,), on_dependency_failure=policy)
    grandchild = new_job(depends_on=(child.id,), on_dependency_failure=DependencyPolicy.FAIL)
    _enqueue(store, clock, parent, child, grandchild)
    end = _end_badly(store, clock, parent.id, how)
    before = {j.id: must_get(store, j.id) for j in (child, grandchild)}
    clock.advance(LEASE_FOR + 1)

    end()

    for job_id, job in before.items():
        _check(store, job_id, transitions.dependency_failed(job, clock.now()))


def _end_badly(store: Store, clock: FakeClock, job_id: str, how: str) -> Callable[[], object]:
    """Ready ``job_id`` to end badly ``how``; return the call that ends it."""
    if how == "waiting":
        return lambda: store.cancel([job_id], now=clock.now())
    if how == "delete":
        return lambda: store.delete([job_id])
    lease = _claim(store, clock, job_id)
    if how == "fail":
        return lambda: store.fail(lease, error_for(lease, clock), retry_at=None, now=clock.now())
    if how == "cancel":
        store.cancel([job_id], now=clock.now())
        return lambda: store.finish_cancelled(lease, now=clock.now())
    if how == "force":
        return lambda: store.cancel([job_id], force=True, now=clock.now())
    return lambda: store.rescue_expired(RescueParams(now=clock.now()))


# job controls ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.PENDING, S.SCHEDULED, S.BLOCKED])
def test_reprioritize(store: Store, clock: FakeClock, state: JobState) -> None:
    job_id = _waiting(store, clock, state)
    before = must_get(store, job_id)

    assert store.reprioritize([job_id], 9, now=clock.now()) == [job_id]

    _check(store, job_id, transitions.reprioritized(before, 9))


@pytest.mark.parametrize("state", [S.PENDING, S.SCHEDULED, S.BLOCKED])
def test_move(store: Store, clock: FakeClock, state: JobState) -> None:
    job_id = _waiting(store, clock, state)
    before = must_get(store, job_id)

    assert store.move([job_id], "elsewhere", now=clock.now()) == [job_id]

    _check(store, job_id, transitions.moved(before, "elsewhere"))


def _waiting(store: Store, clock: FakeClock, state: JobState) -> str:
    if state is S.SCHEDULED:
        return add(store, run_at=clock.now() + 60)
    if state is S.BLOCKED:
        return add(store, depends_on=(add(store),))
    return add(store)


# the rules themselves --------------------------------------------------------------------


def _pure_job(state: JobState) -> Job:
    return Job(id="j", queue="default", task="t", payload=b"", state=state)


@pytest.mark.parametrize(
    ("rule", "state"),
    [
        (lambda job: transitions.completed(job, None, 1.0), S.PENDING),
        (lambda job: transitions.released(job, run_at=None, now=1.0), S.COMPLETED),
        (lambda job: transitions.cancelled(job, 1.0), S.FAILED),
        (lambda job: transitions.retried(job, 1.0), S.PENDING),
        (lambda job: transitions.staged(job), S.COMPLETED),
        (lambda job: transitions.rescued(job, RescueParams(), 1.0), S.PENDING),
        (
            lambda job: transitions.claimed(job, worker_id="w", token="t", expires_at=2.0, now=1.0),
            S.COMPLETED,
        ),
    ],
)
def test_a_rule_refuses_an_illegal_move(rule: Callable[[Job], object], state: JobState) -> None:
    with pytest.raises(IllegalTransition):
        rule(_pure_job(state))


def test_effects_say_what_follows() -> None:
    running = _pure_job(S.PROCESSING)
    assert transitions.completed(running, None, 1.0).effects == {Effect.RELEASE_DEPENDENTS}
    assert transitions.cancelled(running, 1.0).effects == {Effect.FAIL_DEPENDENTS}
    assert transitions.released(running, run_at=None, now=1.0).effects == {Effect.WAKE}
    assert transitions.released(running, run_at=5.0, now=1.0).effects == set()
    blocked = dataclasses.replace(_pure_job(S.BLOCKED), blocked_by=1, run_at=1.0)
    assert transitions.unblocked(blocked, 1.0).effects == {Effect.WAKE}
