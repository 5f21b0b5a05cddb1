"""The bodies of the PostgreSQL store's write transactions, and the search filter.

Each function runs on a cursor already inside a transaction (the store opens and
commits it, or the caller does for :meth:`PostgresStore.complete_in_transaction`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from psycopg import Cursor

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
from conveyor.stores.corrupt import DECODE_ERRORS, Salvage, check_job, quarantine_errors
from conveyor.stores.postgres import queries as q
from conveyor.stores.postgres.dependencies import propagate_failure, release_dependents
from conveyor.stores.postgres.records import drop_expired_records
from conveyor.stores.postgres.rows import (
    TOKEN_INDEX,
    encode_error,
    job_from_row,
    salvage_row,
    state_of,
)
from conveyor.stores.rescue import decide_rescue

S = JobState
log = logging.getLogger("conveyor.stores.postgres")
_TERMINAL_VALUES = frozenset(s.value for s in TERMINAL_STATES)


def claim_jobs(cur: Cursor[Any], params: ClaimParams, now: float) -> list[Lease]:
    """Lease pending jobs: the given ids in order, else queue by queue in claim order.

    A claimed row that cannot be decoded is quarantined in the same transaction and the
    rest of the batch is leased as usual."""
    expires = now + params.lease_for
    args: dict[str, Any] = {"expires": expires, "worker": params.worker_id, "now": now}
    leases: list[Lease] = []
    if params.job_ids is not None:
        for job_id in dict.fromkeys(params.job_ids):
            if len(leases) >= params.limit:
                break
            got = cur.execute(q.CLAIM_ONE, {**args, "id": job_id}).fetchall()
            leases += _leases(cur, got, expires, now)
    else:
        for queue in params.queues:
            room = params.limit - len(leases)
            if room <= 0:
                break
            got = cur.execute(q.CLAIM_QUEUE, {**args, "queue": queue, "limit": room}).fetchall()
            batch = _leases(cur, got, expires, now)
            batch.sort(key=_claim_order)  # RETURNING order is unspecified
            leases += batch
    return leases


def _leases(cur: Cursor[Any], rows: list[Any], expires: float, now: float) -> list[Lease]:
    """Leases of the claimed rows; a row that cannot be decoded is quarantined instead."""
    leases: list[Lease] = []
    for row in rows:
        try:
            job = check_job(job_from_row(row))
        except DECODE_ERRORS as exc:
            _quarantine(cur, salvage_row(row, exc, now), now)
            continue
        leases.append(Lease(job, row[TOKEN_INDEX], expires))
    return leases


def _quarantine(cur: Cursor[Any], salvaged: Salvage, now: float) -> None:
    """Dead-letter a claimed job as ``corrupt``, with the decode error; fail its dependents."""
    errors = orjson.dumps(quarantine_errors(salvaged, now)).decode()
    row = cur.execute(q.QUARANTINE, (now, errors, salvaged.job.id)).fetchone()
    log.error("job %s quarantined (failed, corrupt): %s", salvaged.job.id, salvaged.message)
    if row is not None and row[0]:
        propagate_failure(cur, salvaged.job.id, now)


def _claim_order(lease: Lease) -> tuple[int, float, str]:
    """Sort key of a lease: priority first, then oldest ``run_at``, then id."""
    job = lease.job
    return (-job.priority, job.run_at, job.id)


def heartbeat_leases(
    cur: Cursor[Any], leases: Sequence[Lease], now: float, expires: float
) -> HeartbeatResult:
    """Renew every lease still held (token fence) in one statement."""
    ids = [lease.job_id for lease in leases]
    tokens = [lease.token for lease in leases]
    held = {
        (job_id, token): bool(cancel)
        for job_id, token, cancel in cur.execute(
            q.HEARTBEAT_MANY, (expires, now, ids, tokens)
        ).fetchall()
    }
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
    cur: Cursor[Any], completions: Sequence[Completion], now: float
) -> tuple[list[str], int]:
    """Complete the held jobs; return (lost ids, dependents that became pending)."""
    if not completions:
        return [], 0
    ids = [done.lease.job_id for done in completions]
    if len(set(ids)) != len(ids):
        # One job twice (say a stale and a live lease): only the per-row form can tell
        # which of the two held it.
        return _complete_one_by_one(cur, completions, now)
    tokens = [done.lease.token for done in completions]
    results = [done.result for done in completions]
    held = dict(cur.execute(q.COMPLETE_MANY, (now, ids, tokens, results)).fetchall())
    lost: list[str] = []
    ready = 0
    for job_id in ids:
        has_dependents = held.get(job_id)
        if has_dependents is None:
            lost.append(job_id)
        elif has_dependents:
            ready += release_dependents(cur, job_id, now)
    return lost, ready


def _complete_one_by_one(
    cur: Cursor[Any], completions: Sequence[Completion], now: float
) -> tuple[list[str], int]:
    lost: list[str] = []
    ready = 0
    for done in completions:
        job_id = done.lease.job_id
        row = cur.execute(q.COMPLETE, (done.result, now, job_id, done.lease.token)).fetchone()
        if row is None:
            lost.append(job_id)
        elif row[0]:
            ready += release_dependents(cur, job_id, now)
    return lost, ready


def rescue_jobs(
    cur: Cursor[Any], params: RescueParams, now: float, *, server_judged: bool = False
) -> RescueResult:
    """Expired leases: retry later, or fail as poison/exhausted (and fail dependents).

    With ``server_judged`` the database's own clock decides which leases expired (in
    the statement), so no host's clock can; ``now`` still stamps what is written."""
    retried: list[str] = []
    failed: list[str] = []
    expire_before = None if server_judged else now
    expired = cur.execute(q.EXPIRED, (expire_before, max(params.limit, 0))).fetchall()
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
        row = cur.execute(
            q.RESCUE, (target.value, rescues, encode_error(error), run_at, now, reason, job_id)
        ).fetchone()
        if reason:
            failed.append(job_id)
            if row is not None and row[0]:
                propagate_failure(cur, job_id, now)
        else:
            retried.append(job_id)
    return RescueResult(retried, failed)


