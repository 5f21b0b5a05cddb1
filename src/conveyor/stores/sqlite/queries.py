"""SQL text of the SQLite store (enqueue and dependency SQL live beside their logic).

Every statement that changes a job's state names the state it starts from in its
``WHERE`` clause; :data:`GUARDED_TRANSITIONS` lists those (from, to) pairs and the store
checks them against :data:`conveyor.job.TRANSITIONS` once, at import.
"""

from __future__ import annotations

import functools
from typing import Final

from conveyor.job import JobState
from conveyor.stores.sqlite.rows import SELECT_LIST

S = JobState

_FENCE = "id = ? AND lease_token = ? AND state = 'processing'"
# An errors value that is not a JSON array (damaged outside Conveyor) is replaced, so a
# failure or rescue is still recorded (see conveyor.stores.corrupt).
_APPEND_ERROR = (
    "errors = json_insert(CASE WHEN NOT json_valid(errors) THEN '[]' "
    "WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]', json(?))"
)
_DROP_LEASE = "lease_token = NULL, lease_expires_at = NULL"

# consumers -------------------------------------------------------------------------------
# The subquery walks the partial index jobs_claim in claim order; INDEXED BY makes that
# plan a promise (SQLite raises instead of silently sorting the whole backlog).
_CLAIM_SET = """
UPDATE jobs SET state = 'processing', attempt = attempt + 1, lease_token = conveyor_token(),
    lease_expires_at = ?1, worker_id = ?2, started_at = ?3, finished_at = NULL,
    heartbeat_at = ?3, cancel_requested = 0
"""
CLAIM_QUEUE: Final = f"""{_CLAIM_SET}
WHERE rowid IN (
    SELECT rowid FROM jobs INDEXED BY jobs_claim
    WHERE state = 'pending' AND queue = ?4
    ORDER BY priority DESC, run_at, id
    LIMIT ?5)
RETURNING {SELECT_LIST}
"""
CLAIM_QUEUE_PLAN: Final = """
SELECT rowid FROM jobs INDEXED BY jobs_claim
WHERE state = 'pending' AND queue = ?
ORDER BY priority DESC, run_at, id
LIMIT ?
"""
CLAIM_ONE: Final = f"""{_CLAIM_SET}
WHERE id = ?4 AND state = 'pending'
RETURNING {SELECT_LIST}
"""
QUARANTINE: Final = (
    "UPDATE jobs SET state = 'failed', failure_reason = 'corrupt', finished_at = ?, "
    f"{_DROP_LEASE}, cancel_requested = 0, errors = ? WHERE id = ? AND state = 'processing' "
    "RETURNING has_dependents"
)
"""A claimed row that cannot be decoded goes to the DLQ in the claim's transaction."""
REPAIR_STATE: Final = (
    "UPDATE jobs SET state = 'failed', failure_reason = 'corrupt' WHERE id = ? AND state NOT IN "
    + "("
    + ", ".join(f"'{state.value}'" for state in JobState)
    + ")"
)
"""A row whose state no code knows becomes ``failed`` (before a retry)."""
HEARTBEAT: Final = (
    f"UPDATE jobs SET lease_expires_at = ?, heartbeat_at = ? WHERE {_FENCE} "
    "RETURNING cancel_requested"
)
COMPLETE: Final = (
    f"UPDATE jobs SET state = 'completed', result = ?, {_DROP_LEASE}, finished_at = ?, "
    f"cancel_requested = 0 WHERE {_FENCE} RETURNING has_dependents"
)
COMPLETE_CHUNK: Final = 300
"""Completions per statement in :func:`complete_many` (3 parameters each)."""


@functools.lru_cache(maxsize=COMPLETE_CHUNK)
def complete_many(count: int) -> str:
    """COMPLETE for ``count`` (id, token, result) triples in one UPDATE … FROM statement.

    One statement per batch costs about half as much per job as one per completion. The
    text depends only on ``count``, so sqlite3's statement cache keeps it prepared.
    """
    values = ", ".join(["(?, ?, ?)"] * count)
    return (
        f"WITH done(id, token, result) AS (VALUES {values}) "
        f"UPDATE jobs SET state = 'completed', result = done.result, {_DROP_LEASE}, "
        "finished_at = ?, cancel_requested = 0 FROM done "
        "WHERE jobs.id = done.id AND jobs.lease_token = done.token "
        "AND jobs.state = 'processing' "
        "RETURNING jobs.id, jobs.has_dependents"
    )


FAIL: Final = (
    f"UPDATE jobs SET state = ?, {_APPEND_ERROR}, run_at = coalesce(?, run_at), {_DROP_LEASE}, "
    f"finished_at = ?, failure_reason = ?, cancel_requested = 0 WHERE {_FENCE} "
    "RETURNING has_dependents"
)
RELEASE: Final = (
    "UPDATE jobs SET state = ?, attempt = max(attempt - 1, 0), run_at = coalesce(?, run_at), "
    f"{_DROP_LEASE}, worker_id = NULL, started_at = NULL, heartbeat_at = NULL "
    f"WHERE {_FENCE} RETURNING 1"
)
_CANCEL_SET = (
    f"UPDATE jobs SET state = 'cancelled', {_DROP_LEASE}, finished_at = ?, "
    "failure_reason = 'cancelled', cancel_requested = 0"
)
FINISH_CANCELLED: Final = f"{_CANCEL_SET} WHERE {_FENCE} RETURNING has_dependents"

