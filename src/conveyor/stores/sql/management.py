"""Reads and operator commands on jobs, for every dialect: lookups, search and stats,
cancel / retry / delete, and the job controls (reprioritize, move, id-prefix lookup).

Each function runs on a cursor inside a transaction the store opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.job import TERMINAL_STATES, Job, JobState, StateCounts, check_transition
from conveyor.stores.base import CancelResult, JobQuery, Page
from conveyor.stores.corrupt import is_known_state
from conveyor.stores.sql.dependencies import propagate_failure
from conveyor.stores.sql.dialect import Cursor
from conveyor.stores.sql.rows import decode_job, state_of
from conveyor.stores.sql.statements import Statements

S = JobState
_TERMINAL_VALUES = frozenset(s.value for s in TERMINAL_STATES)
_KNOWN_STATES = ", ".join(f"'{state.value}'" for state in JobState)


def get_job(cur: Cursor, sql: Statements, job_id: str) -> Job | None:
    """One job by id, or None."""
    row = cur.execute(sql.get, (job_id,)).fetchone()
    return None if row is None else decode_job(sql.dialect, row)


def get_jobs(cur: Cursor, sql: Statements, job_ids: Sequence[str]) -> list[Job]:
    """Jobs by id, in the given order, skipping unknown ids."""
    rows = cur.execute(sql.get_many, (sql.dialect.encode_ids(job_ids),)).fetchall()
    found = {job.id: job for job in (decode_job(sql.dialect, row) for row in rows)}
    return [found[i] for i in job_ids if i in found]


def search_jobs(cur: Cursor, sql: Statements, query: JobQuery, limit: int, offset: int) -> Page:
    """One page of the jobs matching every filter, ordered by ``created_at`` then id."""
    d = sql.dialect
    where, params = search_filter(sql, query)
    order = "DESC" if query.newest_first else "ASC"
    count_sql = d.bind(f"SELECT count(*) FROM jobs WHERE {where}")
    page_sql = d.bind(
        f"SELECT {d.select_list} FROM jobs WHERE {where} "
        f"ORDER BY created_at {order}, id {order} LIMIT ? OFFSET ?"
    )
    row = cur.execute(count_sql, params).fetchone()
    rows = cur.execute(page_sql, (*params, limit, offset)).fetchall()
    total = int(row[0]) if row else 0
    return Page([decode_job(d, r) for r in rows], total, limit, offset)


def search_filter(sql: Statements, query: JobQuery) -> tuple[str, list[Any]]:
    """``WHERE`` text (``?`` placeholders) and parameters for every filter of ``query``."""
    d = sql.dialect
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in (
        ("id", query.ids),
        ("state", None if query.states is None else [str(s) for s in query.states]),
        ("queue", query.queues),
        ("task", query.tasks),
    ):
        if values is not None:
            clauses.append(d.id_list(column))
            params.append(d.encode_ids(list(values)))
            if column == "state" and not d.states_checked and S.FAILED in (query.states or ()):
                # A state no code knows reads as failed (corrupt): listed with the failed.
                clauses[-1] = f"({clauses[-1]} OR state NOT IN ({_KNOWN_STATES}))"
    extra: list[tuple[str, list[Any]]] = []
    if query.tag is not None:
        extra.append(d.tag_filter(query.tag))
    if query.since is not None:
        extra.append(("created_at >= ?", [query.since]))
    if query.until is not None:
        extra.append(("created_at < ?", [query.until]))
    if query.text:
        extra.append(d.text_filter(query.text))
    for clause, values in extra:
        clauses.append(clause)
        params.extend(values)
    return " AND ".join(clauses) or "true", params


def state_counts(cur: Cursor, sql: Statements) -> list[StateCounts]:
    """Jobs per queue and state, and each queue's oldest pending ``run_at``."""
    by_queue: dict[str, StateCounts] = {}
    for queue, state, count in cur.execute(sql.counts).fetchall():
        counts = by_queue.setdefault(queue, StateCounts(queue)).counts
        name = state_of(state).value  # an unknown state counts as failed (corrupt)
        counts[name] = counts.get(name, 0) + int(count)
    for queue, oldest in cur.execute(sql.oldest_pending).fetchall():
        by_queue.setdefault(queue, StateCounts(queue)).oldest_pending_at = oldest
    return [by_queue[name] for name in sorted(by_queue)]


