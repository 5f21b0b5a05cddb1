"""SQL text of the PostgreSQL store (enqueue and dependency SQL live beside their logic).

Every statement that changes a job's state names the state it starts from in its
``WHERE`` clause; :data:`GUARDED_TRANSITIONS` lists those (from, to) pairs and the store
checks them against :data:`conveyor.job.TRANSITIONS` once, at import. Tables are
unqualified: the store's connections run with ``search_path`` set to its schema.
"""

from __future__ import annotations

from typing import Final

from conveyor.job import JobState
from conveyor.stores.postgres.rows import SELECT_LIST

S = JobState

_FENCE = "id = %s AND lease_token = %s AND state = 'processing'"
# An errors value that is not an array (damaged outside Conveyor) is replaced, so a
# failure or rescue is still recorded (see conveyor.stores.corrupt).
_APPEND_ERROR = (
    "errors = (CASE WHEN jsonb_typeof(errors) = 'array' THEN errors ELSE '[]'::jsonb END) "
    "|| jsonb_build_array(%s::jsonb)"
)
_DROP_LEASE = "lease_token = NULL, lease_expires_at = NULL"
_TOKEN = "replace(gen_random_uuid()::text, '-', '')"

NOTIFY: Final = "SELECT pg_notify(%s, '')"

# consumers -------------------------------------------------------------------------------
# The CTE is an optimisation fence: it walks the partial index jobs_claim in claim order
# and locks at most %s rows, skipping rows another claimer holds (SKIP LOCKED).
_CLAIM_SET = f"""
UPDATE jobs SET state = 'processing', attempt = jobs.attempt + 1, lease_token = {_TOKEN},
    lease_expires_at = %(expires)s, worker_id = %(worker)s, started_at = %(now)s,
    finished_at = NULL, heartbeat_at = %(now)s, cancel_requested = false
"""
CLAIM_QUEUE: Final = f"""
WITH picked AS (
    SELECT id FROM jobs
    WHERE state = 'pending' AND queue = %(queue)s
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
{_CLAIM_SET}
FROM picked WHERE jobs.id = picked.id
RETURNING {SELECT_LIST}
"""
CLAIM_ONE: Final = f"""{_CLAIM_SET}
WHERE id = %(id)s AND state = 'pending'
RETURNING {SELECT_LIST}
"""
QUARANTINE: Final = (
    "UPDATE jobs SET state = 'failed', failure_reason = 'corrupt', finished_at = %s, "
    f"{_DROP_LEASE}, cancel_requested = false, errors = %s::jsonb "
    "WHERE id = %s AND state = 'processing' RETURNING has_dependents"
)
"""A claimed row that cannot be decoded goes to the DLQ in the claim's transaction."""
HEARTBEAT_MANY: Final = """
UPDATE jobs SET lease_expires_at = %s, heartbeat_at = %s
FROM unnest(%s::text[], %s::text[]) AS held(id, token)
WHERE jobs.id = held.id AND jobs.lease_token = held.token AND jobs.state = 'processing'
RETURNING jobs.id, jobs.lease_token, jobs.cancel_requested
"""
COMPLETE: Final = (
    f"UPDATE jobs SET state = 'completed', result = %s, {_DROP_LEASE}, finished_at = %s, "
    f"cancel_requested = false WHERE {_FENCE} RETURNING has_dependents"
)
COMPLETE_MANY: Final = f"""
UPDATE jobs SET state = 'completed', result = done.result, {_DROP_LEASE},
    finished_at = %s, cancel_requested = false
FROM unnest(%s::text[], %s::text[], %s::bytea[]) AS done(id, token, result)
WHERE jobs.id = done.id AND jobs.lease_token = done.token AND jobs.state = 'processing'
RETURNING jobs.id, jobs.has_dependents
"""
FAIL: Final = (
    f"UPDATE jobs SET state = %s, {_APPEND_ERROR}, run_at = coalesce(%s, run_at), "
    f"{_DROP_LEASE}, finished_at = %s, failure_reason = %s, cancel_requested = false "
    f"WHERE {_FENCE} RETURNING has_dependents"
)
RELEASE: Final = (
    "UPDATE jobs SET state = %s, attempt = greatest(attempt - 1, 0), "
    f"run_at = coalesce(%s, run_at), {_DROP_LEASE}, worker_id = NULL, started_at = NULL, "
    f"heartbeat_at = NULL WHERE {_FENCE} RETURNING 1"
)
_CANCEL_SET = (
    f"UPDATE jobs SET state = 'cancelled', {_DROP_LEASE}, finished_at = %s, "
    "failure_reason = 'cancelled', cancel_requested = false"
)
FINISH_CANCELLED: Final = f"{_CANCEL_SET} WHERE {_FENCE} RETURNING has_dependents"

# maintenance ------------------------------------------------------------------------------
STAGE: Final = """
WITH due AS (
    SELECT id FROM jobs
    WHERE state IN ('scheduled', 'retrying') AND run_at <= %s
    ORDER BY run_at, id
    LIMIT %s
    FOR UPDATE SKIP LOCKED)
UPDATE jobs SET state = 'pending' FROM due
WHERE jobs.id = due.id AND jobs.state IN ('scheduled', 'retrying')
"""
NEXT_DUE: Final = "SELECT min(run_at) FROM jobs WHERE state IN ('scheduled', 'retrying')"
EXPIRED: Final = """
SELECT id, attempt, max_attempts, rescue_count, worker_id, started_at
FROM jobs
WHERE state = 'processing'
    AND lease_expires_at < coalesce(%s::float8, extract(epoch FROM clock_timestamp())::float8)
ORDER BY lease_expires_at, id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
RESCUE: Final = (
    f"UPDATE jobs SET state = %s, rescue_count = %s, {_APPEND_ERROR}, "
    f"run_at = coalesce(%s, run_at), {_DROP_LEASE}, finished_at = %s, failure_reason = %s, "
    "cancel_requested = false WHERE id = %s AND state = 'processing' RETURNING has_dependents"
)
_NO_LIVE_STEP: Final = """
  AND NOT EXISTS (SELECT 1 FROM jobs AS step
                  WHERE step.parent_id = jobs.id
                    AND step.state NOT IN ('completed', 'failed', 'cancelled'))
