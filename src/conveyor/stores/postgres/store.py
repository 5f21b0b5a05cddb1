"""The PostgreSQL store: many worker nodes sharing one database.

Every operation is one transaction on a connection from a ``psycopg_pool`` pool
(opened lazily, migrated on first use and re-opened after a fork: a child never touches
its parent's connections). Claims use ``FOR UPDATE SKIP LOCKED`` so concurrent workers
never wait on each other's rows; every state change of a leased job is fenced by its
lease token. Wake-ups use LISTEN/NOTIFY: a change that makes jobs pending sends
``pg_notify`` in the same transaction, so waiters hear of it exactly when it commits.
Semantics follow :mod:`conveyor.stores.base` and the reference
:class:`~conveyor.stores.memory.MemoryStore`.

Times come from the store's ``clock``, passed explicitly into SQL: by default a
:class:`~conveyor.stores.server_clock.ServerClock`, the database's time carried on this
host's monotonic clock. Which leases expired is decided by the database's own clock in
the rescue statement, so no host's clock can cut another host's lease short.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg import Connection, Cursor
from psycopg import sql as pg_sql
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from conveyor.clock import Clock
from conveyor.errors import ConfigurationError, LeaseLost
from conveyor.job import EnqueueResult, Lease, NewJob
from conveyor.stores import redact
from conveyor.stores.base import Completion, StoreInfo
from conveyor.stores.postgres import schema
from conveyor.stores.postgres.connection import (
    DEFAULT_SCHEMA,
    check_identifier,
    is_connection_error,
    parse_dsn,
    unavailable,
)
from conveyor.stores.postgres.dialect import NOTIFY, POSTGRES_SQL
from conveyor.stores.server_clock import ServerClock
from conveyor.stores.sql import forks
from conveyor.stores.sql.enqueue import enqueue_batch
from conveyor.stores.sql.operations import complete_jobs
from conveyor.stores.sql.store import SqlStore, any_pending

P = ParamSpec("P")
T = TypeVar("T")


class PostgresStore(SqlStore):
    """A Store in one PostgreSQL schema, safe for many processes, threads and hosts."""

    name = "postgresql"
    sql = POSTGRES_SQL

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        clock: Clock | None = None,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        location: str | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.schema = check_identifier(schema)
        self.location = location or f"{redact(conninfo)} (schema {schema})"
        self.clock: Clock = clock or ServerClock(self._server_time)
        self.channel = _channel_name(schema)
        self._min_size = min_size
        self._max_size = max(max_size, min_size, 1)
        self._timeout = connect_timeout
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._pool_obj: ConnectionPool[Connection[Any]] | None = None
        self._schema_version: int | None = None
        self._local = threading.local()
        self._listeners: list[tuple[int, Connection[Any]]] = []
        self._closed_generation = 0
        forks.track(self)

    @classmethod
    def from_dsn(cls, dsn: str, clock: Clock | None = None) -> PostgresStore:
        """Open ``postgresql://user:pw@host:port/db?schema=name&<libpq params>``."""
        settings = parse_dsn(dsn)
        return cls(
            settings.conninfo, schema=settings.schema, clock=clock, location=settings.location
        )

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    # connections ---------------------------------------------------------------------------
    def _configure(self, conn: Connection[Any]) -> None:
        """Every new pooled connection works in the store's schema."""
        conn.execute(pg_sql.SQL("SET search_path TO {}").format(pg_sql.Identifier(self.schema)))
        conn.commit()

    def _pool(self) -> ConnectionPool[Connection[Any]]:
        """This process's pool, opened (and the schema migrated) on first use."""
        pool = self._pool_obj
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._pid != os.getpid():
                self._after_fork()
            if self._pool_obj is None:
                self._pool_obj = ConnectionPool(
                    self.conninfo,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    configure=self._configure,
                    timeout=self._timeout,
                    reconnect_timeout=3600.0,
                    name=f"conveyor-{self.schema}",
                    open=True,
                )
            pool = self._pool_obj
        if self._schema_version is None:
            self.migrate()
        return pool

    def _after_fork(self) -> None:
        """In a fresh child: new locks; the parent's pool and listeners are retired."""
        self._lock = threading.Lock()
        self._local = threading.local()
        if self._pool_obj is not None:
            forks.retire(self._pool_obj)
        forks.retire(*(conn for _, conn in self._listeners))
        self._pool_obj = None
        self._listeners = []
        self._pid = os.getpid()

    def _write(
        self, work: Callable[Concatenate[Cursor[Any], P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``work(cursor, …)`` in one transaction on a pooled connection; commit."""
        return self._write_waking(_never, work, *args, **kwargs)

    def _read(
        self, work: Callable[Concatenate[Cursor[Any], P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Reads run as writes do: one transaction on a pooled connection."""
        return self._write_waking(_never, work, *args, **kwargs)

    def _write_waking(
        self,
        wakes: Callable[[T], bool],
        work: Callable[Concatenate[Cursor[Any], P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """:meth:`_write`; if ``wakes(result)``, NOTIFY in the same transaction, so waiters
        hear of the jobs exactly when they commit."""
        pool = self._pool()
        try:
            with pool.connection() as conn, conn.cursor() as cur:
                result = work(cur, *args, **kwargs)
                if wakes(result):
                    self._notify(cur)
                return result
        except psycopg.Error as exc:
            if is_connection_error(exc):
                self._recheck(pool)
                raise unavailable(exc, self.location) from exc
            raise

    def _recheck(self, pool: ConnectionPool[Connection[Any]]) -> None:
        """After a connection error, replace every broken idle connection of the pool.

        Checking on failure rather than on every checkout keeps the hot path at one round
        trip; after a server restart only the call that met the dead connection fails.
        """
        with contextlib.suppress(Exception):
            pool.check()

    def _server_time(self) -> float:
        """The database's clock, for :class:`ServerClock`."""
        with self._pool().connection() as conn:
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        assert row is not None
        return float(row[0])

    def _notify(self, cur: Cursor[Any]) -> None:
        """Wake waiting workers when this transaction commits."""
        cur.execute(NOTIFY, (self.channel,))

    def _expire_before(self, lease_now: float | None, now: float) -> float | None:
        """Expiry is judged by the database's clock (in the rescue statement) unless a
        clock or a time was injected, so no host's clock can cut another's lease short."""
        if lease_now is None and isinstance(self.clock, ServerClock):
            return None
        return self._lease_time(lease_now, now)

    # lifecycle -----------------------------------------------------------------------------
    def migrate(self) -> int:
        """Bring the schema up to date (also done on first use); return its version."""
        pool = self._pool_obj if self._pid == os.getpid() else None
        if pool is None:
            self._pool()
            assert self._schema_version is not None
            return self._schema_version
        try:
            with pool.connection() as conn:
                self._schema_version = schema.migrate(conn, self.schema)
        except psycopg.Error as exc:
            if is_connection_error(exc):
                raise unavailable(exc, self.location) from exc
            raise
        return self._schema_version

    def close(self) -> None:
        """Close this process's pool and listener connections; safe to call twice.

        The store stays usable: the next call opens a new pool.
        """
        pid = os.getpid()
        with self._lock:
            pool, self._pool_obj = self._pool_obj, None
            listeners, self._listeners = self._listeners, []
            self._local = threading.local()
        if pool is not None and self._pid == pid:
            pool.close()
        for owner, conn in listeners:
            if owner == pid:
                with contextlib.suppress(psycopg.Error):
                    conn.close()

    def info(self) -> StoreInfo:
        """Driver, location (no password), durability in force and the schema version."""
        version = self.migrate()

        def work(cur: Cursor[Any]) -> tuple[str, str]:
            sync = cur.execute("SHOW synchronous_commit").fetchone()
            server = cur.execute("SHOW server_version").fetchone()
            return str(sync[0] if sync else "?"), str(server[0] if server else "?")

        sync, server = self._read(work)
        if sync == "off":
            durability = "durable (PostgreSQL commit), synchronous_commit=off: the last "
            durability += "commits may be lost on a server crash"
        else:
            durability = f"durable (PostgreSQL commit, synchronous_commit={sync})"
        details = {
            "schema": self.schema,
            "synchronous_commit": sync,
            "server_version": server,
            "channel": self.channel,
        }
        return StoreInfo("postgresql", self.location, durability, version, details)

    # producers -----------------------------------------------------------------------------
    def _enqueue_joined(
        self, connection: object, jobs: Sequence[NewJob], now: float
    ) -> list[EnqueueResult]:
        """Enqueue inside the caller's transaction on ``connection``.

        ``connection`` must be a ``psycopg.Connection`` to the same database. The batch
        runs in a savepoint of the caller's transaction (which we never commit): it
        appears, and wakes workers, only when the caller commits. On an autocommit
        connection the batch is its own transaction.
        """
        conn = _caller_connection(connection, "enqueue")
        self._pool()  # the schema must exist before we write through someone else's handle
        return self._in_caller_transaction(conn, self._enqueue_work, jobs, now)

    def _enqueue_work(
        self, cur: Cursor[Any], jobs: Sequence[NewJob], now: float
    ) -> list[EnqueueResult]:
        results = enqueue_batch(cur, self.sql, jobs, now)
        if any_pending(results):
            self._notify(cur)
        return results

    def _in_caller_transaction(
        self,
        conn: Connection[Any],
        work: Callable[Concatenate[Cursor[Any], P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``work`` in a savepoint of ``conn``'s transaction, in the store's schema."""
        try:
            with conn.cursor() as cur:
                if not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
                    cur.execute("SELECT 1")  # open the caller's transaction; we never commit it
                with conn.transaction():
                    row = cur.execute("SELECT current_setting('search_path')").fetchone()
                    previous = str(row[0]) if row else ""
                    path = pg_sql.Identifier(self.schema).as_string(conn)
                    cur.execute("SELECT set_config('search_path', %s, true)", (path,))
                    result = work(cur, *args, **kwargs)
                    cur.execute("SELECT set_config('search_path', %s, true)", (previous,))
                    return result
        except psycopg.Error as exc:
            if is_connection_error(exc):
                raise unavailable(exc, self.location) from exc
            raise

    # consumers -----------------------------------------------------------------------------
    def complete_in_transaction(
        self, lease: Lease, result: bytes | None, connection: object, *, now: float | None = None
    ) -> None:
        """Complete the leased job inside the caller's open transaction (fenced).

        The completion commits or rolls back with the handler's own writes, so a job whose
        effects committed is completed exactly once. Raises
        :class:`~conveyor.errors.LeaseLost` (nothing written) if the lease no longer holds;
        the caller should then roll back.
        """
        conn = _caller_connection(connection, "complete_in_transaction")
        self._pool()
        t = self._now(now)

        def work(cur: Cursor[Any]) -> None:
            lost, ready = complete_jobs(cur, self.sql, [Completion(lease, result)], t)
            if lost:
                raise LeaseLost(lease.job_id)
            if ready:
                self._notify(cur)

        self._in_caller_transaction(conn, work)

    # wake-ups ------------------------------------------------------------------------------
    def _wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block on this thread's LISTEN connection until a NOTIFY or ``timeout``.

        The listening connection stays open between calls, so a notification sent while
        the worker was busy wakes the next wait at once. Any new work wakes every waiter
        of the schema whatever its queues; the claim sorts it out.
        """
        conn = self._listener()
        try:
            woken = False
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                woken = True
            if woken:
                for _ in conn.notifies(timeout=0.0):
                    pass  # drain the backlog: one wake-up covers them all
            return woken
        except psycopg.Error as exc:
            with self._lock:
                closed_by_us = not any(c is conn for _, c in self._listeners)
            self._drop_listener(conn)
            if closed_by_us:
                return False  # close() was called while we waited
            raise unavailable(exc, self.location) from exc

    def _listener(self) -> Connection[Any]:
        held = getattr(self._local, "listener", None)
        if held is not None and held[0] == os.getpid() and not held[1].closed:
            conn: Connection[Any] = held[1]
            return conn
        self._pool()
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10)
            conn.execute(pg_sql.SQL("LISTEN {}").format(pg_sql.Identifier(self.channel)))
        except psycopg.Error as exc:
            raise unavailable(exc, self.location) from exc
        with self._lock:
            self._listeners.append((os.getpid(), conn))
        self._local.listener = (os.getpid(), conn)
        return conn

    def _drop_listener(self, conn: Connection[Any]) -> None:
        self._local.listener = None
        with self._lock:
            self._listeners = [(o, c) for o, c in self._listeners if c is not conn]
        with contextlib.suppress(psycopg.Error):
            conn.close()


def _caller_connection(connection: object, what: str) -> Connection[Any]:
    if not isinstance(connection, psycopg.Connection):
        raise ConfigurationError(
            f"{what}: connection= must be a psycopg.Connection to the store's database, "
            f"got {type(connection).__name__}"
        )
    return connection


def _channel_name(schema_name: str) -> str:
    """The NOTIFY channel of a schema (at most 63 bytes, like any identifier)."""
    name = f"conveyor_{schema_name}"
    if len(name) <= 63:
        return name
    return "conveyor_" + hashlib.sha256(schema_name.encode()).hexdigest()[:40]


def _never(result: object) -> bool:
    """No wake-up: the work made no job pending."""
    return False
