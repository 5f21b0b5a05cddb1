"""Issue 10, defects 4 and 5 on Redis: a job hash that disagrees with its indexes, or that
cannot be decoded, never stops a queue.

Each test writes the corruption with a raw client into a real Redis store, then claims: the
innocent jobs are taken, the bad entry is dropped (index out of step) or quarantined
(``failed``/``corrupt`` with the decode error), nothing else changes, counters stay
non-negative, and reads show the bad job instead of crashing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from conveyor.clock import FakeClock
from conveyor.job import FailureReason, JobState
from conveyor.stores.base import Completion, JobQuery
from conveyor.stores.redis import RedisStore
from conveyor.stores.redis.store import parse_dsn

from .support import add, claim

S = JobState


class Raw:
    """A raw client on the store's keys, to write what no script would."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def job(self, job_id: str) -> str:
        return self.key("job", job_id)

    def counts(self, queue: str = "default") -> dict[str, int]:
        raw = self.client.hgetall(self.key("counts", queue))
        return {k.decode(): int(v) for k, v in raw.items()}

    def pending_ids(self, queue: str = "default") -> list[str]:
        members = self.client.zrange(self.key("q", queue, "pending"), 0, -1)
        return [m.decode()[17:] for m in members]


@pytest.fixture
def rstore(redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore.from_dsn(redis_url, clock=FakeClock())
    store.migrate()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[Raw]:
    url, prefix = parse_dsn(redis_url)
    client = Raw(url, prefix)
    try:
        yield client
    finally:
        client.client.close()


def three(store: RedisStore) -> tuple[str, str, str]:
    """Three pending jobs in ``default``; the first is the one the tests corrupt."""
    bad = add(store, priority=10)  # claimed first when nothing protects the queue
    return bad, add(store), add(store)


def assert_sane(store: RedisStore, raw: Raw) -> None:
    """Every counter non-negative and equal to its state set's size in the queue."""
    for state, count in raw.counts().items():
        assert count >= 0, (state, count)
        members = {m.decode() for m in raw.client.smembers(raw.key("state", state))}
        in_queue = {m.decode() for m in raw.client.smembers(raw.key("queue", "default"))}
        assert count == len(members & in_queue), (state, count)


def assert_quarantined(store: RedisStore, job_id: str, words: str) -> None:
    job = store.get(job_id)
    assert job is not None
    assert job.state is S.FAILED
    assert job.failure_reason == FailureReason.CORRUPT
    assert job.errors and job.errors[-1].type == "CorruptJob"
    assert words in job.errors[-1].message
    assert job_id in [j.id for j in store.search(JobQuery(states=[S.FAILED])).items]
    assert job_id not in [j.id for j in store.search(JobQuery(states=[S.PENDING])).items]


def test_completed_job_left_in_the_pending_set_is_dropped_not_run_again(
    rstore: RedisStore, raw: Raw
) -> None:
    done, b, c = three(rstore)
    [lease] = claim(rstore)
    assert lease.job_id == done
    rstore.complete([Completion(lease)])
    pm = raw.client.hget(raw.job(done), "pm")
    raw.client.zadd(raw.key("q", "default", "pending"), {pm: -10})
    taken = claim(rstore, limit=10)
    assert sorted(x.job_id for x in taken) == sorted([b, c])
    assert claim(rstore, limit=10) == []
    job = rstore.get(done)
    assert job is not None and job.state is S.COMPLETED and job.attempt == 1
    assert done not in raw.pending_ids()
    assert rstore.info().details["repaired index entries"] == "1"
    assert_sane(rstore, raw)


def test_job_with_an_unknown_state_in_the_pending_set_is_quarantined(
    rstore: RedisStore, raw: Raw
) -> None:
    bad, b, c = three(rstore)
    raw.client.hset(raw.job(bad), "state", "exploded")
    raw.client.smove(raw.key("state", "pending"), raw.key("state", "exploded"), bad)
    raw.client.hincrby(raw.key("counts", "default"), "pending", -1)
    raw.client.hincrby(raw.key("counts", "default"), "exploded", 1)
    taken = claim(rstore, limit=10)
    assert sorted(x.job_id for x in taken) == sorted([b, c])
    assert_quarantined(rstore, bad, "exploded")
    assert claim(rstore, limit=10) == []
    assert rstore.info().details["quarantined corrupt jobs"] == "1"
    assert_sane(rstore, raw)


def test_deleted_job_hash_does_not_stall_the_queue(rstore: RedisStore, raw: Raw) -> None:
    bad, b, c = three(rstore)
    raw.client.delete(raw.job(bad))
    taken = claim(rstore, limit=10)
    assert sorted(x.job_id for x in taken) == sorted([b, c])
    assert raw.pending_ids() == []
    assert raw.counts().get("pending", 0) == 0
    assert rstore.get(bad) is None
    assert rstore.info().details["repaired index entries"] == "1"
    assert_sane(rstore, raw)


def test_deleted_job_hash_is_skipped_when_claimed_by_id(rstore: RedisStore, raw: Raw) -> None:
    bad, b, _ = three(rstore)
    raw.client.delete(raw.job(bad))
    taken = claim(rstore, limit=10, job_ids=[bad, b])
    assert [x.job_id for x in taken] == [b]


def test_missing_payload_is_quarantined_and_the_rest_of_the_batch_runs(
    rstore: RedisStore, raw: Raw
) -> None:
    bad, b, c = three(rstore)
    raw.client.hdel(raw.job(bad), "payload")
    taken = claim(rstore, limit=10)
    assert sorted(x.job_id for x in taken) == sorted([b, c])
    assert all(x.job.attempt == 1 and x.job.state is S.PROCESSING for x in taken)
    assert_quarantined(rstore, bad, "payload")
    assert claim(rstore, limit=10) == []
    assert_sane(rstore, raw)


def test_garbage_in_the_errors_list_is_quarantined_after_the_claim(
    rstore: RedisStore, raw: Raw
) -> None:
    bad, b, c = three(rstore)
    raw.client.rpush(raw.key("errors", bad), b"\xffnot an error entry")
    taken = claim(rstore, limit=10)
    assert sorted(x.job_id for x in taken) == sorted([b, c])
    job = rstore.get(bad)
    assert job is not None
    assert job.state is S.FAILED and job.failure_reason == FailureReason.CORRUPT
    assert "error entry" in job.errors[-1].message
    assert job.attempt == 0 and job.started_at is None  # leased by the claim, never run
    assert rstore.info().details["quarantined corrupt jobs"] == "1"
    assert claim(rstore, limit=10) == []
    assert_sane(rstore, raw)


def test_non_numeric_priority_is_quarantined_by_the_claim(rstore: RedisStore, raw: Raw) -> None:
    bad, b, c = three(rstore)
    raw.client.hset(raw.job(bad), "priority", "urgent")
    taken = claim(rstore, limit=10)
    assert sorted(x.job_id for x in taken) == sorted([b, c])
    assert_quarantined(rstore, bad, "priority")
    assert_sane(rstore, raw)


def test_non_numeric_priority_never_strands_a_due_job(rstore: RedisStore, raw: Raw) -> None:
    clock = rstore.clock
    assert isinstance(clock, FakeClock)
    later = clock.now() + 60
    bad = add(rstore, run_at=later)
    good = add(rstore, run_at=later)
    raw.client.hset(raw.job(bad), "priority", "urgent")
    clock.advance(120)
    result = rstore.stage_due()
    assert result.promoted == 1
    assert_quarantined(rstore, bad, "priority")
    assert [x.job_id for x in claim(rstore, limit=10)] == [good]
    assert rstore.stage_due().promoted == 0
    assert_sane(rstore, raw)


def test_non_numeric_priority_never_strands_a_retried_job(rstore: RedisStore, raw: Raw) -> None:
    bad = add(rstore, max_attempts=1)
    [lease] = claim(rstore)
    from conveyor.job import JobError

    rstore.fail(lease, JobError(1, "E", "x"), retry_at=None)
    raw.client.hset(raw.job(bad), "priority", "urgent")
    rstore.retry([bad])
    job = rstore.get(bad)
    assert job is not None and job.state is S.FAILED
    assert job.failure_reason == FailureReason.CORRUPT
    assert_sane(rstore, raw)


def test_reads_show_a_job_with_missing_fields_as_corrupt(rstore: RedisStore, raw: Raw) -> None:
    bad, b, c = three(rstore)
    raw.client.hdel(raw.job(bad), "payload", "created_at")
    raw.client.rpush(raw.key("errors", bad), b"garbage")
    job = rstore.get(bad)
    assert job is not None
    assert job.failure_reason == FailureReason.CORRUPT
    assert job.state is S.PENDING  # the stored state, which its indexes agree with
    assert job.payload == b""
    assert "payload" in job.errors[-1].message
    listed = rstore.search(JobQuery())
    assert sorted(j.id for j in listed.items) == sorted([bad, b, c])


def test_missing_queue_field_is_restored_from_the_index_and_quarantined(
    rstore: RedisStore, raw: Raw
) -> None:
    bad, b, c = three(rstore)
    raw.client.hdel(raw.job(bad), "queue")
    taken = claim(rstore, limit=10)
    assert sorted(x.job_id for x in taken) == sorted([b, c])
    assert_quarantined(rstore, bad, "queue")
    job = rstore.get(bad)
    assert job is not None and job.queue == "default"
    assert_sane(rstore, raw)


def test_stale_due_entry_of_a_completed_job_is_not_run_again(rstore: RedisStore, raw: Raw) -> None:
    done = add(rstore)
    [lease] = claim(rstore)
    rstore.complete([Completion(lease)])
    raw.client.zadd(raw.key("due"), {done: 0})
    assert rstore.stage_due().promoted == 0
    assert claim(rstore, limit=10) == []
    job = rstore.get(done)
    assert job is not None and job.state is S.COMPLETED
    assert raw.client.zscore(raw.key("due"), done) is None
    assert rstore.info().details["repaired index entries"] == "1"
    assert_sane(rstore, raw)


def test_stale_processing_entry_of_a_completed_job_is_not_rescued(
    rstore: RedisStore, raw: Raw
) -> None:
    from conveyor.stores.base import RescueParams

    done = add(rstore)
    [lease] = claim(rstore)
    rstore.complete([Completion(lease)])
    raw.client.zadd(raw.key("processing"), {done: 0})
    result = rstore.rescue_expired(RescueParams())
    assert result.retried == [] and result.failed == []
    job = rstore.get(done)
    assert job is not None and job.state is S.COMPLETED and not job.errors
    assert_sane(rstore, raw)


def test_rescue_quarantines_a_processing_job_with_a_corrupt_field(
    rstore: RedisStore, raw: Raw
) -> None:
    from conveyor.stores.base import RescueParams

    clock = rstore.clock
    assert isinstance(clock, FakeClock)
    bad, good = add(rstore), add(rstore)
    claim(rstore, limit=2, lease_for=5)
    raw.client.hset(raw.job(bad), "max_attempts", "many")
    clock.advance(10)
    result = rstore.rescue_expired(RescueParams())
    assert result.retried == [good]
    assert result.failed == [bad]
    assert_quarantined(rstore, bad, "max_attempts")
    assert_sane(rstore, raw)


def test_cancel_and_delete_of_corrupt_jobs_do_not_fail(rstore: RedisStore, raw: Raw) -> None:
    bad, gone, c = three(rstore)
    raw.client.hset(raw.job(bad), "priority", "urgent")
    raw.client.hdel(raw.job(gone), "queue", "state")
    result = rstore.cancel([bad, c])
    assert result.cancelled == [c]
    assert result.skipped == [bad]
    assert_quarantined(rstore, bad, "priority")
    assert rstore.delete([bad, gone]) == 2
    assert rstore.get(bad) is None and rstore.get(gone) is None
    assert raw.pending_ids() == []
    assert_sane(rstore, raw)


def test_stats_and_reprioritize_survive_a_corrupt_pending_job(rstore: RedisStore, raw: Raw) -> None:
    bad, b, _ = three(rstore)
    raw.client.hset(raw.job(bad), "run_at", "soon")
    [entry] = rstore.stats()
    assert entry.counts["pending"] == 3
    assert rstore.reprioritize([bad, b], 7) == [b]
    assert_sane(rstore, raw)


def test_enqueue_depending_on_a_job_in_an_unknown_state_does_not_fail(
    rstore: RedisStore, raw: Raw
) -> None:
    bad = add(rstore)
    raw.client.hset(raw.job(bad), "state", "exploded")
    child = add(rstore, depends_on=(bad,))
    job = rstore.get(child)
    assert job is not None and job.state in (S.FAILED, S.CANCELLED)
    assert job.failure_reason == FailureReason.DEPENDENCY_FAILED


def test_a_corrupt_blocked_dependent_is_quarantined_when_its_parent_completes(
    rstore: RedisStore, raw: Raw
) -> None:
    parent = add(rstore)
    child = add(rstore, depends_on=(parent,))
    raw.client.hdel(raw.job(child), "queue")
    [lease] = claim(rstore)
    assert rstore.complete([Completion(lease)]) == []
    assert_quarantined(rstore, child, "queue")
    assert rstore.get(parent).state is S.COMPLETED  # type: ignore[union-attr]
    assert_sane(rstore, raw)


def test_pending_job_that_lost_its_member_field_is_still_claimed(
    rstore: RedisStore, raw: Raw
) -> None:
    job_id = add(rstore)
    raw.client.hdel(raw.job(job_id), "pm")
    [lease] = claim(rstore, limit=10)
    assert lease.job_id == job_id
    assert raw.pending_ids() == []
    assert_sane(rstore, raw)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("id", b"someone-else", "field id does not match"),
        ("task", b"\xff\xfe", "field task is malformed"),
        ("timeout", b"soon", "field timeout is malformed"),
    ],
)
def test_other_undecodable_fields_are_quarantined(
    rstore: RedisStore, raw: Raw, field: str, value: bytes, words: str
) -> None:
    bad, b, c = three(rstore)
    raw.client.hset(raw.job(bad), field, value)
    assert rstore.get(bad).failure_reason == FailureReason.CORRUPT  # type: ignore[union-attr]
    taken = claim(rstore, limit=10)
    assert sorted(x.job_id for x in taken) == sorted([b, c])
    assert_quarantined(rstore, bad, words)
    assert claim(rstore, limit=10) == []
    assert_sane(rstore, raw)


def test_prune_never_deletes_a_live_job_through_a_stale_finished_entry(
    rstore: RedisStore, raw: Raw
) -> None:
    from conveyor.stores.base import PruneParams

    live, gone = add(rstore), add(rstore)
    raw.client.zadd(raw.key("finished", "completed"), {live: 0, gone: 0})
    raw.client.delete(raw.job(gone))
    result = rstore.prune(PruneParams(completed_after=0.0))
    assert result.jobs == 0
    job = rstore.get(live)
    assert job is not None and job.state is S.PENDING
    assert raw.client.zcard(raw.key("finished", "completed")) == 0
    assert [x.job_id for x in claim(rstore, limit=10)] == [live]
    assert_sane(rstore, raw)
