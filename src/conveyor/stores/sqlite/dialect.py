"""The SQLite dialect of the shared SQL layer (:mod:`conveyor.stores.sql`).

Lists (ids, dependencies, errors) travel as JSON text read with ``json_each``; tags are
stored as ``",a,b,"`` so ``instr`` matches one whole tag. Statements name their index
(``INDEXED BY``: SQLite raises instead of silently sorting the whole backlog), and need
no row locks: every write runs in one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import orjson

from conveyor.job import JobError, Lease
from conveyor.stores.base import Completion
from conveyor.stores.sql.dialect import Cursor, Dialect, escape_like
from conveyor.stores.sql.statements import DROP_LEASE, FENCE, Statements
from conveyor.stores.sql_columns import JOB_COLUMNS

INLINE_PAYLOAD_MAX: Final = 2048
"""Payloads longer than this are stored in ``job_payloads`` (see migration 0003)."""
SELECT_LIST: Final = ", ".join(
    "coalesce((SELECT p.payload FROM job_payloads p WHERE p.job_id = jobs.id), jobs.payload)"
    if name == "payload"
    else f"jobs.{name}"
    for name in JOB_COLUMNS
)
"""Columns to read a whole Job (the payload from wherever it lives), for SELECT/RETURNING."""
CLAIM_QUEUE_PLAN: Final = """
SELECT rowid FROM jobs INDEXED BY jobs_claim
WHERE state = 'pending' AND queue = ?
ORDER BY priority DESC, run_at, id
LIMIT ?
"""
"""The claim's row choice: walks the partial index ``jobs_claim`` in claim order."""
HEARTBEAT: Final = (
    f"UPDATE jobs SET lease_expires_at = ?, heartbeat_at = ? WHERE {FENCE} "
    "RETURNING cancel_requested"
)
COMPLETE_CHUNK: Final = 300
"""Completions per statement in :func:`complete_many` (3 parameters each)."""


@functools.lru_cache(maxsize=COMPLETE_CHUNK)
def complete_many(count: int) -> str:
    """Completion of ``count`` (id, token, result) triples in one UPDATE … FROM statement.

    One statement per batch costs about half as much per job as one per completion. The
    text depends only on ``count``, so sqlite3's statement cache keeps it prepared.
    """
    values = ", ".join(["(?, ?, ?)"] * count)
    return (
        f"WITH done(id, token, result) AS (VALUES {values}) "
        f"UPDATE jobs SET state = 'completed', result = done.result, {DROP_LEASE}, "
        "finished_at = ?, cancel_requested = false FROM done "
        "WHERE jobs.id = done.id AND jobs.lease_token = done.token "
        "AND jobs.state = 'processing' "
        "RETURNING jobs.id, jobs.has_dependents"
    )