def prune_jobs(cur: Cursor[Any], params: PruneParams, now: float) -> PruneResult:
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
                row = cur.execute(q.PRUNE_COUNT, (state.value, now - age)).fetchone()
                total += int(row[0]) if row else 0
        return PruneResult(total, 0)
    doomed: list[tuple[str, str | None, str | None]] = []
    for state, age in ages:
        room = params.limit - len(doomed)
        if age is None or room <= 0:
            continue
        doomed.extend(cur.execute(q.PRUNE_CANDIDATES, (state.value, now - age, room)).fetchall())
    orphans = 0
    if doomed:
        ids = [job_id for job_id, _, _ in doomed]
        unique = [(k, i) for i, k, _ in doomed if k]
        idempotency = [(k, i) for i, _, k in doomed if k]
        if unique:
            keys, owners = zip(*unique, strict=True)
            orphans += cur.execute(q.DROP_UNIQUE_OF, (list(keys), list(owners))).rowcount
        if idempotency:
            keys, owners = zip(*idempotency, strict=True)
            orphans += cur.execute(q.DROP_IDEMPOTENCY_OF, (list(keys), list(owners))).rowcount
        cur.execute(q.DELETE_JOBS, (ids,))
        orphans += cur.execute(q.DELETE_EDGES_OF_MANY, {"ids": ids}).rowcount
        for namespace in params.job_records:
            orphans += cur.execute(q.DROP_JOB_RECORDS, (namespace, ids)).rowcount
    if params.sweep:
        orphans += cur.execute(q.ORPHAN_UNIQUE, (now,)).rowcount
        orphans += cur.execute(q.ORPHAN_IDEMPOTENCY, (now,)).rowcount
        orphans += cur.execute(q.ORPHAN_EDGES).rowcount
        orphans += drop_expired_records(cur, now)
    return PruneResult(len(doomed), orphans)


