"""Records (versioned compare-and-set values with expiry), in one statement each.

A create is ``INSERT … ON CONFLICT DO UPDATE … WHERE`` that replaces only an expired
row; a replace is an ``UPDATE`` whose ``WHERE`` names the expected version and
liveness. Each is atomic on its own (PostgreSQL re-checks the row it locked; SQLite runs
it inside the store's ``BEGIN IMMEDIATE``). Expiry is judged against ``now``, the store
clock, exactly like :func:`conveyor.stores.records.is_live`. Expired rows stay until
deleted or pruned, so versions are never reused.
"""

from __future__ import annotations

from typing import Any

from conveyor.stores.base import Record
from conveyor.stores.sql.dialect import Cursor
from conveyor.stores.sql.statements import Statements


def get_record(cur: Cursor, sql: Statements, namespace: str, key: str, now: float) -> Record | None:
    """The live record, or None."""
    row = cur.execute(sql.get_record, (namespace, key, now)).fetchone()
    return None if row is None else _record(namespace, key, row)


def put_record(
    cur: Cursor,
    sql: Statements,
    proposed: Record,
    expect_version: int | None,
    now: float,
) -> Record | None:
    """Create (``expect_version`` None) or replace at ``expect_version``; None on conflict."""
    namespace, key, value = proposed.namespace, proposed.key, proposed.value
    expiry = _expiry(proposed.expires_at)
    if expect_version is None:
        row = cur.execute(sql.create_record, (namespace, key, value, expiry, now)).fetchone()
    else:
        params = (value, expiry, namespace, key, expect_version, now)
        row = cur.execute(sql.replace_record, params).fetchone()
    return None if row is None else Record(namespace, key, value, int(row[0]), expiry)


def delete_record(
    cur: Cursor, sql: Statements, namespace: str, key: str, expect_version: int | None
) -> bool:
    """Delete the row, live or expired (only at ``expect_version`` when given)."""
    if expect_version is None:
        return cur.execute(sql.delete_record, (namespace, key)).rowcount > 0
    return cur.execute(sql.delete_record_at, (namespace, key, expect_version)).rowcount > 0


def list_records(
    cur: Cursor, sql: Statements, namespace: str, prefix: str, now: float
) -> list[Record]:
    """Live records of the namespace whose key starts with ``prefix``, by key."""
    params = (namespace, *sql.dialect.prefix_params(prefix), now)
    rows = cur.execute(sql.list_records, params).fetchall()
    return [_record(namespace, key, rest) for key, *rest in rows]


def drop_expired_records(cur: Cursor, sql: Statements, now: float) -> int:
    """Delete expired records (for prune); return how many."""
    return cur.execute(sql.drop_expired_records, (now,)).rowcount


def _record(namespace: str, key: str, row: Any) -> Record:
    value, version, expires_at = row
    return Record(namespace, key, bytes(value), int(version), _expiry(expires_at))


def _expiry(value: float | None) -> float | None:
    return None if value is None else float(value)