def cancel_jobs(
    cur: Cursor, sql: Statements, job_ids: Sequence[str], force: bool, now: float
) -> CancelResult:
    """Waiting jobs end now; processing ones get the flag, or end too with ``force``."""
    cancelled: list[str] = []
    requested: list[str] = []
    skipped: list[str] = []
    for job_id in job_ids:
        # Read each state afresh: cancelling one job may already have cancelled the next.
        row = cur.execute(sql.state_of, (job_id,)).fetchone()
        if row is None or row[0] in _TERMINAL_VALUES or not is_known_state(row[0]):
            skipped.append(job_id)  # an unknown state reads as failed (corrupt): terminal
            continue
        current = state_of(row[0])
        if current is S.PROCESSING and not force:
            cur.execute(sql.request_cancel, (job_id,))
            requested.append(job_id)
            continue
        check_transition(job_id, current, S.CANCELLED)
        cur.execute(sql.cancel, (now, job_id))
        if row[1]:
            propagate_failure(cur, sql, job_id, now)
        cancelled.append(job_id)
    return CancelResult(cancelled, requested, skipped)


def retry_jobs(cur: Cursor, sql: Statements, job_ids: Sequence[str], now: float) -> list[str]:
    """Failed/cancelled jobs back to pending with fresh attempts; their errors stay."""
    moved: list[str] = []
    for job_id in job_ids:
        row = cur.execute(sql.state_of, (job_id,)).fetchone()
        if row is not None and not is_known_state(row[0]):
            cur.execute(sql.repair_state, (job_id,))  # shown as failed (corrupt): retry it
            row = (S.FAILED.value, row[1])
        if row is None or row[0] not in (S.FAILED.value, S.CANCELLED.value):
            continue
        check_transition(job_id, state_of(row[0]), S.PENDING)
        cur.execute(sql.retry, (now, job_id))
        moved.append(job_id)
    return moved


def delete_jobs(cur: Cursor, sql: Statements, job_ids: Sequence[str], now: float) -> int:
    """Delete all but processing jobs; an unfinished one fails/cancels its dependents."""
    deleted = 0
    for job_id in job_ids:
        row = cur.execute(sql.state_of, (job_id,)).fetchone()
        if row is None or row[0] == S.PROCESSING.value:
            continue
        cur.execute(sql.delete_job, (job_id,))
        deleted += 1
        if row[0] != S.COMPLETED.value and row[1]:
            propagate_failure(cur, sql, job_id, now)
        cur.execute(sql.delete_edges_of, (job_id, job_id))
    return deleted


def change_waiting(
    cur: Cursor, sql: Statements, statement: str, value: object, job_ids: Sequence[str]
) -> tuple[list[str], bool]:
    """Run ``set_priority`` or ``set_queue`` in one ``UPDATE … RETURNING``; return the
    changed ids in the given order and whether any of them is pending (wake workers)."""
    rows = cur.execute(statement, (value, sql.dialect.encode_ids(job_ids))).fetchall()
    states = {str(job_id): str(state) for job_id, state in rows}
    changed = [job_id for job_id in job_ids if job_id in states]
    return changed, S.PENDING.value in states.values()


def find_ids(cur: Cursor, sql: Statements, low: str, high: str, limit: int) -> list[str]:
    """Ids between ``low`` and ``high`` (the bounds of a prefix), lowest first."""
    return [str(job_id) for (job_id,) in cur.execute(sql.find_ids, (low, high, limit)).fetchall()]
