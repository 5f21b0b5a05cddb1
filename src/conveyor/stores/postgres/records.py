"""Records in PostgreSQL: versioned compare-and-set values with expiry.

Each write is a single statement, so compare-and-set is atomic across processes
without explicit locks: a create is ``INSERT … ON CONFLICT DO UPDATE … WHERE`` (the
conflicting row is locked and its expiry re-checked), a replace is an ``UPDATE`` whose
``WHERE`` names the expected version (re-evaluated on the latest row version under READ
COMMITTED). Expiry is judged against the ``now`` the store passes in (its clock), never
the database's. Expired rows stay until deleted or pruned, so versions are never reused.
"""

from __future__ import annotations

from typing import Any, Final

from psycopg import Cursor

from conveyor.stores.base import Record

_LIVE = "(expires_at IS NULL OR expires_at > %(now)s)"

GET: Final = f"""
SELECT value, version, expires_at FROM records
WHERE namespace = %(ns)s AND key = %(key)s AND {_LIVE}
"""
CREATE: Final = """
INSERT INTO records AS r (namespace, key, value, version, expires_at)
VALUES (%(ns)s, %(key)s, %(value)s, 1, %(expires)s)
ON CONFLICT (namespace, key) DO UPDATE
    SET value = EXCLUDED.value, version = r.version + 1, expires_at = EXCLUDED.expires_at
    WHERE r.expires_at IS NOT NULL AND r.expires_at <= %(now)s
RETURNING version
"""
REPLACE: Final = f"""
UPDATE records SET value = %(value)s, version = version + 1, expires_at = %(expires)s
WHERE namespace = %(ns)s AND key = %(key)s AND version = %(version)s AND {_LIVE}
RETURNING version
"""
DELETE: Final = "DELETE FROM records WHERE namespace = %(ns)s AND key = %(key)s"
DELETE_AT: Final = f"{DELETE} AND version = %(version)s"
# starts_with: a literal prefix (LIKE would treat % and _ as wildcards).
LIST: Final = f"""
SELECT key, value, version, expires_at FROM records
WHERE namespace = %(ns)s AND starts_with(key, %(prefix)s) AND {_LIVE}
ORDER BY key COLLATE "C"
"""
DROP_EXPIRED: Final = "DELETE FROM records WHERE expires_at <= %s"


def get_record(cur: Cursor[Any], namespace: str, key: str, now: float) -> Record | None:
    """The live record, or None."""
    row = cur.execute(GET, {"ns": namespace, "key": key, "now": now}).fetchone()
    if row is None:
        return None
    return Record(namespace, key, bytes(row[0]), int(row[1]), _expiry(row[2]))


def put_record(
    cur: Cursor[Any],
    namespace: str,
    key: str,
    value: bytes,
    expect_version: int | None,
    expires_at: float | None,
    now: float,
) -> Record | None:
    """Create (``expect_version`` None) or replace at ``expect_version``; None on conflict."""
    expiry = _expiry(expires_at)
    params = {
        "ns": namespace,
        "key": key,
        "value": value,
        "expires": expiry,
        "now": now,
        "version": expect_version,
    }
    row = cur.execute(CREATE if expect_version is None else REPLACE, params).fetchone()
    if row is None:
        return None
    return Record(namespace, key, value, int(row[0]), expiry)


def delete_record(cur: Cursor[Any], namespace: str, key: str, expect_version: int | None) -> bool:
    """Delete the row, live or expired (only at ``expect_version`` when given)."""
    params = {"ns": namespace, "key": key, "version": expect_version}
    return cur.execute(DELETE if expect_version is None else DELETE_AT, params).rowcount > 0


def list_records(cur: Cursor[Any], namespace: str, prefix: str, now: float) -> list[Record]:
    """Live records of the namespace whose key starts with ``prefix``, by key."""
    rows = cur.execute(LIST, {"ns": namespace, "prefix": prefix, "now": now}).fetchall()
    return [Record(namespace, r[0], bytes(r[1]), int(r[2]), _expiry(r[3])) for r in rows]


def drop_expired_records(cur: Cursor[Any], now: float) -> int:
    """Delete expired records (for prune); return how many."""
    return cur.execute(DROP_EXPIRED, (now,)).rowcount


def _expiry(value: float | None) -> float | None:
    return None if value is None else float(value)
