"""enqueue: initial states, stored fields, payload bytes, batch atomicity, connections."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import ConfigurationError, UnknownDependency
from conveyor.job import DependencyPolicy, EnqueueResult, JobState, NewJob
from conveyor.stores.base import Completion, JobQuery, Store

from .support import add, claim_one, count_jobs, enqueue_one, must_get, new_id

MiB = 1024 * 1024


def test_enqueue_stores_every_field(
    store: Store, clock: FakeClock, make_job: Callable[..., NewJob]
) -> None:
    parent = add(store)
    job = make_job(
        queue="mail",
        task="tests.send_mail",
        payload=b"\x00\x01frame\xff",
        priority=7,
        max_attempts=5,
        timeout=12.5,
        tags=("billing", "eu"),
        parent_id=parent,
        unique_key="mail:42",
        idempotency_key="idem-42",
        fingerprint="fp-42",
        task_version=3,
        on_dependency_failure=DependencyPolicy.CANCEL,
    )

    assert store.enqueue([job]) == [EnqueueResult(job.id, JobState.PENDING, False)]

    stored = must_get(store, job.id)
    assert stored.id == job.id
    assert stored.queue == "mail"
    assert stored.task == "tests.send_mail"
    assert stored.payload == b"\x00\x01frame\xff"
    assert stored.state is JobState.PENDING
    assert stored.priority == 7
    assert stored.attempt == 0
    assert stored.max_attempts == 5
    assert stored.run_at == clock.now()
    assert stored.timeout == 12.5
    assert stored.lease_token is None
    assert stored.lease_expires_at is None
    assert stored.worker_id is None
    assert stored.depends_on == ()
    assert stored.blocked_by == 0
    assert stored.on_dependency_failure is DependencyPolicy.CANCEL
    assert stored.parent_id == parent
    assert stored.tags == ("billing", "eu")
    assert stored.unique_key == "mail:42"
    assert stored.idempotency_key == "idem-42"
    assert stored.task_version == 3
    assert stored.result is None
    assert stored.errors == ()
    assert stored.failure_reason is None
    assert stored.rescue_count == 0
    assert stored.cancel_requested is False
    assert stored.created_at == clock.now()
    assert stored.started_at is None
    assert stored.finished_at is None


def test_enqueue_returns_one_result_per_job_in_order(
    store: Store, clock: FakeClock, make_job: Callable[..., NewJob]
) -> None:
    jobs = [make_job(), make_job(run_at=clock.now() + 60), make_job()]

    results = store.enqueue(jobs)

    assert results == [
        EnqueueResult(jobs[0].id, JobState.PENDING, False),
        EnqueueResult(jobs[1].id, JobState.SCHEDULED, False),
        EnqueueResult(jobs[2].id, JobState.PENDING, False),
    ]
    assert [j.state for j in store.get_many([j.id for j in jobs])] == [
        JobState.PENDING,
        JobState.SCHEDULED,
        JobState.PENDING,
    ]


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-3600.0, JobState.PENDING),
        (0.0, JobState.PENDING),
        (0.5, JobState.SCHEDULED),
        (86400.0, JobState.SCHEDULED),
    ],
)
def test_initial_state_follows_run_at(
    store: Store,
    clock: FakeClock,
    make_job: Callable[..., NewJob],
    offset: float,
    expected: JobState,
) -> None:
    job = make_job(run_at=clock.now() + offset)

    assert enqueue_one(store, job).state is expected

    stored = must_get(store, job.id)
    assert stored.state is expected
    assert stored.run_at == clock.now() + offset


def test_empty_batch_is_a_no_op(store: Store) -> None:
    assert store.enqueue([]) == []
    assert count_jobs(store) == 0


def test_explicit_now_is_used_instead_of_the_clock(
    store: Store, clock: FakeClock, make_job: Callable[..., NewJob]
) -> None:
    later = clock.now() + 500.0
    job = make_job(run_at=clock.now() + 100)

    [result] = store.enqueue([job], now=later)

    assert result.state is JobState.PENDING  # run_at is in the past of the given `now`
    stored = must_get(store, job.id)
    assert stored.created_at == later
    assert stored.run_at == clock.now() + 100


PAYLOADS = {
    "empty": b"",
    "nul": b"\x00",
    "all-bytes": bytes(range(256)),
    "nul-runs": b"\x00\x00abc\x00\xff\xfe\x00",
    "one-mib": bytes(range(256)) * (MiB // 256),
    "big-int-text": str(2**200).encode(),
}


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_payload_and_result_bytes_round_trip(
    store: Store, make_job: Callable[..., NewJob], payload: bytes
) -> None:
    job = make_job(payload=payload)
    enqueue_one(store, job)

    assert must_get(store, job.id).payload == payload
    assert store.get_many([job.id])[0].payload == payload
    assert store.search(JobQuery(ids=[job.id])).items[0].payload == payload

    lease = claim_one(store, job.id)
    assert lease.job.payload == payload
    assert store.complete([Completion(lease, payload[::-1])]) == []

    stored = must_get(store, job.id)
    assert stored.payload == payload
    assert stored.result == payload[::-1]
    assert type(stored.payload) is bytes


def test_result_none_stays_none(store: Store, make_job: Callable[..., NewJob]) -> None:
    job_id = add(store)
    lease = claim_one(store, job_id)

    assert store.complete([Completion(lease, None)]) == []

    assert must_get(store, job_id).result is None


def test_batch_of_1000_with_one_unknown_dependency_stores_nothing(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    existing = add(store)
    missing = new_id()
    jobs = [make_job(depends_on=(existing,)) if i % 3 else make_job() for i in range(1000)]
    jobs[637] = make_job(depends_on=(jobs[10].id, missing))

    with pytest.raises(UnknownDependency) as info:
        store.enqueue(jobs)

    assert info.value.job_id == missing
    assert count_jobs(store) == 1
    assert store.get_many([j.id for j in jobs]) == []
    assert must_get(store, existing).state is JobState.PENDING
    # The store still accepts the same batch once it is fixed.
    jobs[637] = make_job(depends_on=(jobs[10].id,))
    assert len(store.enqueue(jobs)) == 1000
    assert count_jobs(store) == 1001


def test_a_connection_the_store_cannot_join_is_refused(
    store: Store, make_job: Callable[..., NewJob]
) -> None:
    """Memory joins no transaction; transactional drivers refuse a foreign object."""
    job = make_job()

    with pytest.raises(ConfigurationError):
        store.enqueue([job], connection=object())

    assert store.get(job.id) is None
    assert count_jobs(store) == 0


def test_store_now_is_the_injected_clock(store: Store, clock: FakeClock) -> None:
    assert store.now() == clock.now()
    clock.advance(12.5)
    assert store.now() == clock.now()


@pytest.mark.parametrize(
    "keys",
    [
        {"idempotency_key": "order-9", "fingerprint": "fp"},
        {"unique_key": "digest", "unique_for": 3600.0},
    ],
    ids=["idempotency", "unique-window"],
)
def test_a_key_whose_job_was_deleted_is_free(
    store: Store, make_job: Callable[..., NewJob], keys: dict[str, object]
) -> None:
    """Deleting a job releases its keys (as prune does): no duplicate of a job that is gone."""
    first = make_job(**keys)
    enqueue_one(store, first)
    assert store.delete([first.id]) == 1
    again = make_job(**keys)

    assert store.enqueue([again]) == [EnqueueResult(again.id, JobState.PENDING, False)]

    assert must_get(store, again.id).state is JobState.PENDING
    assert enqueue_one(store, make_job(**keys)) == EnqueueResult(again.id, JobState.PENDING, True)
