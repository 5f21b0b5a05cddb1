"""Enqueue on a cursor that is already inside a transaction (or a savepoint).

Used on the store's own connections and on a caller's connection (transactional
enqueue), so it uses plain SQL only (no functions registered by a store). Every decision
is the shared planner's (:mod:`conveyor.stores.enqueue_plan`), taken before the first
write; a refused batch therefore raises before anything is inserted.

Concurrency where several connections write at once (PostgreSQL, READ COMMITTED): the
batch's unique and idempotency keys are locked first (:meth:`Dialect.lock_keys`, sorted
so two batches cannot deadlock), so the second of two batches with one key sees the
first's hold; dependencies are read under the dialect's ``share_lock``, so one cannot
complete between our read of its state and the commit of our edge rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from conveyor.stores.sql.dialect import Cursor
from conveyor.stores.sql.rows import state_of
from conveyor.stores.sql.statements import Statements


def enqueue_batch(
    cur: Cursor, sql: Statements, jobs: Sequence[NewJob], now: float
) -> list[EnqueueResult]:
    """Lock the batch's keys, read what the planner needs, plan, then insert."""
    reads = reads_for(jobs)
    plan = plan_enqueue(jobs, now, _read(cur, sql, reads) if reads else Stored())
    _insert(cur, sql, plan, now)
    return plan.results


def _read(cur: Cursor, sql: Statements, reads: Reads) -> Stored:
    """Dependency states and key holds, three queries at most (after the key locks)."""
    d = sql.dialect
    keys = sorted(
        [f"conveyor:u:{key}" for key in reads.unique_keys]
        + [f"conveyor:i:{key}" for key in reads.idempotency_keys]
    )
    if keys:
        d.lock_keys(cur, keys)
    states = {}
    if reads.job_ids:
        rows = cur.execute(sql.states_of, (d.encode_ids(reads.job_ids),)).fetchall()
        states = {job_id: state_of(state) for job_id, state in rows}
    unique = {}
    if reads.unique_keys:
        rows = cur.execute(sql.unique_holds, (d.encode_ids(reads.unique_keys),)).fetchall()
        unique = {key: _hold(job_id, expires, state) for key, job_id, expires, state in rows}
    idempotency = {}
    if reads.idempotency_keys:
        params = (d.encode_ids(reads.idempotency_keys),)
        rows = cur.execute(sql.idempotency_holds, params).fetchall()
        idempotency = {
            key: _hold(job_id, expires, state, fingerprint)
            for key, job_id, expires, state, fingerprint in rows
        }
    return Stored(states, unique, idempotency)


def _hold(
    job_id: str, expires_at: float | None, state: str | None, fingerprint: str = ""
) -> KeyHold:
    return KeyHold(job_id, expires_at, None if state is None else state_of(state), fingerprint)


def _insert(cur: Cursor, sql: Statements, plan: EnqueuePlan, now: float) -> None:
    d = sql.dialect
    inline_max = d.inline_payload_max
    rows: list[tuple[Any, ...]] = []
    large: list[tuple[str, bytes]] = []
    edges: list[tuple[str, str]] = []
    unique: list[tuple[str, str, float | None]] = []
    idempotency: list[tuple[str, str, str, float]] = []
    for planned in plan.jobs:
        job = planned.job
        edges.extend((job.id, dep) for dep in planned.open_deps)
        inline = inline_max is None or len(job.payload) <= inline_max
        rows.append(_row(sql, planned, now, inline))
        if not inline:
            large.append((job.id, job.payload))
        if job.unique_key:
            expires = None if job.unique_for is None else now + job.unique_for
            unique.append((job.unique_key, job.id, expires))
        if job.idempotency_key:
            idempotency.append(
                (job.idempotency_key, job.id, job.fingerprint, now + job.idempotency_for)
            )
    if not rows:
        return
    _insert_jobs(cur, sql, rows)
    if large:
        cur.executemany(sql.put_payload, large)
    if edges:
        cur.executemany(sql.put_dependency, edges)
        depended_on = sorted({dep for _, dep in edges})
        cur.execute(sql.mark_depended_on, (d.encode_ids(depended_on),))
    if unique:
        cur.executemany(sql.put_unique, unique)
    if idempotency:
        cur.executemany(sql.put_idempotency, idempotency)


def _insert_jobs(cur: Cursor, sql: Statements, rows: list[tuple[Any, ...]]) -> None:
    """Insert the rows; an id that exists already is refused with a clear error."""
    d = sql.dialect
    if d.precheck_ids:
        ids = d.encode_ids([row[0] for row in rows])
        existing = cur.execute(sql.existing_id, (ids,)).fetchone()
        if existing is not None:
            raise InvalidOption(
                "id", f"a job with id {existing[0]} already exists (ids must be unique)"
            )
    try:
        cur.executemany(sql.insert_job, rows)
    except d.integrity_error as exc:
        raise InvalidOption("id", f"a job with one of these ids already exists ({exc})") from exc


def _row(sql: Statements, planned: PlannedJob, now: float, inline: bool) -> tuple[Any, ...]:
    """Values in :data:`~conveyor.stores.sql_columns.JOB_COLUMNS` order."""
    d = sql.dialect
    job, reason = planned.job, planned.failure_reason
    return (
        job.id,
        job.queue,
        job.task,
        job.payload if inline else b"",
        planned.state.value,
        job.priority,
        0,
        job.max_attempts,
        now if job.run_at is None else job.run_at,
        job.timeout,
        None,
        None,
        None,
        d.encode_ids(planned.depends_on),
        len(planned.open_deps),
        job.on_dependency_failure.value,
        job.parent_id,
        d.encode_tags(_checked_tags(job.tags)),
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


def _checked_tags(tags: Sequence[str]) -> Sequence[str]:
    """Refuse a comma in a tag, as every driver does, so a job moves between stores
    unchanged (SQLite stores tags comma-separated)."""
    for tag in tags:
        if "," in tag:
            raise InvalidOption("tags", f"{tag!r} contains a comma")
    return tags
