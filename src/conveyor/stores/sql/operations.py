"""The bodies of the job lifecycle's write transactions, for every dialect.

Each function runs on a cursor already inside a transaction (the store opens and commits
it, or the caller does for a joined transaction). They are plain module functions so the
hot paths set up no closures per call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson

from conveyor.job import FailureReason, JobState, Lease
from conveyor.stores.base import (
    ClaimParams,
    Completion,
    Failure,
    HeartbeatResult,
    PruneParams,
    PruneResult,
    RescueParams,
    RescueResult,
    StageResult,
)
from conveyor.stores.corrupt import DECODE_ERRORS, Salvage, check_job, quarantine_errors
from conveyor.stores.rescue import decide_rescue
from conveyor.stores.sql.dependencies import propagate_failure, release_dependents
from conveyor.stores.sql.dialect import Cursor
from conveyor.stores.sql.records import drop_expired_records
from conveyor.stores.sql.rows import TOKEN_INDEX, encode_error, job_from_row, salvage_row
from conveyor.stores.sql.statements import Statements

S = JobState
log = logging.getLogger("conveyor.stores.sql")


# consumers -------------------------------------------------------------------------------
def claim_jobs(
    cur: Cursor, sql: Statements, params: ClaimParams, now: float, lease_now: float
) -> list[Lease]:
    """Lease pending jobs: the given ids in order, else queue by queue in claim order.

    A claimed row that cannot be decoded is quarantined in the same transaction and the
    rest of the batch is leased as usual. ``now`` judges due times (wall clock); the lease
    runs from ``lease_now`` (the driver's lease time)."""
    expires = lease_now + params.lease_for
    fixed = (expires, params.worker_id, now, now)
    leases: list[Lease] = []
    if params.job_ids is not None:
        for job_id in dict.fromkeys(params.job_ids):
            if len(leases) >= params.limit:
                break
            got = cur.execute(sql.claim_one, (*fixed, job_id)).fetchall()
            leases += _leases(cur, sql, got, expires, now)
    else:
        for queue in params.queues:
            room = params.limit - len(leases)
            if room <= 0:
                break
            args = sql.dialect.claim_queue_params(fixed, queue, room)
            got = cur.execute(sql.claim_queue, args).fetchall()
            batch = _leases(cur, sql, got, expires, now)
            batch.sort(key=_claim_order)  # RETURNING order is unspecified
            leases += batch
    return leases


def _leases(
    cur: Cursor, sql: Statements, rows: list[Any], expires: float, now: float
) -> list[Lease]:
    """Leases of the claimed rows; a row that cannot be decoded is quarantined instead."""
    leases: list[Lease] = []
    for row in rows:
        try:
            job = check_job(job_from_row(sql.dialect, row))
        except DECODE_ERRORS as exc:
            _quarantine(cur, sql, salvage_row(sql.dialect, row, exc, now), now)
            continue
        leases.append(Lease(job, row[TOKEN_INDEX], expires))
    return leases


def _quarantine(cur: Cursor, sql: Statements, salvaged: Salvage, now: float) -> None:
    """Dead-letter a claimed job as ``corrupt``, with the decode error; fail its dependents."""
    errors = orjson.dumps(quarantine_errors(salvaged, now)).decode()
    row = cur.execute(sql.quarantine, (now, errors, salvaged.job.id)).fetchone()
    log.error("job %s quarantined (failed, corrupt): %s", salvaged.job.id, salvaged.message)
    if row is not None and row[0]:
        propagate_failure(cur, sql, salvaged.job.id, now)


def _claim_order(lease: Lease) -> tuple[int, float, str]:
    """Sort key of a lease: priority first, then oldest ``run_at``, then id."""
    job = lease.job
    return (-job.priority, job.run_at, job.id)


def heartbeat_leases(
    cur: Cursor, sql: Statements, leases: Sequence[Lease], now: float, expires: float
) -> HeartbeatResult:
    """Renew each lease still held (token fence); collect lost ones and cancel requests."""
    held = sql.dialect.renew(cur, leases, now, expires)
    renewed: dict[str, float] = {}
    lost: list[str] = []
    cancel: list[str] = []
    for lease in leases:
        flag = held.get((lease.job_id, lease.token))
        if flag is None:
            lost.append(lease.job_id)
            continue
        renewed[lease.job_id] = expires
        if flag and lease.job_id not in cancel:
            cancel.append(lease.job_id)
    return HeartbeatResult(renewed, lost, cancel)


def complete_jobs(
    cur: Cursor, sql: Statements, completions: Sequence[Completion], now: float
) -> tuple[list[str], int]:
    """Complete the held jobs; return (lost ids, dependents that became pending)."""
    lost: list[str] = []
    ready = 0
    size = sql.dialect.complete_chunk
    for start in range(0, len(completions), size):
        chunk = completions[start : start + size]
        ids = [done.lease.job_id for done in chunk]
        if len(set(ids)) != len(ids):
            # One job twice (say a stale and a live lease): only the per-row form can tell
            # which of the two held it.
            ready += _complete_one_by_one(cur, sql, chunk, now, lost)
            continue
        held = sql.dialect.complete_batch(cur, chunk, now)
        for job_id in ids:
            has_dependents = held.get(job_id)
            if has_dependents is None:
                lost.append(job_id)
            elif has_dependents:
                ready += release_dependents(cur, sql, job_id, now)
    return lost, ready


def _complete_one_by_one(
    cur: Cursor, sql: Statements, completions: Sequence[Completion], now: float, lost: list[str]
) -> int:
    """One fenced UPDATE per completion, in order; appends lost ids to ``lost``."""
    ready = 0
    for done in completions:
        job_id = done.lease.job_id
        params = (done.result, now, job_id, done.lease.token)
        row = cur.execute(sql.complete, params).fetchall()
        if not row:
            lost.append(job_id)
        elif row[0][0]:
            ready += release_dependents(cur, sql, job_id, now)
    return ready


def complete_then_claim(
    cur: Cursor,
    sql: Statements,
    completions: Sequence[Completion],
    params: ClaimParams,
    now: float,
    lease_now: float,
) -> tuple[list[str], int, list[Lease]]:
    """The worker's hot path in one transaction: (lost ids, dependents ready, leases)."""
    lost, ready = complete_jobs(cur, sql, completions, now) if completions else ([], 0)
    leases = claim_jobs(cur, sql, params, now, lease_now) if params.limit > 0 else []
    return lost, ready, leases


def fail_job(
    cur: Cursor,
    sql: Statements,
    lease: Lease,
    failure: Failure,
    now: float,
) -> JobState | None:
    """Record a failed attempt; the new state, or None when the lease does not hold."""
    target = S.RETRYING if failure.retry_at is not None else S.FAILED
    reason = (failure.reason or FailureReason.EXHAUSTED).value if target is S.FAILED else None
    params = (target.value, encode_error(failure.error), failure.retry_at, now, reason)
    row = cur.execute(sql.fail, (*params, lease.job_id, lease.token)).fetchall()
    if not row:
        return None
    if target is S.FAILED and row[0][0]:
        propagate_failure(cur, sql, lease.job_id, now)
    return target


def release_job(
    cur: Cursor, sql: Statements, lease: Lease, run_at: float | None, now: float
) -> JobState | None:
    """Give the job back unstarted: pending, or scheduled if ``run_at`` is ahead; the new
    state, or None when the lease does not hold."""
    target = S.SCHEDULED if run_at is not None and run_at > now else S.PENDING
    params = (target.value, run_at, lease.job_id, lease.token)
    return target if cur.execute(sql.release, params).fetchall() else None


def finish_cancelled(cur: Cursor, sql: Statements, lease: Lease, now: float) -> bool:
    """End the held job as cancelled and cancel/fail its dependents; False when the
    lease does not hold."""
    row = cur.execute(sql.finish_cancelled, (now, lease.job_id, lease.token)).fetchall()
    if not row:
        return False
    if row[0][0]:
        propagate_failure(cur, sql, lease.job_id, now)
    return True


# maintenance -----------------------------------------------------------------------------
def stage_due(cur: Cursor, sql: Statements, now: float, limit: int) -> StageResult:
    """Promote due scheduled/retrying jobs to pending; report the next due time."""
    promoted = cur.execute(sql.stage, (now, limit)).rowcount
    row = cur.execute(sql.next_due).fetchone()
    return StageResult(promoted, row[0] if row else None)


def rescue_jobs(
    cur: Cursor, sql: Statements, params: RescueParams, now: float, expire_before: float | None
) -> RescueResult:
    """Expired leases: retry later, or fail as poison/exhausted (and fail dependents).

    Leases expire before ``expire_before`` (None: the database's own clock judges, in the
    statement); retry times and what is written follow ``now``."""
    retried: list[str] = []
    failed: list[str] = []
    expired = cur.execute(sql.expired, (expire_before, max(params.limit, 0))).fetchall()
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
        reason = decision.reason
        written = (decision.target.value, decision.rescues, encode_error(decision.error))
        row = cur.execute(sql.rescue, (*written, decision.retry_at, now, reason, job_id)).fetchall()
        if reason:
            failed.append(job_id)
            if row and row[0][0]:
                propagate_failure(cur, sql, job_id, now)
        else:
            retried.append(job_id)
    return RescueResult(retried, failed)


def prune_jobs(cur: Cursor, sql: Statements, params: PruneParams, now: float) -> PruneResult:
    """Up to ``limit`` old terminal jobs (oldest first, per state, by the ``jobs_finished``
    index) with their own key holds and edges; then, with ``sweep``, rows left orphaned by
    other deletions and expired records (counted with the orphans)."""
    ages = (
        (S.COMPLETED, params.completed_after),
        (S.FAILED, params.failed_after),
        (S.CANCELLED, params.cancelled_after),
    )
    if params.dry_run:
        total = 0
        for state, age in ages:
            if age is not None:
                row = cur.execute(sql.prune_count, (state.value, now - age)).fetchone()
                total += int(row[0]) if row else 0
        return PruneResult(total, 0)
    doomed: list[tuple[str, str | None, str | None]] = []
    for state, age in ages:
        room = params.limit - len(doomed)
        if age is None or room <= 0:
            continue
        doomed.extend(cur.execute(sql.prune_candidates, (state.value, now - age, room)).fetchall())
    orphans = _delete_doomed(cur, sql, doomed, params.job_records) if doomed else 0
    if params.sweep:
        orphans += cur.execute(sql.orphan_unique, (now,)).rowcount
        orphans += cur.execute(sql.orphan_idempotency, (now,)).rowcount
        orphans += cur.execute(sql.orphan_edges).rowcount
        orphans += drop_expired_records(cur, sql, now)
    return PruneResult(len(doomed), orphans)


def _delete_doomed(
    cur: Cursor,
    sql: Statements,
    doomed: list[tuple[str, str | None, str | None]],
    job_records: Sequence[str],
) -> int:
    """Delete the pruned jobs with their key holds, edges and job records; return how
    many of those other rows went with them."""
    d = sql.dialect
    ids = d.encode_ids([job_id for job_id, _, _ in doomed])
    orphans = d.drop_key_holds(cur, "unique_keys", [(k, i) for i, k, _ in doomed if k])
    orphans += d.drop_key_holds(cur, "idempotency_keys", [(k, i) for i, _, k in doomed if k])
    cur.execute(sql.delete_jobs, (ids,))
    orphans += cur.execute(sql.delete_edges_of_many, (ids, ids)).rowcount
    for namespace in job_records:
        orphans += cur.execute(sql.drop_job_records, (namespace, ids)).rowcount
    return orphans
