"""Versioned schema migrations for the SQLite store.

Migrations are the ``NNNN_name.sql`` files of the ``migrations`` package, read with
:mod:`importlib.resources` so they ship inside the wheel. Each one runs in its own
``BEGIN IMMEDIATE`` transaction together with its row in ``schema_migrations``, and
re-checks that row after taking the write lock: two processes that migrate the same
file at once serialise on the lock, and the second finds the work done.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable

from conveyor.errors import ConfigurationError
from conveyor.stores.sql import migration_files
from conveyor.stores.sql.migration_files import Migration

MIGRATIONS_PACKAGE = "conveyor.stores.sqlite.migrations"

_CREATE_LEDGER = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER NOT NULL PRIMARY KEY, applied_at REAL NOT NULL)"
)


def load_migrations(package: str = MIGRATIONS_PACKAGE) -> tuple[Migration, ...]:
    """The driver's migrations in version order (see :func:`migration_files.load`)."""
    return migration_files.load(package)


def latest_version(migrations: tuple[Migration, ...] | None = None) -> int:
    """The version the code expects the database to have."""
    steps = load_migrations() if migrations is None else migrations
    return steps[-1].version if steps else 0


def current_version(conn: sqlite3.Connection) -> int:
    """The database's schema version (0 for a new file); a read, never blocks on writers."""
    ledger = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if ledger is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: sqlite3.Connection, migrations: tuple[Migration, ...] | None = None) -> int:
    """Apply the missing migrations on ``conn`` (autocommit mode); return the new version.

    Cheap when up to date: one read of the ledger. Refuses a database whose schema is
    newer than this code, rather than writing to tables it does not understand.
    """
    steps = load_migrations() if migrations is None else migrations
    latest = latest_version(steps)
    version = current_version(conn)
    if version > latest:
        raise ConfigurationError(
            f"the database schema is version {version}, newer than this Conveyor "
            f"supports ({latest}); upgrade Conveyor"
        )
    if version == latest:
        return version
    _in_transaction(conn, lambda: conn.execute(_CREATE_LEDGER))
    for step in steps:
        if step.version > version:
            _in_transaction(conn, functools.partial(_apply, conn, step))
    return current_version(conn)


def _apply(conn: sqlite3.Connection, step: Migration) -> None:
    """Run one migration unless another process applied it while we waited for the lock."""
    done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (step.version,))
    if done.fetchone() is not None:
        return
    for statement in split_statements(step.sql):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
        (step.version, time.time()),
    )


def _in_transaction(conn: sqlite3.Connection, work: Callable[[], object]) -> None:
    """Run ``work()`` inside ``BEGIN IMMEDIATE``; commit, or roll back and re-raise."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        work()
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def split_statements(script: str) -> list[str]:
    """Cut a script into single statements.

    ``executescript`` would commit on its own, which breaks one-transaction-per-migration;
    :func:`sqlite3.complete_statement` knows where statements (triggers included) end.
    """
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not _only_comments(buffer):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer[:80]!r}")
    return statements


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
