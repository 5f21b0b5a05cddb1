"""What a job's end means for the jobs that wait on it, inside the caller's transaction.

``job_dependencies`` holds one row per unresolved (dependent, dependency) pair; a job's
``has_dependents`` flag says whether any row ever named it, so the completion hot path
looks for dependents only when there can be some. Where the database locks rows, the
dependents are read locked (in id order), so two transactions releasing the same
dependent serialise on its row.
"""

from __future__ import annotations

from conveyor.job import DependencyPolicy, FailureReason, JobState, check_transition
from conveyor.stores.sql.dialect import Cursor
from conveyor.stores.sql.rows import state_of
from conveyor.stores.sql.statements import Statements

S = JobState


def release_dependents(cur: Cursor, sql: Statements, job_id: str, now: float) -> int:
    """``job_id`` completed: count its blocked dependents down, release those at zero.

    A released job becomes pending, or scheduled if its ``run_at`` is still ahead.
    Returns how many became pending (the caller wakes workers if any).
    """
    rows = cur.execute(sql.dependents, (job_id,)).fetchall()
    if not rows:
        return 0
    cur.execute(sql.forget, (job_id,))
    ready = 0
    for dep_id, state, blocked_by, run_at, _policy in rows:
        current = state_of(state)
        if current is not S.BLOCKED:
            continue
        left = max(blocked_by - 1, 0)
        if left:
            cur.execute(sql.count_down, (left, dep_id))
            continue
        target = S.SCHEDULED if run_at > now else S.PENDING
        check_transition(dep_id, current, target)
        cur.execute(sql.unblock, (target.value, dep_id))
        ready += target is S.PENDING
    return ready


def propagate_failure(cur: Cursor, sql: Statements, job_id: str, now: float) -> None:
    """``job_id`` failed, was cancelled or deleted unfinished: apply each blocked
    dependent's policy (failed with ``dependency_failed``, or cancelled), transitively."""
    todo = [job_id]
    while todo:
        source = todo.pop()
        rows = cur.execute(sql.dependents, (source,)).fetchall()
        if not rows:
            continue
        cur.execute(sql.forget, (source,))
        for dep_id, state, _blocked, _run_at, policy in rows:
            current = state_of(state)
            if current is not S.BLOCKED:
                continue
            target = S.FAILED if policy == DependencyPolicy.FAIL.value else S.CANCELLED
            check_transition(dep_id, current, target)
            reason = FailureReason.DEPENDENCY_FAILED.value
            cur.execute(sql.apply_policy, (target.value, reason, now, dep_id))
            todo.append(dep_id)