# maintenance ------------------------------------------------------------------------------
STAGE: Final = """
UPDATE jobs SET state = 'pending'
WHERE rowid IN (
    SELECT rowid FROM jobs INDEXED BY jobs_due
    WHERE state IN ('scheduled', 'retrying') AND run_at <= ?
    ORDER BY run_at, id
    LIMIT ?)
"""
NEXT_DUE: Final = (
    "SELECT MIN(run_at) FROM jobs INDEXED BY jobs_due WHERE state IN ('scheduled', 'retrying')"
)
EXPIRED: Final = """
SELECT id, attempt, max_attempts, rescue_count, worker_id, started_at
FROM jobs INDEXED BY jobs_lease
WHERE state = 'processing' AND lease_expires_at < ?
ORDER BY lease_expires_at, id
LIMIT ?
"""
RESCUE: Final = (
    f"UPDATE jobs SET state = ?, rescue_count = ?, {_APPEND_ERROR}, run_at = coalesce(?, run_at), "
    f"{_DROP_LEASE}, finished_at = ?, failure_reason = ?, cancel_requested = 0 "
    "WHERE id = ? AND state = 'processing' RETURNING has_dependents"
)
_NO_LIVE_STEP: Final = """
  AND NOT EXISTS (SELECT 1 FROM jobs AS step INDEXED BY jobs_live_steps
                  WHERE step.parent_id = jobs.id
                    AND step.state NOT IN ('completed', 'failed', 'cancelled'))
"""
"""A chain step reads its parent's result when it runs: the parent stays until then."""
PRUNE_CANDIDATES: Final = f"""
SELECT id, unique_key, idempotency_key FROM jobs INDEXED BY jobs_finished
WHERE state IN ('completed', 'failed', 'cancelled') AND state = ? AND finished_at <= ?
{_NO_LIVE_STEP}
ORDER BY finished_at
LIMIT ?
"""
PRUNE_COUNT: Final = f"""
SELECT COUNT(*) FROM jobs INDEXED BY jobs_finished
WHERE state IN ('completed', 'failed', 'cancelled') AND state = ? AND finished_at <= ?
{_NO_LIVE_STEP}
"""
DROP_UNIQUE_OF: Final = "DELETE FROM unique_keys WHERE key = ? AND job_id = ?"
DROP_IDEMPOTENCY_OF: Final = "DELETE FROM idempotency_keys WHERE key = ? AND job_id = ?"
DROP_JOB_RECORDS: Final = (
    "DELETE FROM records WHERE namespace = ? AND key IN (SELECT value FROM json_each(?))"
)
DELETE_JOBS: Final = "DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?))"
DELETE_EDGES_OF_MANY: Final = """
DELETE FROM job_dependencies
WHERE job_id IN (SELECT value FROM json_each(?1))
   OR depends_on IN (SELECT value FROM json_each(?1))
"""
ORPHAN_UNIQUE: Final = """
DELETE FROM unique_keys
WHERE (expires_at IS NOT NULL AND expires_at <= ?)
   OR NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = unique_keys.job_id)
"""
ORPHAN_IDEMPOTENCY: Final = """
DELETE FROM idempotency_keys
WHERE expires_at <= ?
   OR NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = idempotency_keys.job_id)
"""
ORPHAN_EDGES: Final = """
DELETE FROM job_dependencies
WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_dependencies.job_id)
   OR NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_dependencies.depends_on)
"""

# management / read model ------------------------------------------------------------------
GET: Final = f"SELECT {SELECT_LIST} FROM jobs WHERE id = ?"
GET_MANY: Final = f"SELECT {SELECT_LIST} FROM jobs WHERE id IN (SELECT value FROM json_each(?))"
STATE_OF: Final = "SELECT state, has_dependents FROM jobs WHERE id = ?"
REQUEST_CANCEL: Final = "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'processing'"
CANCEL: Final = f"{_CANCEL_SET} WHERE id = ?"
RETRY: Final = (
    "UPDATE jobs SET state = 'pending', attempt = 0, rescue_count = 0, run_at = ?, "
    f"failure_reason = NULL, finished_at = NULL, {_DROP_LEASE}, cancel_requested = 0 "
    "WHERE id = ? AND state IN ('failed', 'cancelled')"
)
DELETE_JOB: Final = "DELETE FROM jobs WHERE id = ? AND state != 'processing'"
DELETE_EDGES_OF: Final = "DELETE FROM job_dependencies WHERE job_id = ?1 OR depends_on = ?1"
COUNTS: Final = "SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state"
OLDEST_PENDING: Final = (
    "SELECT queue, MIN(run_at) FROM jobs INDEXED BY jobs_claim WHERE state = 'pending' "
    "GROUP BY queue"
)

# nodes -------------------------------------------------------------------------------------
UPSERT_NODE: Final = """
INSERT INTO nodes (id, started_at, heartbeat_at, data) VALUES (?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, data = excluded.data
"""
DELETE_NODE: Final = "DELETE FROM nodes WHERE id = ?"
LIST_NODES: Final = "SELECT data FROM nodes ORDER BY started_at, id"
PRUNE_NODES: Final = "DELETE FROM nodes INDEXED BY nodes_heartbeat WHERE heartbeat_at < ?"

GUARDED_TRANSITIONS: Final = (
    (S.PENDING, S.PROCESSING),  # CLAIM_QUEUE, CLAIM_ONE
    (S.PROCESSING, S.COMPLETED),  # COMPLETE, complete_many
    (S.PROCESSING, S.RETRYING),  # FAIL, RESCUE
    (S.PROCESSING, S.FAILED),  # FAIL, RESCUE, QUARANTINE
    (S.PROCESSING, S.PENDING),  # RELEASE
    (S.PROCESSING, S.SCHEDULED),  # RELEASE
    (S.PROCESSING, S.CANCELLED),  # FINISH_CANCELLED
    (S.SCHEDULED, S.PENDING),  # STAGE
    (S.RETRYING, S.PENDING),  # STAGE
)
