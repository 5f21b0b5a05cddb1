"""What a job's end means for the jobs that wait on it, inside the caller's transaction.

``job_dependencies`` holds one row per unresolved (dependent, dependency) pair; a job's
``has_dependents`` flag says whether any row ever named it, so the completion hot path
looks for dependents only when there can be some. Dependents are read ``FOR UPDATE`` so
two transactions releasing the same dependent serialise on its row.
"""

from __future__ import annotations

from typing import Any

from psycopg import Cursor

from conveyor.job import DependencyPolicy, FailureReason, JobState, check_transition
from conveyor.stores.postgres.rows import state_of

S = JobState

_DEPENDENTS = """
SELECT j.id, j.state, j.blocked_by, j.run_at, j.on_dependency_failure
FROM job_dependencies AS d JOIN jobs AS j ON j.id = d.job_id
WHERE d.depends_on = %s
ORDER BY j.id
FOR UPDATE OF j
"""
_FORGET = "DELETE FROM job_dependencies WHERE depends_on = %s"
_COUNT_DOWN = "UPDATE jobs SET blocked_by = %s WHERE id = %s"
_UNBLOCK = "UPDATE jobs SET state = %s, blocked_by = 0 WHERE id = %s AND state = 'blocked'"
_APPLY_POLICY = (
    "UPDATE jobs SET state = %s, failure_reason = %s, finished_at = %s "
    "WHERE id = %s AND state = 'blocked'"
)


def release_dependents(cur: Cursor[Any], job_id: str, now: float) -> int:
    """``job_id`` completed: count its blocked dependents down, release those at zero.

    A released job becomes pending, or scheduled if its ``run_at`` is still ahead.
    Returns how many became pending (the caller notifies workers if any).
    """
    rows = cur.execute(_DEPENDENTS, (job_id,)).fetchall()
    if not rows:
        return 0
    cur.execute(_FORGET, (job_id,))
    ready = 0
    for dep_id, state, blocked_by, run_at, _policy in rows:
        current = state_of(state)
        if current is not S.BLOCKED:
            continue
        left = max(blocked_by - 1, 0)
        if left:
            cur.execute(_COUNT_DOWN, (left, dep_id))
            continue
        target = S.SCHEDULED if run_at > now else S.PENDING
        check_transition(dep_id, current, target)
        cur.execute(_UNBLOCK, (target.value, dep_id))
        ready += target is S.PENDING
    return ready


def propagate_failure(cur: Cursor[Any], job_id: str, now: float) -> None:
    """``job_id`` failed, was cancelled or deleted unfinished: apply each blocked
    dependent's policy (failed with ``dependency_failed``, or cancelled), transitively."""
    todo = [job_id]
    while todo:
        source = todo.pop()
        rows = cur.execute(_DEPENDENTS, (source,)).fetchall()
        if not rows:
            continue
        cur.execute(_FORGET, (source,))
        for dep_id, state, _blocked, _run_at, policy in rows:
            current = state_of(state)
            if current is not S.BLOCKED:
                continue
            target = S.FAILED if policy == DependencyPolicy.FAIL.value else S.CANCELLED
            check_transition(dep_id, current, target)
            cur.execute(
                _APPLY_POLICY,
                (target.value, FailureReason.DEPENDENCY_FAILED.value, now, dep_id),
            )
            todo.append(dep_id)
