"""The PostgreSQL dialect of the shared SQL layer (:mod:`conveyor.stores.sql`).

Lists travel as ``text[]`` (psycopg adapts Python lists), ``errors`` is ``jsonb`` and
``tags`` a ``text[]``. Under READ COMMITTED with many writers, claim-like reads take
``FOR UPDATE SKIP LOCKED`` (concurrent claimers never wait on each other's rows), rows
read before a change are locked, and enqueue serialises on transaction-scoped advisory
locks of its keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg

from conveyor.job import JobError, Lease
from conveyor.stores.base import Completion
from conveyor.stores.sql.dialect import Cursor, Dialect, escape_like
from conveyor.stores.sql.statements import DROP_LEASE, Statements
from conveyor.stores.sql_columns import JOB_COLUMNS

NOTIFY: Final = "SELECT pg_notify(%s, '')"
HEARTBEAT_MANY: Final = """
UPDATE jobs SET lease_expires_at = %s, heartbeat_at = %s
FROM unnest(%s::text[], %s::text[]) AS held(id, token)
WHERE jobs.id = held.id AND jobs.lease_token = held.token AND jobs.state = 'processing'
RETURNING jobs.id, jobs.lease_token, jobs.cancel_requested
"""
COMPLETE_MANY: Final = f"""
UPDATE jobs SET state = 'completed', result = done.result, {DROP_LEASE},
    finished_at = %s, cancel_requested = false