"""
"""A chain step reads its parent's result when it runs: the parent stays until then (the
``jobs_live_steps`` index answers it per candidate)."""
PRUNE_CANDIDATES: Final = f"""
SELECT id, unique_key, idempotency_key FROM jobs
WHERE state IN ('completed', 'failed', 'cancelled') AND state = %s AND finished_at <= %s
{_NO_LIVE_STEP}
ORDER BY finished_at
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
"""Locked, so a job retried or deleted meanwhile is not deleted by id afterwards (under
READ COMMITTED the later DELETE would match the revived row); a row another transaction
holds is skipped, so the pruner never waits: the next pass takes it if it is still old."""
PRUNE_COUNT: Final = f"""
SELECT COUNT(*) FROM jobs
WHERE state IN ('completed', 'failed', 'cancelled') AND state = %s AND finished_at <= %s
{_NO_LIVE_STEP}
"""
DROP_UNIQUE_OF: Final = """
DELETE FROM unique_keys AS u USING unnest(%s::text[], %s::text[]) AS d(key, job_id)
WHERE u.key = d.key AND u.job_id = d.job_id
"""
DROP_JOB_RECORDS: Final = "DELETE FROM records WHERE namespace = %s AND key = ANY(%s::text[])"
DROP_IDEMPOTENCY_OF: Final = """
DELETE FROM idempotency_keys AS k USING unnest(%s::text[], %s::text[]) AS d(key, job_id)
WHERE k.key = d.key AND k.job_id = d.job_id
"""
DELETE_JOBS: Final = "DELETE FROM jobs WHERE id = ANY(%s::text[])"
DELETE_EDGES_OF_MANY: Final = """
DELETE FROM job_dependencies
WHERE job_id = ANY(%(ids)s::text[]) OR depends_on = ANY(%(ids)s::text[])
"""
ORPHAN_UNIQUE: Final = """
DELETE FROM unique_keys
WHERE (expires_at IS NOT NULL AND expires_at <= %s)
   OR NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = unique_keys.job_id)
"""
ORPHAN_IDEMPOTENCY: Final = """
DELETE FROM idempotency_keys
WHERE expires_at <= %s
   OR NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = idempotency_keys.job_id)
"""
ORPHAN_EDGES: Final = """
DELETE FROM job_dependencies
WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_dependencies.job_id)
   OR NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_dependencies.depends_on)
"""

# management / read model ------------------------------------------------------------------
GET: Final = f"SELECT {SELECT_LIST} FROM jobs WHERE id = %s"
GET_MANY: Final = f"SELECT {SELECT_LIST} FROM jobs WHERE id = ANY(%s::text[])"
STATE_OF: Final = "SELECT state, has_dependents FROM jobs WHERE id = %s FOR UPDATE"
REQUEST_CANCEL: Final = (
    "UPDATE jobs SET cancel_requested = true WHERE id = %s AND state = 'processing'"
)
CANCEL: Final = f"{_CANCEL_SET} WHERE id = %s"
RETRY: Final = (
    "UPDATE jobs SET state = 'pending', attempt = 0, rescue_count = 0, run_at = %s, "
    f"failure_reason = NULL, finished_at = NULL, {_DROP_LEASE}, cancel_requested = false "
    "WHERE id = %s AND state IN ('failed', 'cancelled')"
)
DELETE_JOB: Final = "DELETE FROM jobs WHERE id = %s AND state <> 'processing'"
DELETE_EDGES_OF: Final = "DELETE FROM job_dependencies WHERE job_id = %(id)s OR depends_on = %(id)s"
COUNTS: Final = "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"
OLDEST_PENDING: Final = "SELECT queue, min(run_at) FROM jobs WHERE state = 'pending' GROUP BY queue"

# nodes -------------------------------------------------------------------------------------
UPSERT_NODE: Final = """
INSERT INTO nodes (id, started_at, heartbeat_at, data) VALUES (%s, %s, %s, %s::jsonb)
ON CONFLICT (id) DO UPDATE SET
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, data = excluded.data
"""
DELETE_NODE: Final = "DELETE FROM nodes WHERE id = %s"
LIST_NODES: Final = "SELECT data FROM nodes ORDER BY started_at, id"
PRUNE_NODES: Final = "DELETE FROM nodes WHERE heartbeat_at < %s"

GUARDED_TRANSITIONS: Final = (
    (S.PENDING, S.PROCESSING),  # CLAIM_QUEUE, CLAIM_ONE
    (S.PROCESSING, S.COMPLETED),  # COMPLETE, COMPLETE_MANY
    (S.PROCESSING, S.RETRYING),  # FAIL, RESCUE
    (S.PROCESSING, S.FAILED),  # FAIL, RESCUE
    (S.PROCESSING, S.PENDING),  # RELEASE
    (S.PROCESSING, S.SCHEDULED),  # RELEASE
    (S.PROCESSING, S.CANCELLED),  # FINISH_CANCELLED
    (S.SCHEDULED, S.PENDING),  # STAGE
    (S.RETRYING, S.PENDING),  # STAGE
)
