"""Corrupt rows (issue 10, defect 5): one stored job that cannot be decoded never stops a
claim, a listing or a count.

Each case writes the damage straight into a real store (raw SQL, or an edit of the job's
file), as a broken migration, a manual fix-up or a disk error would. A claim must lease
the innocent jobs and quarantine the bad one (``failed``, reason ``corrupt``, the decode
error recorded); reads must show it as corrupt instead of raising.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conveyor.clock import FakeClock
from conveyor.job import FailureReason, JobState
from conveyor.stores.base import ClaimParams, JobQuery, Store
from conveyor.stores.corrupt import CORRUPT_ERROR_TYPE

from .support import STORE_FACTORIES, new_job, open_test_store

Damage = Callable[[str, str, Any], None]
"""damage(job id, field, raw stored value): overwrite one field of a stored job."""


@dataclass
class Damaged:
    """A real store of one driver, and a way to write any value into a job's field."""

    driver: str
    store: Store
    damage: Damage


def _sqlite_damage(store: Store) -> Damage:
    path = store.path  # type: ignore[attr-defined]

    def damage(job_id: str, field: str, value: Any) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute(f"UPDATE jobs SET {field} = ? WHERE id = ?", (value, job_id))
        conn.close()

    return damage


def _postgres_damage(dsn: str) -> Damage:
    import psycopg

    base, _, schema = dsn.partition("?schema=")

    def damage(job_id: str, field: str, value: Any) -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            cast = "::jsonb" if field == "errors" else ""
            conn.execute(f"UPDATE jobs SET {field} = %s{cast} WHERE id = %s", (value, job_id))

    return damage


def _file_damage(root: Path) -> Damage:
    def damage(job_id: str, field: str, value: Any) -> None:
        path = root / "jobs" / f"{job_id}.json"
        if field == "*":
            path.write_bytes(value)
            return
        record = json.loads(path.read_bytes())
        record[field] = json.loads(value) if field == "errors" else value
        path.write_text(json.dumps(record))

    return damage


CORRUPTIBLE = [name for name in ("sqlite", "postgresql", "file") if name in STORE_FACTORIES]


@pytest.fixture(params=CORRUPTIBLE)
def damaged(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Damaged]:
    """A fresh store of each driver a corrupt row can be written into."""
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgresql" else None
    store = open_test_store(request.param, tmp_path / "store", clock, dsn)
    if request.param == "sqlite":
        damage = _sqlite_damage(store)
    elif request.param == "postgresql":
        assert dsn is not None
        damage = _postgres_damage(dsn)
    else:
        damage = _file_damage(tmp_path / "store" / "jobs")
    try:
        yield Damaged(request.param, store, damage)
    finally:
        store.close()


# (field, value per driver; None where the driver's schema refuses such a value)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "errors-not-json": (
        "errors",
        {"sqlite": "not json {", "postgresql": '{"not": "a list"}', "file": '"not a list"'},
    ),
    "errors-garbage-items": (
        "errors",
        {"sqlite": '[1, "x"]', "postgresql": '[1, "x"]', "file": '[1, "x"]'},
    ),
    "unknown-dependency-policy": (
        "on_dependency_failure",
        {"sqlite": "explode", "postgresql": "explode", "file": "explode"},
    ),
    "text-priority": ("priority", {"sqlite": "high", "postgresql": None, "file": "high"}),
}


def _case(damaged: Damaged, case: str) -> tuple[str, Any]:
    field, values = CASES[case]
    value = values[damaged.driver]
    if value is None:
        pytest.skip(f"the {damaged.driver} schema refuses a {case} value")
    return field, value


def _enqueue(store: Store, count: int, *, priority: int = 0) -> list[str]:
    return [r.id for r in store.enqueue([new_job(priority=priority) for _ in range(count)])]


@pytest.mark.parametrize("case", list(CASES))
def test_claim_quarantines_the_corrupt_job_and_leases_the_rest(damaged: Damaged, case: str) -> None:
    field, value = _case(damaged, case)
    store = damaged.store
    innocent = _enqueue(store, 4)
    (bad,) = _enqueue(store, 1, priority=9)  # first in claim order
    damaged.damage(bad, field, value)

    leases = store.claim(ClaimParams(queues=["default"], worker_id="w", limit=10))

    assert sorted(lease.job.id for lease in leases) == sorted(innocent)
    job = store.get(bad)
    assert job is not None
    assert job.state is JobState.FAILED
    assert job.failure_reason == FailureReason.CORRUPT
    assert job.lease_token is None
    assert job.errors[-1].type == CORRUPT_ERROR_TYPE
    assert field in job.errors[-1].message
    assert store.claim(ClaimParams(queues=["default"], worker_id="w", limit=10)) == []
    dlq = store.search(JobQuery(states=[JobState.FAILED]))
    assert [j.id for j in dlq.items] == [bad]


def test_claim_by_id_quarantines_too(damaged: Damaged) -> None:
    field, value = _case(damaged, "unknown-dependency-policy")
    good, bad = _enqueue(damaged.store, 2)
    damaged.damage(bad, field, value)
    leases = damaged.store.claim(
        ClaimParams(queues=["default"], worker_id="w", limit=2, job_ids=[bad, good])
    )
    assert [lease.job.id for lease in leases] == [good]
    job = damaged.store.get(bad)
    assert job is not None and job.failure_reason == FailureReason.CORRUPT