class SQLiteDialect(Dialect):
    """SQLite: JSON-text lists, ``INDEXED BY``, no row locks (one writer at a time)."""

    name = "sqlite"
    placeholder = "?"
    token = "conveyor_token()"
    json_param = "?"
    # An errors value that is not a JSON array (damaged outside Conveyor) is replaced, so a
    # failure or rescue is still recorded (see conveyor.stores.corrupt).
    append_error = (
        "errors = json_insert(CASE WHEN NOT json_valid(errors) THEN '[]' "
        "WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]', json(?))"
    )
    skip_locked = ""
    row_lock = ""
    share_lock = ""
    dependents_lock = ""
    indexed_by = True
    states_checked = False
    complete_chunk = COMPLETE_CHUNK
    inline_payload_max = INLINE_PAYLOAD_MAX
    precheck_ids = False
    integrity_error = sqlite3.IntegrityError
    select_list = SELECT_LIST

    def id_list(self, column: str) -> str:
        return f"{column} IN (SELECT value FROM json_each(?))"

    def claim_queue(self, claim_set: str) -> str:
        return f"{claim_set} WHERE rowid IN ({CLAIM_QUEUE_PLAN}) RETURNING {SELECT_LIST}"

    def claim_queue_params(
        self, claim_set: tuple[Any, ...], queue: str, limit: int
    ) -> tuple[Any, ...]:
        return (*claim_set, queue, limit)

    def stage(self) -> str:
        return (
            "UPDATE jobs SET state = 'pending' WHERE rowid IN ("
            "SELECT rowid FROM jobs INDEXED BY jobs_due "
            "WHERE state IN ('scheduled', 'retrying') AND run_at <= ? "
            "ORDER BY run_at, id LIMIT ?)"
        )

    def expired(self) -> str:
        return (
            "SELECT id, attempt, max_attempts, rescue_count, worker_id, started_at "
            "FROM jobs INDEXED BY jobs_lease "
            "WHERE state = 'processing' AND lease_expires_at < ? "
            "ORDER BY lease_expires_at, id LIMIT ?"
        )

    def record_prefix(self) -> tuple[str, str]:
        # Compared literally (LIKE's % and _ are wildcards); ``key >= ?`` lets the primary
        # key skip to the first candidate.
        return "key >= ? AND substr(key, 1, ?) = ?", "key"

    def prefix_params(self, prefix: str) -> tuple[Any, ...]:
        return prefix, len(prefix), prefix

    def encode_ids(self, ids: Sequence[str]) -> str | None:
        return orjson.dumps(list(ids)).decode() if ids else None

    def encode_tags(self, tags: Sequence[str]) -> str | None:
        """``(a, b)`` -> ``",a,b,"`` so ``instr(tags, ',a,')`` matches one whole tag."""
        return "," + ",".join(tags) + "," if tags else None

    def decode_ids(self, value: Any) -> tuple[str, ...]:
        return tuple(orjson.loads(value)) if value else ()

    def decode_tags(self, value: Any) -> tuple[str, ...]:
        return tuple(value[1:-1].split(",")) if value else ()

    def decode_errors(self, value: Any) -> tuple[JobError, ...]:
        if not value:
            return ()
        return tuple(JobError.from_dict(item) for item in orjson.loads(value))

    def renew(
        self, cur: Cursor, leases: Sequence[Lease], now: float, expires: float
    ) -> dict[tuple[str, str], bool]:
        held: dict[tuple[str, str], bool] = {}
        for lease in leases:
            row = cur.execute(HEARTBEAT, (expires, now, lease.job_id, lease.token)).fetchall()
            if row:
                held[(lease.job_id, lease.token)] = bool(row[0][0])
        return held

    def complete_batch(
        self, cur: Cursor, chunk: Sequence[Completion], now: float
    ) -> dict[str, bool]:
        params: list[Any] = []
        for done in chunk:
            params += (done.lease.job_id, done.lease.token, done.result)
        params.append(now)
        return dict(cur.execute(complete_many(len(chunk)), params).fetchall())

    def drop_key_holds(self, cur: Cursor, table: str, holds: Sequence[tuple[str, str]]) -> int:
        if not holds:
            return 0
        statement = f"DELETE FROM {table} WHERE key = ? AND job_id = ?"
        cur.executemany(statement, holds)
        return cur.rowcount

    def lock_keys(self, cur: Cursor, keys: Sequence[str]) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already admits one writer at a time."""

    def tag_filter(self, tag: str) -> tuple[str, list[Any]]:
        if "," in tag:
            return "false", []  # no stored tag contains a comma
        return "instr(tags, ?) > 0", [f",{tag},"]

    def text_filter(self, text: str) -> tuple[str, list[Any]]:
        like = "conveyor_lower({}) LIKE ? ESCAPE '\\'"
        fields = ("id", "task", "queue", "failure_reason")
        # CASEs keep a damaged errors value (not JSON, not objects) from failing the search.
        message = (
            "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(jobs.errors) "
            "THEN jobs.errors END) AS e WHERE "
            + like.format("CASE WHEN e.type = 'object' THEN json_extract(e.value, '$.message') END")
            + ")"
        )
        clause = "(" + " OR ".join([*(like.format(f) for f in fields), message]) + ")"
        pattern = "%" + escape_like(text.lower()) + "%"
        return clause, [pattern] * (len(fields) + 1)


SQLITE: Final = SQLiteDialect()
SQLITE_SQL: Final = Statements(SQLITE)
"""The shared statements, built once for SQLite."""