def cancel_jobs(cur: Cursor[Any], job_ids: Sequence[str], force: bool, now: float) -> CancelResult:
    """Waiting jobs end now; processing ones get the flag, or end too with ``force``."""
    cancelled: list[str] = []
    requested: list[str] = []
    skipped: list[str] = []
    for job_id in dict.fromkeys(job_ids):
        # Read each state afresh: cancelling one job may already have cancelled the next.
        row = cur.execute(q.STATE_OF, (job_id,)).fetchone()
        if row is None or row[0] in _TERMINAL_VALUES:
            skipped.append(job_id)
            continue
        current = state_of(row[0])
        if current is S.PROCESSING and not force:
            cur.execute(q.REQUEST_CANCEL, (job_id,))
            requested.append(job_id)
            continue
        check_transition(job_id, current, S.CANCELLED)
        cur.execute(q.CANCEL, (now, job_id))
        if row[1]:
            propagate_failure(cur, job_id, now)
        cancelled.append(job_id)
    return CancelResult(cancelled, requested, skipped)


def retry_jobs(cur: Cursor[Any], job_ids: Sequence[str], now: float) -> list[str]:
    """Failed/cancelled jobs back to pending with fresh attempts; their errors stay."""
    moved: list[str] = []
    for job_id in dict.fromkeys(job_ids):
        row = cur.execute(q.STATE_OF, (job_id,)).fetchone()
        if row is None or row[0] not in (S.FAILED.value, S.CANCELLED.value):
            continue
        check_transition(job_id, state_of(row[0]), S.PENDING)
        cur.execute(q.RETRY, (now, job_id))
        moved.append(job_id)
    return moved


def delete_jobs(cur: Cursor[Any], job_ids: Sequence[str], now: float) -> int:
    """Delete all but processing jobs; an unfinished one fails/cancels its dependents."""
    deleted = 0
    for job_id in dict.fromkeys(job_ids):
        row = cur.execute(q.STATE_OF, (job_id,)).fetchone()
        if row is None or row[0] == S.PROCESSING.value:
            continue
        cur.execute(q.DELETE_JOB, (job_id,))
        deleted += 1
        if row[0] != S.COMPLETED.value and row[1]:
            propagate_failure(cur, job_id, now)
        cur.execute(q.DELETE_EDGES_OF, {"id": job_id})
    return deleted


def search_filter(query: JobQuery) -> tuple[str, list[Any]]:
    """``WHERE`` text and parameters for every filter of ``query``."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in (
        ("id", query.ids),
        ("state", None if query.states is None else [str(s) for s in query.states]),
        ("queue", query.queues),
        ("task", query.tasks),
    ):
        if values is not None:
            clauses.append(f"{column} = ANY(%s::text[])")
            params.append(list(values))
    if query.tag is not None:
        clauses.append("tags @> ARRAY[%s::text]")
        params.append(query.tag)
    if query.since is not None:
        clauses.append("created_at >= %s")
        params.append(query.since)
    if query.until is not None:
        clauses.append("created_at < %s")
        params.append(query.until)
    if query.text:
        like = "{} ILIKE %s ESCAPE '\\'"
        fields = ("id", "task", "queue", "failure_reason")
        message = (
            "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(jobs.errors) "
            "= 'array' THEN jobs.errors ELSE '[]'::jsonb END) "
            "AS e WHERE " + like.format("e ->> 'message'") + ")"
        )
        clauses.append("(" + " OR ".join([*(like.format(f) for f in fields), message]) + ")")
        pattern = "%" + _escape_like(query.text) + "%"
        params.extend([pattern] * (len(fields) + 1))
    return " AND ".join(clauses) or "true", params


def _escape_like(text: str) -> str:
    """Make ``%``, ``_`` and the escape character itself match literally (``ESCAPE '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
