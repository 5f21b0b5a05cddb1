"""Versioned schema migrations for the PostgreSQL store.

Migrations are the ``NNNN_name.sql`` files of the ``migrations`` package. All of them
run in one transaction that first takes ``pg_advisory_xact_lock`` on the schema's name,
so concurrent migrators (several workers starting at once) serialise: the second one
finds the ledger up to date and does nothing. A schema newer than the code is refused.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg import Connection, sql

from conveyor.errors import ConfigurationError
from conveyor.stores.sql import migration_files

MIGRATIONS_PACKAGE = "conveyor.stores.postgres.migrations"

_CREATE_LEDGER = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version integer NOT NULL PRIMARY KEY, applied_at double precision NOT NULL)"
)


def latest_version() -> int:
    """The version the code expects the database to have."""
    steps = migration_files.load(MIGRATIONS_PACKAGE)
    return steps[-1].version if steps else 0


def current_version(conn: Connection[Any]) -> int:
    """The schema's version (0 when it has no ledger yet)."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: Connection[Any], schema: str) -> int:
    """Apply the missing migrations on ``conn`` (search_path = ``schema``); return the version.

    Commits on success; cheap when up to date (a lock and one read of the ledger).
    """
    steps = migration_files.load(MIGRATIONS_PACKAGE)
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"conveyor:migrate:{schema}",),
        )
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(_CREATE_LEDGER)
        version = current_version(conn)
        latest = steps[-1].version if steps else 0
        if version > latest:
            raise ConfigurationError(
                f"PostgreSQL schema {schema!r} is at version {version}, newer than this "
                f"Conveyor ({latest}); upgrade Conveyor"
            )
        for step in steps:
            if step.version <= version:
                continue
            conn.execute(step.sql.encode())  # no parameters: several statements allowed
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                (step.version, time.time()),
            )
            version = step.version
    return version
