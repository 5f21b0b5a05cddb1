"""Enqueue on a cursor that is already inside a write transaction.

Used on the store's own connection and on a caller's connection (transactional
enqueue), so it uses plain SQL only (no functions registered by the store). Every
decision is the shared planner's (:mod:`conveyor.stores.enqueue_plan`), taken before
the first write; a refused batch therefore raises before anything is inserted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from conveyor.errors import InvalidOption
from conveyor.job import EnqueueResult, JobState, NewJob
from conveyor.stores.enqueue_plan import (
    EnqueuePlan,
    KeyHold,
    PlannedJob,
    Reads,
    Stored,
    plan_enqueue,
    reads_for,
)
from conveyor.stores.sql_columns import JOB_COLUMNS
from conveyor.stores.sqlite.rows import (
    COLUMN_LIST,
    INLINE_PAYLOAD_MAX,
    encode_ids,
    encode_tags,
    state_of,
)

S = JobState

_PUT_PAYLOAD: Final = "INSERT INTO job_payloads (job_id, payload) VALUES (?, ?)"
INSERT_JOB: Final = f"INSERT INTO jobs ({COLUMN_LIST}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})"
_STATES_OF = "SELECT id, state FROM jobs WHERE id IN (SELECT value FROM json_each(?))"
_UNIQUE_HOLDS = """
SELECT u.key, u.job_id, u.expires_at, j.state
FROM unique_keys AS u LEFT JOIN jobs AS j ON j.id = u.job_id
WHERE u.key IN (SELECT value FROM json_each(?))
"""
_IDEMPOTENCY_HOLDS = """
SELECT k.key, k.job_id, k.expires_at, j.state, k.fingerprint
FROM idempotency_keys AS k LEFT JOIN jobs AS j ON j.id = k.job_id
WHERE k.key IN (SELECT value FROM json_each(?))
"""
_PUT_UNIQUE = "INSERT OR REPLACE INTO unique_keys (key, job_id, expires_at) VALUES (?, ?, ?)"
_PUT_IDEMPOTENCY = (
    "INSERT OR REPLACE INTO idempotency_keys (key, job_id, fingerprint, expires_at) "
    "VALUES (?, ?, ?, ?)"
)
_PUT_DEPENDENCY = "INSERT OR IGNORE INTO job_dependencies (job_id, depends_on) VALUES (?, ?)"
_MARK_DEPENDED_ON = "UPDATE jobs SET has_dependents = 1 WHERE id = ? AND has_dependents = 0"


def enqueue_batch(cur: sqlite3.Cursor, jobs: Sequence[NewJob], now: float) -> list[EnqueueResult]:
    """Read what the planner needs, plan, then insert; the caller owns the transaction."""
    reads = reads_for(jobs)
    plan = plan_enqueue(jobs, now, _read(cur, reads) if reads else Stored())
    _insert(cur, plan, now)
    return plan.results


def _read(cur: sqlite3.Cursor, reads: Reads) -> Stored:
    """Stored dependency states and key holds, three queries at most."""
    states = {}
    if reads.job_ids:
        rows = cur.execute(_STATES_OF, (encode_ids(reads.job_ids),))
        states = {job_id: state_of(state) for job_id, state in rows}
    unique = {}
    if reads.unique_keys:
        rows = cur.execute(_UNIQUE_HOLDS, (encode_ids(reads.unique_keys),))
        unique = {key: _hold(job_id, expires, state) for key, job_id, expires, state in rows}
    idempotency = {}
    if reads.idempotency_keys:
        rows = cur.execute(_IDEMPOTENCY_HOLDS, (encode_ids(reads.idempotency_keys),))
        idempotency = {
            key: _hold(job_id, expires, state, fingerprint)
            for key, job_id, expires, state, fingerprint in rows
        }
    return Stored(states, unique, idempotency)


def _hold(
    job_id: str, expires_at: float | None, state: str | None, fingerprint: str = ""
) -> KeyHold:
    return KeyHold(job_id, expires_at, None if state is None else state_of(state), fingerprint)


def _insert(cur: sqlite3.Cursor, plan: EnqueuePlan, now: float) -> None:
    rows: list[tuple[Any, ...]] = []
    large: list[tuple[str, bytes]] = []
    edges: list[tuple[str, str]] = []
    unique: list[tuple[str, str, float | None]] = []
    idempotency: list[tuple[str, str, str, float]] = []
    for planned in plan.jobs:
        job = planned.job
        edges.extend((job.id, d) for d in planned.open_deps)
        rows.append(_row(planned, now))
        if len(job.payload) > INLINE_PAYLOAD_MAX:
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
    try:
        cur.executemany(INSERT_JOB, rows)
    except sqlite3.IntegrityError as exc:
        raise InvalidOption("id", f"a job with one of these ids already exists ({exc})") from exc
    if large:
        cur.executemany(_PUT_PAYLOAD, large)
    if edges:
        cur.executemany(_PUT_DEPENDENCY, edges)
        cur.executemany(_MARK_DEPENDED_ON, [(d,) for d in {d for _, d in edges}])
    if unique:
        cur.executemany(_PUT_UNIQUE, unique)
    if idempotency:
        cur.executemany(_PUT_IDEMPOTENCY, idempotency)


def _row(planned: PlannedJob, now: float) -> tuple[Any, ...]:
    """Values in :data:`~conveyor.stores.sqlite.rows.JOB_COLUMNS` order."""
    job, reason = planned.job, planned.failure_reason
    return (
        job.id,
        job.queue,
        job.task,
        job.payload if len(job.payload) <= INLINE_PAYLOAD_MAX else b"",
        planned.state.value,
        job.priority,
        0,
        job.max_attempts,
        now if job.run_at is None else job.run_at,
        job.timeout,
        None,
        None,
        None,
        encode_ids(planned.depends_on),
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
        0,
        now,
        None,
        now if reason else None,
        None,
    )