@pytest.mark.parametrize("case", list(CASES))
def test_reads_show_an_unclaimed_corrupt_job_instead_of_crashing(
    damaged: Damaged, case: str
) -> None:
    field, value = _case(damaged, case)
    store = damaged.store
    good, bad = _enqueue(store, 2)
    damaged.damage(bad, field, value)

    job = store.get(bad)
    assert job is not None and job.id == bad
    assert job.failure_reason == FailureReason.CORRUPT
    assert job.state is JobState.PENDING  # where it is; the next claim quarantines it
    assert field in job.errors[-1].message
    assert [j.id for j in store.get_many([good, bad])] == [good, bad]
    page = store.search(JobQuery())
    assert sorted(j.id for j in page.items) == sorted([good, bad])
    assert store.search(JobQuery(text="zzz-no-match")).items == []
    (counts,) = store.stats()
    assert counts.counts["pending"] == 2


def test_failure_and_rescue_still_record_on_a_damaged_error_list(
    damaged: Damaged, clock: FakeClock
) -> None:
    """A running job whose error list got damaged can still be failed by the rescuer."""
    if damaged.driver == "file":
        pytest.skip("the file store rewrites the whole job file on each change")
    from conveyor.stores.base import RescueParams

    store = damaged.store
    (job_id,) = _enqueue(store, 1)
    (_lease,) = store.claim(ClaimParams(queues=["default"], worker_id="w", lease_for=5.0))
    damaged.damage(job_id, "errors", CASES["errors-not-json"][1][damaged.driver])
    clock.advance(10.0)
    result = store.rescue_expired(RescueParams(limit=10, max_rescues=3))
    assert job_id in (*result.retried, *result.failed)
    job = store.get(job_id)
    assert job is not None and job.errors[-1].type == "LeaseExpired"


# --- a state no code knows (SQLite and File; PostgreSQL's CHECK refuses one) --------------
@pytest.fixture
def unknown_state(damaged: Damaged) -> tuple[Damaged, str, str]:
    if damaged.driver == "postgresql":
        pytest.skip("PostgreSQL refuses an unknown state (CHECK constraint jobs_state_known)")
    good, bad = _enqueue(damaged.store, 2)
    damaged.damage(bad, "state", "exploded")
    return damaged, good, bad


def test_unknown_state_reads_as_failed_corrupt(unknown_state: tuple[Damaged, str, str]) -> None:
    damaged, good, bad = unknown_state
    store = damaged.store
    job = store.get(bad)
    assert job is not None
    assert job.state is JobState.FAILED and job.failure_reason == FailureReason.CORRUPT
    assert "state" in job.errors[-1].message and "exploded" in job.errors[-1].message
    listed = store.search(JobQuery(states=[JobState.FAILED]))
    assert [j.id for j in listed.items] == [bad] and listed.total == 1
    assert sorted(j.id for j in store.search(JobQuery()).items) == sorted([good, bad])
    leases = store.claim(ClaimParams(queues=["default"], worker_id="w", limit=10))
    assert [lease.job.id for lease in leases] == [good]
    (counts,) = store.stats()
    assert counts.counts.get("failed") == 1 and counts.counts.get("processing") == 1
    assert "exploded" not in counts.counts and not counts.counts.get("pending")
    job = store.get(bad)
    assert job is not None and job.state is JobState.FAILED


def test_unknown_state_job_can_be_retried_or_cancelled_safely(
    unknown_state: tuple[Damaged, str, str],
) -> None:
    damaged, _good, bad = unknown_state
    store = damaged.store
    result = store.cancel([bad])
    assert result.skipped == [bad]
    assert store.retry([bad]) == [bad]
    job = store.get(bad)
    assert job is not None and job.state is JobState.PENDING and job.failure_reason is None


def test_a_job_file_that_is_not_json_is_quarantined_under_its_marker_queue(
    damaged: Damaged,
) -> None:
    if damaged.driver != "file":
        pytest.skip("only the file store keeps a job as a whole document")
    store = damaged.store
    good, bad = _enqueue(store, 2)
    damaged.damage(bad, "*", b"\x00\xffnot json at all")
    job = store.get(bad)
    assert job is not None and job.id == bad and job.failure_reason == FailureReason.CORRUPT
    leases = store.claim(ClaimParams(queues=["default"], worker_id="w", limit=10))
    assert [lease.job.id for lease in leases] == [good]
    job = store.get(bad)
    assert job is not None
    assert (job.state, job.queue, job.failure_reason) == (JobState.FAILED, "default", "corrupt")
    assert [j.id for j in store.search(JobQuery(states=[JobState.FAILED])).items] == [bad]


def test_dependents_of_a_quarantined_job_get_their_policy(damaged: Damaged) -> None:
    store = damaged.store
    parent = new_job()
    child = new_job(depends_on=(parent.id,))
    store.enqueue([parent, child])
    field, value = _case(damaged, "errors-not-json")
    damaged.damage(parent.id, field, value)
    assert store.claim(ClaimParams(queues=["default"], worker_id="w", limit=10)) == []
    job = store.get(child.id)
    assert job is not None
    assert (job.state, job.failure_reason) == (JobState.FAILED, "dependency_failed")
