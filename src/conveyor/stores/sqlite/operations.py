"""The bodies of the SQLite store's write transactions, and the search filter.

Each function runs on a connection already inside ``BEGIN IMMEDIATE`` (the store opens
and commits the transaction). They are plain module functions so the hot paths set up
no closures per call.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from conveyor.job import (
    TERMINAL_STATES,
    JobState,
    Lease,
    check_transition,
)
from conveyor.stores.base import (
    CancelResult,
    ClaimParams,
    Completion,
    HeartbeatResult,
    JobQuery,
    PruneParams,
    PruneResult,
    RescueParams,
    RescueResult,
)
from conveyor.stores.corrupt import (
    DECODE_ERRORS,
    Salvage,
    check_job,
    is_known_state,
    quarantine_errors,
)
from conveyor.stores.rescue import decide_rescue
from conveyor.stores.sqlite import queries as q
from conveyor.stores.sqlite.dependencies import propagate_failure, release_dependents
from conveyor.stores.sqlite.records import drop_expired as drop_expired_records
from conveyor.stores.sqlite.rows import (
    encode_error,
    encode_ids,
    job_from_row,
    salvage_row,
    state_of,
)

S = JobState
log = logging.getLogger("conveyor.stores.sqlite")
_TERMINAL_VALUES = frozenset(s.value for s in TERMINAL_STATES)
_KNOWN_STATES = ", ".join(f"'{state.value}'" for state in JobState)


def claim_jobs(
    conn: sqlite3.Connection, params: ClaimParams, now: float, lease_now: float | None = None
) -> list[Lease]:
    """Lease pending jobs: the given ids in order, else queue by queue in claim order.

    A claimed row that cannot be decoded is quarantined in the same transaction and the
    rest of the batch is leased as usual. ``now`` judges due times (wall clock); the lease
    runs from ``lease_now`` (lease time, see :mod:`.lease_clock`), ``now`` when not given."""
    expires = (now if lease_now is None else lease_now) + params.lease_for
    leases: list[Lease] = []
    if params.job_ids is not None:
        for job_id in dict.fromkeys(params.job_ids):
            if len(leases) >= params.limit:
                break
            got = conn.execute(q.CLAIM_ONE, (expires, params.worker_id, now, job_id))
            leases += _leases(conn, got.fetchall(), expires, now)
    else:
        for queue in params.queues:
            room = params.limit - len(leases)
            if room <= 0:
                break
            got = conn.execute(q.CLAIM_QUEUE, (expires, params.worker_id, now, queue, room))
            batch = _leases(conn, got.fetchall(), expires, now)
            batch.sort(key=_claim_order)  # RETURNING order is unspecified
            leases += batch
    return leases


def _leases(conn: sqlite3.Connection, rows: list[Any], expires: float, now: float) -> list[Lease]:
    """Leases of the claimed rows; a row that cannot be decoded is quarantined instead."""
    leases: list[Lease] = []
    for row in rows:
        try:
            job = check_job(job_from_row(row))
        except DECODE_ERRORS as exc:
            _quarantine(conn, salvage_row(row, exc, now), now)
            continue
        leases.append(Lease(job, row[10], expires))
    return leases


def _quarantine(conn: sqlite3.Connection, salvaged: Salvage, now: float) -> None:
    """Dead-letter a claimed job as ``corrupt``, with the decode error; fail its dependents."""
    errors = orjson.dumps(quarantine_errors(salvaged, now)).decode()
    row = conn.execute(q.QUARANTINE, (now, errors, salvaged.job.id)).fetchone()
    log.error("job %s quarantined (failed, corrupt): %s", salvaged.job.id, salvaged.message)
    if row is not None and row[0]:
        propagate_failure(conn, salvaged.job.id, now)


def _claim_order(lease: Lease) -> tuple[int, float, str]:
    """Sort key of a lease: priority first, then oldest ``run_at``, then id."""
    job = lease.job
    return (-job.priority, job.run_at, job.id)


def heartbeat_leases(
    conn: sqlite3.Connection, leases: Sequence[Lease], now: float, expires: float
) -> HeartbeatResult:
    """Renew each lease still held (token fence); collect lost ones and cancel requests."""
    renewed: dict[str, float] = {}
    lost: list[str] = []
    cancel: list[str] = []
    for lease in leases:
        job_id = lease.job.id
        row = conn.execute(q.HEARTBEAT, (expires, now, job_id, lease.token)).fetchall()
        if not row:
            lost.append(job_id)
            continue
        renewed[job_id] = expires
        if row[0][0]:
            cancel.append(job_id)
    return HeartbeatResult(renewed, lost, cancel)


def complete_jobs(
    conn: sqlite3.Connection, completions: Sequence[Completion], now: float
) -> tuple[list[str], int]:
    """Complete the held jobs; return (lost ids, dependents that became pending)."""
    lost: list[str] = []
    ready = 0
    size = q.COMPLETE_CHUNK
    for start in range(0, len(completions), size):
        chunk = completions[start : start + size]
        ids = [done.lease.job.id for done in chunk]
        if len(set(ids)) != len(ids):
            # One job twice (say a stale and a live lease): only the per-row form can tell
            # which of the two held it.
            ready += _complete_one_by_one(conn, chunk, now, lost)
            continue
        params: list[Any] = []
        for done in chunk:
            params += (done.lease.job.id, done.lease.token, done.result)
        params.append(now)
        held = dict(conn.execute(q.complete_many(len(chunk)), params).fetchall())
        for done in chunk:
            job_id = done.lease.job.id
            has_dependents = held.get(job_id)
            if has_dependents is None:
                lost.append(job_id)
            elif has_dependents:
                ready += release_dependents(conn, job_id, now)
    return lost, ready


def _complete_one_by_one(
    conn: sqlite3.Connection, completions: Sequence[Completion], now: float, lost: list[str]
) -> int:
    """One fenced UPDATE per completion, in order; appends lost ids to ``lost``."""
    ready = 0
    for done in completions:
        lease = done.lease
        job_id = lease.job.id
        row = conn.execute(q.COMPLETE, (done.result, now, job_id, lease.token)).fetchall()
        if not row:
            lost.append(job_id)
        elif row[0][0]:
            ready += release_dependents(conn, job_id, now)
    return ready


def rescue_jobs(
    conn: sqlite3.Connection, params: RescueParams, now: float, lease_now: float | None = None
) -> RescueResult:
    """Expired leases: retry later, or fail as poison/exhausted (and fail dependents).

    Leases expire by ``lease_now`` (lease time, ``now`` when not given); retry times
    follow ``now`` (wall clock)."""
    retried: list[str] = []
    failed: list[str] = []
    limit = max(params.limit, 0)
    expired = conn.execute(q.EXPIRED, (now if lease_now is None else lease_now, limit)).fetchall()
    for job_id, attempt, max_attempts, rescue_count, worker_id, started_at in expired:
        decision = decide_rescue(
            job_id,
            attempt=attempt,
            max_attempts=max_attempts,
            rescue_count=rescue_count,
            worker_id=worker_id,
            started_at=started_at,
            params=params,
            now=now,
        )
        target, reason, rescues, run_at = (
            decision.target,
            decision.reason,
            decision.rescues,
            decision.retry_at,
        )
        error = decision.error
        row = conn.execute(
            q.RESCUE, (target.value, rescues, encode_error(error), run_at, now, reason, job_id)
        ).fetchall()
        if reason:
            failed.append(job_id)
            if row and row[0][0]:
                propagate_failure(conn, job_id, now)
        else:
            retried.append(job_id)
    return RescueResult(retried, failed)


def prune_jobs(conn: sqlite3.Connection, params: PruneParams, now: float) -> PruneResult:
    """Up to ``limit`` old terminal jobs (oldest first, per state, by the ``jobs_finished``
    index) with their own key holds and edges; then, with ``sweep``, rows left orphaned by
    other deletions and expired records (counted with the orphans)."""
    ages = (
        (S.COMPLETED, params.completed_after),
        (S.FAILED, params.failed_after),
        (S.CANCELLED, params.cancelled_after),
    )
    if params.dry_run:
        total = sum(
            conn.execute(q.PRUNE_COUNT, (state.value, now - age)).fetchone()[0]
            for state, age in ages
            if age is not None
        )
        return PruneResult(total, 0)
    doomed: list[tuple[str, str | None, str | None]] = []
    for state, age in ages:
        room = params.limit - len(doomed)
        if age is None or room <= 0:
            continue
        doomed.extend(conn.execute(q.PRUNE_CANDIDATES, (state.value, now - age, room)))
    orphans = 0
    if doomed:
        ids = encode_ids([job_id for job_id, _, _ in doomed])
        orphans += conn.executemany(q.DROP_UNIQUE_OF, [(k, i) for i, k, _ in doomed if k]).rowcount
        orphans += conn.executemany(
            q.DROP_IDEMPOTENCY_OF, [(k, i) for i, _, k in doomed if k]
        ).rowcount
        conn.execute(q.DELETE_JOBS, (ids,))
        orphans += conn.execute(q.DELETE_EDGES_OF_MANY, (ids,)).rowcount
        for namespace in params.job_records:
            orphans += conn.execute(q.DROP_JOB_RECORDS, (namespace, ids)).rowcount
    if params.sweep:
        orphans += conn.execute(q.ORPHAN_UNIQUE, (now,)).rowcount
        orphans += conn.execute(q.ORPHAN_IDEMPOTENCY, (now,)).rowcount
        orphans += conn.execute(q.ORPHAN_EDGES).rowcount
        orphans += drop_expired_records(conn, now)
    return PruneResult(len(doomed), orphans)


def cancel_jobs(
    conn: sqlite3.Connection, job_ids: Sequence[str], force: bool, now: float
) -> CancelResult:
    """Waiting jobs end now; processing ones get the flag, or end too with ``force``."""
    cancelled: list[str] = []
    requested: list[str] = []
    skipped: list[str] = []
    for job_id in dict.fromkeys(job_ids):
        # Read each state afresh: cancelling one job may already have cancelled the next.
        row = conn.execute(q.STATE_OF, (job_id,)).fetchone()
        if row is None or row[0] in _TERMINAL_VALUES or not is_known_state(row[0]):
            skipped.append(job_id)  # an unknown state reads as failed (corrupt): terminal
            continue
        current = state_of(row[0])
        if current is S.PROCESSING and not force:
            conn.execute(q.REQUEST_CANCEL, (job_id,))
            requested.append(job_id)
            continue
        check_transition(job_id, current, S.CANCELLED)
        conn.execute(q.CANCEL, (now, job_id))
        if row[1]:
            propagate_failure(conn, job_id, now)
        cancelled.append(job_id)
    return CancelResult(cancelled, requested, skipped)


def retry_jobs(conn: sqlite3.Connection, job_ids: Sequence[str], now: float) -> list[str]:
    """Failed/cancelled jobs back to pending with fresh attempts; their errors stay."""
    moved: list[str] = []
    for job_id in dict.fromkeys(job_ids):
        row = conn.execute(q.STATE_OF, (job_id,)).fetchone()
        if row is not None and not is_known_state(row[0]):
            conn.execute(q.REPAIR_STATE, (job_id,))  # shown as failed (corrupt): retry it
            row = (S.FAILED.value, row[1])
        if row is None or row[0] not in (S.FAILED.value, S.CANCELLED.value):
            continue
        check_transition(job_id, state_of(row[0]), S.PENDING)
        conn.execute(q.RETRY, (now, job_id))
        moved.append(job_id)
    return moved


def delete_jobs(conn: sqlite3.Connection, job_ids: Sequence[str], now: float) -> int:
    """Delete all but processing jobs; an unfinished one fails/cancels its dependents."""
    deleted = 0
    for job_id in dict.fromkeys(job_ids):
        row = conn.execute(q.STATE_OF, (job_id,)).fetchone()
        if row is None or row[0] == S.PROCESSING.value:
            continue
        conn.execute(q.DELETE_JOB, (job_id,))
        deleted += 1
        if row[0] != S.COMPLETED.value and row[1]:
            propagate_failure(conn, job_id, now)
        conn.execute(q.DELETE_EDGES_OF, (job_id,))
    return deleted


def search_filter(query: JobQuery) -> tuple[str, list[Any]]:
    """``WHERE`` text and parameters for every filter of ``query``; lists go in as JSON."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in (
        ("id", query.ids),
        ("state", None if query.states is None else [str(s) for s in query.states]),
        ("queue", query.queues),
        ("task", query.tasks),
    ):
        if values is not None:
            clauses.append(f"{column} IN (SELECT value FROM json_each(?))")
            params.append(encode_ids(list(values)) or "[]")
            if column == "state" and S.FAILED in (query.states or ()):
                # A state no code knows reads as failed (corrupt): listed with the failed.
                clauses[-1] = f"({clauses[-1]} OR state NOT IN ({_KNOWN_STATES}))"
    if query.tag is not None:
        if "," in query.tag:
            clauses.append("0")  # no stored tag contains a comma
        else:
            clauses.append("instr(tags, ?) > 0")
            params.append(f",{query.tag},")
    if query.since is not None:
        clauses.append("created_at >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append("created_at < ?")
        params.append(query.until)
    if query.text:
        like = "conveyor_lower({}) LIKE ? ESCAPE '\\'"
        fields = ("id", "task", "queue", "failure_reason")
        # CASEs keep a damaged errors value (not JSON, not objects) from failing the search.
        message = (
            "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(jobs.errors) "
            "THEN jobs.errors END) AS e WHERE "
            + like.format("CASE WHEN e.type = 'object' THEN json_extract(e.value, '$.message') END")
            + ")"
        )
        clauses.append("(" + " OR ".join([*(like.format(f) for f in fields), message]) + ")")
        pattern = "%" + _escape_like(query.text.lower()) + "%"
        params.extend([pattern] * (len(fields) + 1))
    return " AND ".join(clauses) or "1", params


def _escape_like(text: str) -> str:
    """Make ``%``, ``_`` and the escape character itself match literally (``ESCAPE '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
