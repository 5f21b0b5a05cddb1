"""The SQLite store: the embedded default driver, shared by every process on one host.

Each thread gets its own connection, opened lazily and re-opened after a fork (a child
never touches its parent's connection). Every write is one ``BEGIN IMMEDIATE``
transaction, so writers queue on SQLite's lock instead of deadlocking on a lock
upgrade. Semantics follow :mod:`conveyor.stores.base` and the reference
:class:`~conveyor.stores.memory.MemoryStore`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Concatenate, ParamSpec, TypeVar

from conveyor.clock import Clock, SystemClock
from conveyor.errors import ConfigurationError, StoreUnavailable
from conveyor.job import EnqueueResult, NewJob
from conveyor.stores.base import StoreInfo
from conveyor.stores.sql import forks
from conveyor.stores.sql.dialect import Cursor
from conveyor.stores.sql.enqueue import enqueue_batch
from conveyor.stores.sql.store import SqlStore, any_pending
from conveyor.stores.sqlite import schema
from conveyor.stores.sqlite.checkpoint import Checkpointer
from conveyor.stores.sqlite.connection import (
    Settings,
    make_settings,
    open_connection,
    parse_dsn,
    translate,
)
from conveyor.stores.sqlite.dialect import SQLITE_SQL
from conveyor.stores.sqlite.gate import WriterGate
from conveyor.stores.sqlite.lease_clock import LeaseClock, establish_base
from conveyor.stores.wakeup import WakeChannel

P = ParamSpec("P")
T = TypeVar("T")

_SAVEPOINT = "conveyor_enqueue"


class SQLiteStore(SqlStore):
    """A Store in one SQLite database file (WAL), safe for many processes and threads."""

    name = "sqlite"
    sql = SQLITE_SQL

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        synchronous: str = "normal",
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.settings: Settings = make_settings(path, synchronous, busy_timeout_ms)
        self.path = self.settings.path
        self.clock: Clock = clock or SystemClock()
        self._lease_clock = LeaseClock(self.clock, self._establish_lease_base)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._generation = 0
        self._schema_version: int | None = None
        self._wake = WakeChannel(self.path)
        self._gate = WriterGate(self.path)
        self._checkpointer: Checkpointer | None = None
        forks.track(self)

    @classmethod
    def from_dsn(cls, dsn: str, clock: Clock | None = None) -> SQLiteStore:
        """Open ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (see ``parse_dsn``)."""
        settings = parse_dsn(dsn)
        return cls(
            settings.path,
            clock=clock,
            synchronous=settings.synchronous,
            busy_timeout_ms=settings.busy_timeout_ms,
        )

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self.settings.synchronous!r})"

    # connections ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema migrated) on first use."""
        held = getattr(self._local, "held", None)
        if held is not None and held[1] == self._generation and held[0] == os.getpid():
            conn: sqlite3.Connection = held[2]
            return conn
        return self._open()

    def _open(self) -> sqlite3.Connection:
        pid = os.getpid()
        with self._lock:
            self._drop_inherited(pid)
            generation = self._generation
        try:
            conn = open_connection(self.settings)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        if self._schema_version is None:
            try:
                self._schema_version = schema.migrate(conn)
            except BaseException as exc:
                conn.close()
                if isinstance(exc, sqlite3.Error):
                    raise translate(exc, self.path) from exc
                raise
        with self._lock:
            self._connections.append((pid, conn))
        self._local.held = (pid, generation, conn)
        return conn

    def _drop_inherited(self, pid: int) -> None:
        """Set aside connections opened by another process (we are a forked child)."""
        if any(owner != pid for owner, _ in self._connections):
            forks.retire(*(c for owner, c in self._connections if owner != pid))
            self._connections = [(o, c) for o, c in self._connections if o == pid]

    def _after_fork(self) -> None:
        """In a fresh child: new locks, and every inherited connection retired."""
        self._lock = threading.Lock()
        self._generation += 1
        self._drop_inherited(os.getpid())
        self._wake.after_fork()

    def _write(
        self, work: Callable[Concatenate[Cursor, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``work(cursor, …)`` in one ``BEGIN IMMEDIATE`` transaction."""
        conn = self._conn()
        with self._gate.hold():
            return self._transaction(conn, work, *args, **kwargs)

    def _write_waking(
        self,
        wakes: Callable[[T], bool],
        work: Callable[Concatenate[Cursor, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """:meth:`_write`, then wake waiting workers if ``wakes(result)`` (after the commit,
        so a woken worker finds the jobs)."""
        result = self._write(work, *args, **kwargs)
        if wakes(result):
            self._wake.notify()
        return result

    def _transaction(
        self,
        conn: sqlite3.Connection,
        work: Callable[Concatenate[Cursor, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        try:
            if conn.in_transaction:  # left open by an interrupted call
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        try:
            result = work(conn.cursor(), *args, **kwargs)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            raise translate(exc, self.path) from exc
        except BaseException:
            _rollback(conn)
            raise
        return result

    def _read(
        self, work: Callable[Concatenate[Cursor, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``work(cursor, …)`` in one read transaction (one consistent snapshot)."""
        conn = self._conn()
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("BEGIN")
            try:
                return work(conn.cursor(), *args, **kwargs)
            finally:
                _rollback(conn)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    def _lease_time(self, lease_now: float | None, now: float) -> float:
        """Lease time (see :mod:`.lease_clock`); an injected time is taken as is."""
        return self._lease_clock.now() if lease_now is None else lease_now

    def _establish_lease_base(self, key: str, candidate: float) -> float:
        """The boot's lease base, shared through the database by every process."""
        return self._write(establish_base, key, candidate)

    # lifecycle -----------------------------------------------------------------------------
    def migrate(self) -> int:
        """Bring the schema up to date (also done on first use); return its version."""
        conn = self._conn()
        try:
            self._schema_version = schema.migrate(conn)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        return self._schema_version

    def close(self) -> None:
        """Close this process's connections and wake-up sockets; safe to call twice.

        The store stays usable: the next call opens a new connection.
        """
        pid = os.getpid()
        with self._lock:
            connections, self._connections = self._connections, []
            self._generation += 1
        for owner, conn in connections:
            if owner == pid:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            else:
                forks.retire(conn)
        self._local.held = None
        self._wake.close()
        self._gate.close()
        if self._checkpointer is not None and self._checkpointer.pid == pid:
            self._checkpointer.stop()
        self._checkpointer = None

    def info(self) -> StoreInfo:
        """Driver, file, the durability level actually in force, and the schema version."""
        version = self.migrate()
        conn = self._conn()
        try:
            journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            sync = int(conn.execute("PRAGMA synchronous").fetchone()[0])
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        sync_name = {0: "off", 1: "normal", 2: "full", 3: "extra"}.get(sync, str(sync))
        if journal == "wal" and sync >= 2:
            durability = "power-loss safe (WAL, synchronous=FULL)"
        elif journal == "wal" and sync == 1:
            durability = "process-crash safe (WAL, synchronous=NORMAL)"
        else:
            durability = f"reduced (journal_mode={journal}, synchronous={sync_name.upper()})"
        details = {
            "journal_mode": journal,
            "synchronous": sync_name,
            "busy_timeout_ms": str(self.settings.busy_timeout_ms),
            "wake_directory": self._wake.directory,
        }
        return StoreInfo("sqlite", self.path, durability, version, details)

    def notify(self) -> None:
        """Wake waiting workers now; call after committing a transactional enqueue."""
        self._wake.notify()

    # producers -----------------------------------------------------------------------------
    def _enqueue_joined(
        self, connection: object, jobs: Sequence[NewJob], now: float
    ) -> list[EnqueueResult]:
        """Enqueue inside the caller's transaction on ``connection``.

        A joined transaction cannot tell us when it commits, so workers see those jobs at
        their next poll unless the caller calls :meth:`notify` after committing. If the
        connection is in autocommit mode the batch is committed here and workers are woken.
        """
        results, committed = self._enqueue_on(connection, jobs, now)
        if committed and any_pending(results):
            self._wake.notify()
        return results

    def _enqueue_on(
        self, connection: object, jobs: Sequence[NewJob], now: float
    ) -> tuple[list[EnqueueResult], bool]:
        if not isinstance(connection, sqlite3.Connection):
            raise ConfigurationError(
                "connection= must be a sqlite3.Connection to the store's database file, "
                f"got {type(connection).__name__}"
            )
        self._conn()  # the schema must exist before we write through someone else's handle
        text_factory = connection.text_factory
        try:
            connection.text_factory = str
            cur = connection.cursor()
            cur.row_factory = None
            self._check_same_database(cur)
            # Outside a transaction we open one: in autocommit mode we also commit it;
            # under legacy transaction control sqlite3 would have opened one at our first
            # INSERT anyway, and the caller commits it. IMMEDIATE: no lock upgrade later.
            began = not connection.in_transaction
            own = began and _autocommit(connection)
            if began:
                cur.execute("BEGIN IMMEDIATE")
            try:
                results = _enqueue_in_savepoint(cur, jobs, now)
                if own:
                    cur.execute("COMMIT")
            except BaseException:
                if began and connection.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        cur.execute("ROLLBACK")
                raise
            return results, own
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        finally:
            connection.text_factory = text_factory

    def _check_same_database(self, cur: sqlite3.Cursor) -> None:
        main = next((row[2] for row in cur.execute("PRAGMA database_list") if row[1] == "main"), "")
        if not main or not _same_file(main, self.path):
            raise ConfigurationError(
                f"connection= is open on {main or 'an in-memory database'!s}, not on the "
                f"store's database {self.path}; open it with sqlite3.connect({self.path!r})"
            )

    # wake-ups ----------------------------------------------------------------------------
    def _wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block on the wake-up socket until an enqueue notifies or ``timeout`` passes.

        Any new work wakes every waiter whatever its queues; the claim sorts it out.
        The first wait in a process also starts its background checkpointer.
        """
        if self._checkpointer is None or self._checkpointer.pid != os.getpid():
            self._checkpointer = Checkpointer(lambda: open_connection(self.settings))
        try:
            return self._wake.wait(timeout)
        except OSError as exc:
            raise StoreUnavailable(
                f"sqlite store {self.path}: wake-up channel in {self._wake.directory}: {exc}"
            ) from exc


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _enqueue_in_savepoint(
    cur: sqlite3.Cursor, jobs: Sequence[NewJob], now: float
) -> list[EnqueueResult]:
    """Enqueue inside a savepoint, so a refused batch undoes only its own inserts."""
    cur.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        results = enqueue_batch(cur, SQLITE_SQL, jobs, now)
    except BaseException:
        cur.execute(f"ROLLBACK TO {_SAVEPOINT}")
        cur.execute(f"RELEASE {_SAVEPOINT}")
        raise
    cur.execute(f"RELEASE {_SAVEPOINT}")
    return results


def _autocommit(connection: sqlite3.Connection) -> bool:
    """Whether ``connection`` commits each statement by itself (then we commit our batch)."""
    mode = getattr(connection, "autocommit", None)  # Python 3.12+: True, False or legacy
    if isinstance(mode, bool):
        return mode
    return connection.isolation_level is None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
