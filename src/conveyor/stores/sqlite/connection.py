"""Settings, DSN parsing, connection set-up and error translation for the SQLite store."""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

from conveyor.errors import ConfigurationError, StoreError, StoreUnavailable

SYNCHRONOUS_MODES: Final = ("normal", "full")
DSN_PARAMS: Final = {
    "synchronous": "normal|full",
    "busy_timeout": "<milliseconds, an integer >= 0>",
}
_DSN_FORMS = "sqlite:///relative/path.db or sqlite:////absolute/path.db"

# Errors that mean "the database cannot serve us right now" rather than a bug.
_UNAVAILABLE: Final = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_NOMEM,
    }
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the database is and how each connection is set up."""

    path: str
    synchronous: str = "normal"
    busy_timeout_ms: int = 5000

    @property
    def durability(self) -> str:
        """What a committed write survives, for ``conveyor info``."""
        if self.synchronous == "full":
            return "power-loss safe (WAL, synchronous=FULL)"
        return "process-crash safe (WAL, synchronous=NORMAL)"


def make_settings(path: str | os.PathLike[str], synchronous: str, busy_timeout_ms: int) -> Settings:
    """Validate the constructor arguments; the path becomes absolute (stable across chdir)."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path or path == ":memory:" or path.startswith("file:"):
        raise ConfigurationError(
            f"the sqlite store needs a database file path, got {path!r}; an in-memory "
            f"database cannot be shared between processes (use {_DSN_FORMS}, or memory://)"
        )
    mode = synchronous.lower() if isinstance(synchronous, str) else synchronous
    if mode not in SYNCHRONOUS_MODES:
        raise ConfigurationError(
            f"synchronous={synchronous!r} is not supported; use one of "
            f"{', '.join(SYNCHRONOUS_MODES)} (full also survives power loss)"
        )
    if isinstance(busy_timeout_ms, bool) or not isinstance(busy_timeout_ms, int):
        raise ConfigurationError(
            f"busy_timeout must be an integer of milliseconds, got {busy_timeout_ms!r}"
        )
    if busy_timeout_ms < 0:
        raise ConfigurationError(f"busy_timeout must be >= 0 milliseconds, got {busy_timeout_ms}")
    return Settings(os.path.abspath(path), str(mode), busy_timeout_ms)


def parse_dsn(dsn: str) -> Settings:
    """``sqlite:///rel.db`` / ``sqlite:////abs.db`` with ``synchronous`` and ``busy_timeout``.

    Follows SQLAlchemy: three slashes then a path relative to the working directory, four
    for an absolute path. Unknown parameters are refused, not ignored, so a typo cannot
    silently weaken durability.
    """
    parts = urlsplit(dsn)
    if parts.scheme.lower() != "sqlite":
        raise ConfigurationError(f"not a sqlite DSN: {dsn!r}; expected {_DSN_FORMS}")
    if parts.netloc:
        raise ConfigurationError(
            f"sqlite DSN {dsn!r} names a host ({parts.netloc!r}); expected {_DSN_FORMS}"
        )
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    if not path or path == ":memory:":
        raise ConfigurationError(
            f"sqlite DSN {dsn!r} has no database file; an in-memory database cannot be "
            f"shared between processes (use {_DSN_FORMS}, or memory://)"
        )
    synchronous = "normal"
    busy_timeout = 5000
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "synchronous":
            synchronous = value
        elif name == "busy_timeout":
            if not value.isdigit():
                raise ConfigurationError(
                    f"busy_timeout={value!r} in {dsn!r}: expected {DSN_PARAMS['busy_timeout']}"
                )
            busy_timeout = int(value)
        else:
            allowed = ", ".join(f"{k}={v}" for k, v in DSN_PARAMS.items())
            raise ConfigurationError(
                f"unknown sqlite DSN parameter {name!r} in {dsn!r}; allowed: {allowed}"
            )
    return make_settings(path, synchronous, busy_timeout)


def new_token() -> str:
    """A fresh lease token; registered as ``conveyor_token()`` so one UPDATE can mint many."""
    return os.urandom(16).hex()


def _lower(value: object) -> str | None:
    """Unicode-aware ``lower`` (SQLite's own only folds ASCII), for text search."""
    return value.lower() if isinstance(value, str) else None


AUTOCHECKPOINT_PAGES = 10_000
"""A commit that finds the WAL this long (~40 MiB) checkpoints it itself."""


def open_connection(settings: Settings) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL, the chosen ``synchronous`` and busy timeout.

    Writers issue ``BEGIN IMMEDIATE`` themselves, so a transaction never has to upgrade
    a read lock (the upgrade is where SQLite deadlocks and returns SQLITE_BUSY at once).
    """
    conn = sqlite3.connect(
        settings.path,
        timeout=settings.busy_timeout_ms / 1000.0,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=256,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {settings.busy_timeout_ms:d}")
        mode = _enable_wal(conn, settings.busy_timeout_ms / 1000.0)
        if mode != "wal":
            raise ConfigurationError(
                f"{settings.path}: could not switch the database to WAL mode (got {mode!r}); "
                "is it on a network file system?"
            )
        conn.execute(f"PRAGMA synchronous = {settings.synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys = OFF")
        # RETURNING and IN (subquery) build small ephemeral tables; on the default
        # temp_store=FILE each one costs temp-file system calls (5x the claim's cost).
        conn.execute("PRAGMA temp_store = MEMORY")
        # Checkpoints (and their fsync) run on a background thread in consuming
        # processes (see store.Checkpointer); this is only the safety net.
        conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES:d}")
        conn.create_function("conveyor_token", 0, new_token)
        conn.create_function("conveyor_lower", 1, _lower, deterministic=True)
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> str:
    """Switch to WAL (persistent in the file) and return the journal mode now in force.

    Switching a fresh file needs an exclusive lock, and SQLite reports SQLITE_BUSY for it
    at once instead of calling the busy handler; processes opening a new database together
    retry here, with backoff, for as long as the busy timeout allows.
    """
    mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    deadline = time.monotonic() + timeout
    delay = 0.001
    while mode != "wal":
        try:
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        if mode != "wal":
            break  # the file system cannot do WAL; the caller refuses it
    return mode


def translate(exc: sqlite3.Error, path: str) -> StoreError:
    """Map a sqlite3 error to Conveyor's tree: lock/disk/open trouble is StoreUnavailable."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    message = f"sqlite store {path}: {exc}"
    if primary in _UNAVAILABLE or (primary is None and isinstance(exc, sqlite3.OperationalError)):
        return StoreUnavailable(message)
    return StoreError(message)
