"""Enqueue on a cursor that is already inside a transaction.

Used on the store's own connections and on a caller's connection (transactional
enqueue). Every decision is the shared planner's (:mod:`conveyor.stores.enqueue_plan`),
taken before the first write; a refused batch therefore raises before anything is inserted.

Concurrency (READ COMMITTED): the unique and idempotency keys of the batch are locked
with transaction-scoped advisory locks (sorted, so two batches cannot deadlock) before
they are looked up, so two connections enqueuing the same key serialise and the second
sees the first's hold; the keys' primary keys back this up. Dependencies are read
``FOR SHARE``, so a dependency cannot complete (and release its dependents) between
our read of its state and the commit of our edge rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg
from psycopg import Cursor

from conveyor.errors import InvalidOption
from conveyor.job import EnqueueResult, NewJob
from conveyor.stores.enqueue_plan import (
    EnqueuePlan,
    KeyHold,
    PlannedJob,
    Reads,
    Stored,
    plan_enqueue,
    reads_for,
)
from conveyor.stores.postgres.rows import COLUMN_LIST, encode_tags, state_of
from conveyor.stores.sql_columns import JOB_COLUMNS

INSERT_JOB: Final = (
    f"INSERT INTO jobs ({COLUMN_LIST}) VALUES ({', '.join(['%s'] * len(JOB_COLUMNS))})"
)
_LOCK_KEYS = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM unnest(%s::text[]) AS k ORDER BY hashtextextended(k, 0)"
)
_STATES_OF = "SELECT id, state FROM jobs WHERE id = ANY(%s::text[]) ORDER BY id FOR SHARE"
_UNIQUE_HOLDS = """
SELECT u.key, u.job_id, u.expires_at, j.state
FROM unique_keys AS u LEFT JOIN jobs AS j ON j.id = u.job_id WHERE u.key = ANY(%s::text[])
"""
_IDEMPOTENCY_HOLDS = """
SELECT k.key, k.job_id, k.expires_at, j.state, k.fingerprint
FROM idempotency_keys AS k LEFT JOIN jobs AS j ON j.id = k.job_id WHERE k.key = ANY(%s::text[])
"""
_PUT_UNIQUE = """
INSERT INTO unique_keys (key, job_id, expires_at) VALUES (%s, %s, %s)
ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at
"""
_PUT_IDEMPOTENCY = """
INSERT INTO idempotency_keys (key, job_id, fingerprint, expires_at) VALUES (%s, %s, %s, %s)
ON CONFLICT (key) DO UPDATE SET
    job_id = excluded.job_id, fingerprint = excluded.fingerprint, expires_at = excluded.expires_at
"""
_PUT_DEPENDENCY = (
    "INSERT INTO job_dependencies (job_id, depends_on) VALUES (%s, %s) ON CONFLICT DO NOTHING"
)
_MARK_DEPENDED_ON = (
    "UPDATE jobs SET has_dependents = true WHERE id = ANY(%s::text[]) AND NOT has_dependents"
)


def enqueue_batch(cur: Cursor[Any], jobs: Sequence[NewJob], now: float) -> list[EnqueueResult]:
    """Lock the batch's keys, read what the planner needs, plan, then insert.

    The caller owns the transaction (or savepoint).
    """
    reads = reads_for(jobs)
    plan = plan_enqueue(jobs, now, _read(cur, reads) if reads else Stored())
    _insert(cur, plan, now)
    return plan.results


def _read(cur: Cursor[Any], reads: Reads) -> Stored:
    """Lock the keys (sorted: no deadlock), then read dependency states and key holds."""
    keys = sorted(
        [f"conveyor:u:{key}" for key in reads.unique_keys]
        + [f"conveyor:i:{key}" for key in reads.idempotency_keys]
    )
    if keys:
        cur.execute(_LOCK_KEYS, (keys,))
    states = {}
    if reads.job_ids:
        rows = cur.execute(_STATES_OF, (list(reads.job_ids),)).fetchall()
        states = {job_id: state_of(state) for job_id, state in rows}
    unique = {}
    if reads.unique_keys:
        rows = cur.execute(_UNIQUE_HOLDS, (list(reads.unique_keys),)).fetchall()
        unique = {key: _hold(job_id, expires, state) for key, job_id, expires, state in rows}
    idempotency = {}
    if reads.idempotency_keys:
        rows = cur.execute(_IDEMPOTENCY_HOLDS, (list(reads.idempotency_keys),)).fetchall()
        idempotency = {
            key: _hold(job_id, expires, state, fingerprint)
            for key, job_id, expires, state, fingerprint in rows
        }
    return Stored(states, unique, idempotency)


def _hold(
    job_id: str, expires_at: float | None, state: str | None, fingerprint: str = ""
) -> KeyHold:
    return KeyHold(job_id, expires_at, None if state is None else state_of(state), fingerprint)


def _insert(cur: Cursor[Any], plan: EnqueuePlan, now: float) -> None:
    rows: list[tuple[Any, ...]] = []
    edges: list[tuple[str, str]] = []
    unique: list[tuple[str, str, float | None]] = []
    idempotency: list[tuple[str, str, str, float]] = []
    for planned in plan.jobs:
        job = planned.job
        edges.extend((job.id, d) for d in planned.open_deps)
        rows.append(_row(planned, now))
        if job.unique_key:
            expires = None if job.unique_for is None else now + job.unique_for
            unique.append((job.unique_key, job.id, expires))
        if job.idempotency_key:
            idempotency.append(
                (job.idempotency_key, job.id, job.fingerprint, now + job.idempotency_for)
            )
    if not rows:
        return
    existing = cur.execute(
        "SELECT id FROM jobs WHERE id = ANY(%s::text[]) LIMIT 1", ([r[0] for r in rows],)
    ).fetchone()
    if existing is not None:
        raise InvalidOption(
            "id", f"a job with id {existing[0]} already exists (ids must be unique)"
        )
    try:
        cur.executemany(INSERT_JOB, rows)
    except psycopg.errors.UniqueViolation as exc:
        raise InvalidOption("id", f"a job with one of these ids already exists ({exc})") from exc
    if edges:
        cur.executemany(_PUT_DEPENDENCY, edges)
        cur.execute(_MARK_DEPENDED_ON, (sorted({d for _, d in edges}),))
    if unique:
        cur.executemany(_PUT_UNIQUE, unique)
    if idempotency:
        cur.executemany(_PUT_IDEMPOTENCY, idempotency)


def _row(planned: PlannedJob, now: float) -> tuple[Any, ...]:
    """Values in :data:`~conveyor.stores.postgres.rows.JOB_COLUMNS` order."""
    job, reason = planned.job, planned.failure_reason
    return (
        job.id,
        job.queue,
        job.task,
        job.payload,
        planned.state.value,
        job.priority,
        0,
        job.max_attempts,
        now if job.run_at is None else job.run_at,
        job.timeout,
        None,
        None,
        None,
        list(planned.depends_on) or None,
        len(planned.open_deps),
        job.on_dependency_failure.value,
        job.parent_id,
        encode_tags(job.tags),
        job.unique_key,
        job.idempotency_key,
        job.task_version,
        None,
        None,
        reason,
        0,
        False,
        now,
        None,
        now if reason else None,
        None,
    )
