"""Enqueue on a cursor that is already inside a transaction.

Used on the store's own connections and on a caller's connection (transactional
enqueue). Every decision is taken before the first write, in the order the reference
store takes them; a refused batch therefore raises before anything is inserted.

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

from conveyor.errors import (
    IdempotencyConflict,
    InvalidOption,
    UnknownDependency,
)
from conveyor.job import (
    ACTIVE_STATES,
    EnqueueResult,
    FailureReason,
    JobState,
    NewJob,
)
from conveyor.stores.enqueue_plan import (
    ENDED_BADLY,
    EnqueuePlan,
    dependency_order,
    has_keys,
    initial_state,
)
from conveyor.stores.postgres.rows import COLUMN_LIST, encode_tags, state_of
from conveyor.stores.sql_columns import JOB_COLUMNS

S = JobState

INSERT_JOB: Final = (
    f"INSERT INTO jobs ({COLUMN_LIST}) VALUES ({', '.join(['%s'] * len(JOB_COLUMNS))})"
)
_LOCK_KEYS = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM unnest(%s::text[]) AS k ORDER BY hashtextextended(k, 0)"
)
_STATES_OF = "SELECT id, state FROM jobs WHERE id = ANY(%s::text[]) ORDER BY id FOR SHARE"
_UNIQUE_HOLD = """
SELECT u.job_id, u.expires_at, j.state
FROM unique_keys AS u LEFT JOIN jobs AS j ON j.id = u.job_id WHERE u.key = %s
"""
_IDEMPOTENCY_HOLD = """
SELECT k.job_id, k.fingerprint, k.expires_at, j.state
FROM idempotency_keys AS k LEFT JOIN jobs AS j ON j.id = k.job_id WHERE k.key = %s
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
_ACTIVE_VALUES: Final = frozenset(s.value for s in ACTIVE_STATES)


def enqueue_batch(cur: Cursor[Any], jobs: Sequence[NewJob], now: float) -> list[EnqueueResult]:
    """Plan then insert ``jobs``; the caller owns the transaction (or savepoint).

    ``check_no_cycle`` must have been called on the batch already.
    """
    plan = EnqueuePlan(jobs)
    if len(plan.batch_ids) != len(jobs):
        raise InvalidOption("id", "a job with this id already exists (ids must be unique)")
    keys = sorted(
        {f"conveyor:u:{job.unique_key}" for job in jobs if job.unique_key}
        | {f"conveyor:i:{job.idempotency_key}" for job in jobs if job.idempotency_key}
    )
    if keys:
        cur.execute(_LOCK_KEYS, (keys,))
    external = {d for job in jobs for d in job.depends_on if d not in plan.batch_ids}
    if external:
        for job_id, state in cur.execute(_STATES_OF, (sorted(external),)).fetchall():
            plan.known[job_id] = state_of(state)
    for index, job in enumerate(jobs):
        for dep in job.depends_on:
            if dep not in plan.batch_ids and dep not in plan.known:
                raise UnknownDependency(dep)
        holder = _duplicate_of(cur, job, now, plan) if has_keys(job) else None
        if holder is not None:
            plan.duplicate_of[index] = holder
            plan.duplicate_ids.setdefault(job.id, holder)
            continue
        if job.unique_key:
            plan.seen_unique[job.unique_key] = job.id
        if job.idempotency_key:
            plan.seen_idempotency[job.idempotency_key] = (job.id, job.fingerprint)
    fresh = [job for i, job in enumerate(jobs) if i not in plan.duplicate_of]
    for job in dependency_order(fresh, plan):
        plan.planned[job.id] = initial_state(job, now, plan)
    _insert(cur, fresh, now, plan)
    results: list[EnqueueResult] = []
    for index, job in enumerate(jobs):
        holder = plan.duplicate_of.get(index)
        if holder is None:
            results.append(EnqueueResult(job.id, plan.planned[job.id]))
        else:
            results.append(EnqueueResult(holder, plan.state(holder) or S.PENDING, True))
    return results


def _duplicate_of(cur: Cursor[Any], job: NewJob, now: float, plan: EnqueuePlan) -> str | None:
    """The id that ``job`` duplicates (idempotency key first, then unique key), or None."""
    key = job.idempotency_key
    if key:
        if key in plan.seen_idempotency:
            first, fingerprint = plan.seen_idempotency[key]
            if fingerprint != job.fingerprint:
                raise IdempotencyConflict(key, first)
            return first
        row = cur.execute(_IDEMPOTENCY_HOLD, (key,)).fetchone()
        if row is not None and row[2] > now:
            if row[1] != job.fingerprint:
                raise IdempotencyConflict(key, row[0])
            plan.known[row[0]] = state_of(row[3]) if row[3] is not None else None
            return str(row[0])
    key = job.unique_key
    if key:
        if key in plan.seen_unique:
            return plan.seen_unique[key]
        row = cur.execute(_UNIQUE_HOLD, (key,)).fetchone()
        if row is not None:
            holder_id, expires_at, state = row
            held = expires_at > now if expires_at is not None else state in _ACTIVE_VALUES
            if held:
                plan.known[holder_id] = state_of(state) if state is not None else None
                return str(holder_id)
    return None


def _insert(cur: Cursor[Any], fresh: list[NewJob], now: float, plan: EnqueuePlan) -> None:
    rows: list[tuple[Any, ...]] = []
    edges: list[tuple[str, str]] = []
    unique: list[tuple[str, str, float | None]] = []
    idempotency: list[tuple[str, str, str, float]] = []
    for job in fresh:
        state = plan.planned[job.id]
        blocked_by = 0
        if state is S.BLOCKED:
            open_deps = [
                d
                for d in dict.fromkeys(map(plan.resolve, job.depends_on))
                if plan.state(d) is not S.COMPLETED
            ]
            blocked_by = len(open_deps)
            edges.extend((job.id, d) for d in open_deps)
        reason = FailureReason.DEPENDENCY_FAILED.value if state in ENDED_BADLY else None
        rows.append(_row(job, state, blocked_by, reason, now))
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


def _row(
    job: NewJob, state: JobState, blocked_by: int, reason: str | None, now: float
) -> tuple[Any, ...]:
    """Values in :data:`~conveyor.stores.postgres.rows.JOB_COLUMNS` order."""
    return (
        job.id,
        job.queue,
        job.task,
        job.payload,
        state.value,
        job.priority,
        0,
        job.max_attempts,
        now if job.run_at is None else job.run_at,
        job.timeout,
        None,
        None,
        None,
        list(job.depends_on) or None,
        blocked_by,
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
