"""Records (versioned compare-and-set values with expiry) in the SQLite store.

Each function runs inside the caller's transaction: writes inside the store's
``BEGIN IMMEDIATE`` (so the read-then-write of a compare-and-set is atomic across
processes), reads inside one read transaction. Expiry is judged against ``now``, the
store clock, exactly like :func:`conveyor.stores.records.is_live`.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from conveyor.stores.base import Record
from conveyor.stores.records import is_live

_LIVE = "(expires_at IS NULL OR expires_at > ?)"

GET: Final = f"""
SELECT key, value, version, expires_at FROM records
WHERE namespace = ? AND key = ? AND {_LIVE}
"""
_CURRENT: Final = "SELECT version, expires_at FROM records WHERE namespace = ? AND key = ?"
_UPSERT: Final = """
INSERT INTO records (namespace, key, value, version, expires_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (namespace, key) DO UPDATE SET
    value = excluded.value, version = excluded.version, expires_at = excluded.expires_at
"""
_DELETE: Final = """
DELETE FROM records WHERE namespace = ?1 AND key = ?2 AND (?3 IS NULL OR version = ?3)
"""
# The prefix is compared literally (no LIKE, whose % and _ are wildcards); ``key >= ?``
# lets the primary key skip to the first candidate.
LIST: Final = f"""
SELECT key, value, version, expires_at FROM records
WHERE namespace = ? AND key >= ? AND substr(key, 1, ?) = ? AND {_LIVE}
ORDER BY key
"""
_DROP_EXPIRED: Final = "DELETE FROM records WHERE expires_at <= ?"


def _record(namespace: str, row: Any) -> Record:
    key, value, version, expires_at = row
    expiry = None if expires_at is None else float(expires_at)
    return Record(namespace, key, bytes(value), int(version), expiry)


def get_record(conn: sqlite3.Connection, namespace: str, key: str, now: float) -> Record | None:
    """The live record, or None."""
    row = conn.execute(GET, (namespace, key, now)).fetchone()
    return None if row is None else _record(namespace, row)


def put_record(
    conn: sqlite3.Connection,
    namespace: str,
    key: str,
    value: bytes,
    expect_version: int | None,
    expires_at: float | None,
    now: float,
) -> Record | None:
    """Compare-and-set (see :meth:`conveyor.stores.base.Store.put_record`)."""
    row = conn.execute(_CURRENT, (namespace, key)).fetchone()
    live = row is not None and is_live(row[1], now)
    if expect_version is None and live:
        return None
    if expect_version is not None and (not live or row[0] != expect_version):
        return None
    version = (int(row[0]) if row is not None else 0) + 1
    expiry = None if expires_at is None else float(expires_at)
    conn.execute(_UPSERT, (namespace, key, value, version, expiry))
    return Record(namespace, key, value, version, expiry)


def delete_record(
    conn: sqlite3.Connection, namespace: str, key: str, expect_version: int | None
) -> bool:
    """Delete the row, live or expired (only at ``expect_version`` when given)."""
    return conn.execute(_DELETE, (namespace, key, expect_version)).rowcount > 0


def list_records(conn: sqlite3.Connection, namespace: str, prefix: str, now: float) -> list[Record]:
    """Live records of the namespace whose key starts with ``prefix``, by key."""
    rows = conn.execute(LIST, (namespace, prefix, len(prefix), prefix, now)).fetchall()
    return [_record(namespace, row) for row in rows]


def drop_expired(conn: sqlite3.Connection, now: float) -> int:
    """Delete expired records (for prune); return how many."""
    return conn.execute(_DROP_EXPIRED, (now,)).rowcount