FROM unnest(%s::text[], %s::text[], %s::bytea[]) AS done(id, token, result)
WHERE jobs.id = done.id AND jobs.lease_token = done.token AND jobs.state = 'processing'
RETURNING jobs.id, jobs.has_dependents
"""
_LOCK_KEYS: Final = (
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM unnest(%s::text[]) AS k ORDER BY hashtextextended(k, 0)"
)
_DROP_HOLDS: Final = {
    table: f"DELETE FROM {table} AS t USING unnest(%s::text[], %s::text[]) AS d(key, job_id) "
    "WHERE t.key = d.key AND t.job_id = d.job_id"
    for table in ("unique_keys", "idempotency_keys")
}


class PostgresDialect(Dialect):
    """PostgreSQL: arrays and jsonb, ``SKIP LOCKED`` claims, advisory key locks."""

    name = "postgresql"
    placeholder = "%s"
    token = "replace(gen_random_uuid()::text, '-', '')"
    json_param = "?::jsonb"
    # An errors value that is not an array (damaged outside Conveyor) is replaced, so a
    # failure or rescue is still recorded (see conveyor.stores.corrupt).
    append_error = (
        "errors = (CASE WHEN jsonb_typeof(errors) = 'array' THEN errors ELSE '[]'::jsonb END) "
        "|| jsonb_build_array(?::jsonb)"
    )
    skip_locked = "FOR UPDATE SKIP LOCKED"
    row_lock = "FOR UPDATE"
    share_lock = "ORDER BY id FOR SHARE"
    dependents_lock = "ORDER BY j.id FOR UPDATE OF j"
    indexed_by = False
    states_checked = True
    complete_chunk = 1 << 30  # one statement per batch: arrays have no parameter limit
    inline_payload_max = None
    precheck_ids = True
    integrity_error = psycopg.errors.UniqueViolation
    select_list = ", ".join(f"jobs.{name}" for name in JOB_COLUMNS)

    def id_list(self, column: str) -> str:
        return f"{column} = ANY(?::text[])"

    def claim_queue(self, claim_set: str) -> str:
        # The CTE is an optimisation fence: it walks the partial index jobs_claim in claim
        # order and locks at most ``limit`` rows, skipping rows another claimer holds.
        return (
            "WITH picked AS (SELECT id FROM jobs WHERE state = 'pending' AND queue = ? "
            "ORDER BY priority DESC, run_at, id LIMIT ? FOR UPDATE SKIP LOCKED) "
            f"{claim_set} FROM picked WHERE jobs.id = picked.id RETURNING {self.select_list}"
        )

    def claim_queue_params(
        self, claim_set: tuple[Any, ...], queue: str, limit: int
    ) -> tuple[Any, ...]:
        return (queue, limit, *claim_set)

    def stage(self) -> str:
        return (
            "WITH due AS (SELECT id FROM jobs WHERE state IN ('scheduled', 'retrying') "
            "AND run_at <= ? ORDER BY run_at, id LIMIT ? FOR UPDATE SKIP LOCKED) "
            "UPDATE jobs SET state = 'pending' FROM due "
            "WHERE jobs.id = due.id AND jobs.state IN ('scheduled', 'retrying')"
        )

    def expired(self) -> str:
        return (
            "SELECT id, attempt, max_attempts, rescue_count, worker_id, started_at FROM jobs "
            "WHERE state = 'processing' AND lease_expires_at < "
            "coalesce(?::float8, extract(epoch FROM clock_timestamp())::float8) "
            "ORDER BY lease_expires_at, id LIMIT ? FOR UPDATE SKIP LOCKED"
        )

    def record_prefix(self) -> tuple[str, str]:
        # starts_with: a literal prefix (LIKE would treat % and _ as wildcards).
        return "starts_with(key, ?)", 'key COLLATE "C"'

    def prefix_params(self, prefix: str) -> tuple[Any, ...]:
        return (prefix,)

    def encode_ids(self, ids: Sequence[str]) -> list[str] | None:
        return list(ids) or None

    def encode_tags(self, tags: Sequence[str]) -> list[str] | None:
        """Tags as a ``text[]`` value (None when there are none)."""
        return list(tags) if tags else None

    def decode_ids(self, value: Any) -> tuple[str, ...]:
        return tuple(value) if value else ()

    def decode_tags(self, value: Any) -> tuple[str, ...]:
        return tuple(value) if value else ()

    def decode_errors(self, value: Any) -> tuple[JobError, ...]:
        if not value:
            return ()
        if not isinstance(value, list):
            raise TypeError(f"expected a JSON array, got {type(value).__name__}")
        return tuple(JobError.from_dict(item) for item in value)

    def renew(
        self, cur: Cursor, leases: Sequence[Lease], now: float, expires: float
    ) -> dict[tuple[str, str], bool]:
        ids = [lease.job_id for lease in leases]
        tokens = [lease.token for lease in leases]
        rows = cur.execute(HEARTBEAT_MANY, (expires, now, ids, tokens)).fetchall()
        return {(job_id, token): bool(cancel) for job_id, token, cancel in rows}

    def complete_batch(
        self, cur: Cursor, chunk: Sequence[Completion], now: float
    ) -> dict[str, bool]:
        ids = [done.lease.job_id for done in chunk]
        tokens = [done.lease.token for done in chunk]
        results = [done.result for done in chunk]
        return dict(cur.execute(COMPLETE_MANY, (now, ids, tokens, results)).fetchall())

    def drop_key_holds(self, cur: Cursor, table: str, holds: Sequence[tuple[str, str]]) -> int:
        if not holds:
            return 0
        keys, owners = zip(*holds, strict=True)
        return cur.execute(_DROP_HOLDS[table], (list(keys), list(owners))).rowcount

    def lock_keys(self, cur: Cursor, keys: Sequence[str]) -> None:
        cur.execute(_LOCK_KEYS, (list(keys),))

    def tag_filter(self, tag: str) -> tuple[str, list[Any]]:
        return "tags @> ARRAY[?::text]", [tag]

    def text_filter(self, text: str) -> tuple[str, list[Any]]:
        like = "{} ILIKE ? ESCAPE '\\'"
        fields = ("id", "task", "queue", "failure_reason")
        message = (
            "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(jobs.errors) "
            "= 'array' THEN jobs.errors ELSE '[]'::jsonb END) "
            "AS e WHERE " + like.format("e ->> 'message'") + ")"
        )
        clause = "(" + " OR ".join([*(like.format(f) for f in fields), message]) + ")"
        pattern = "%" + escape_like(text) + "%"
        return clause, [pattern] * (len(fields) + 1)


POSTGRES: Final = PostgresDialect()
POSTGRES_SQL: Final = Statements(POSTGRES)
"""The shared statements, built once for PostgreSQL."""
