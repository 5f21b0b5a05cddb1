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
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg import Connection, Cursor, sql
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from conveyor.clock import Clock
from conveyor.errors import ConfigurationError, LeaseLost
from conveyor.job import (
    EnqueueResult,
    FailureReason,
    Job,
    JobError,
    JobState,
    Lease,
    NewJob,
    StateCounts,
    check_transition,
)
from conveyor.stores import base, controls, redact
from conveyor.stores.base import (
    CancelResult,
    Capabilities,
    ClaimParams,
    Completion,
    HeartbeatResult,
    JobQuery,
    NodeInfo,
    Page,
    PruneParams,
    PruneResult,
    Record,
    RescueParams,
    RescueResult,
    StageResult,
    StoreInfo,
)
from conveyor.stores.postgres import controls as pg_controls
from conveyor.stores.postgres import queries as q
from conveyor.stores.postgres import records, schema
from conveyor.stores.postgres.connection import (
    DEFAULT_SCHEMA,
    check_identifier,
    is_connection_error,
    parse_dsn,
    unavailable,
)
from conveyor.stores.postgres.dependencies import propagate_failure
from conveyor.stores.postgres.enqueue import enqueue_batch
from conveyor.stores.postgres.operations import (
    cancel_jobs,
    claim_jobs,
    complete_jobs,
    delete_jobs,
    heartbeat_leases,
    prune_jobs,
    rescue_jobs,
    retry_jobs,
    search_filter,
)
from conveyor.stores.postgres.rows import (
    SELECT_LIST,
    decode_job,
    encode_error,
    node_from_json,
    node_params,
)
from conveyor.stores.records import check_record
from conveyor.stores.selection import distinct_leases
from conveyor.stores.server_clock import ServerClock

S = JobState
P = ParamSpec("P")
T = TypeVar("T")

for _source, _target in q.GUARDED_TRANSITIONS:
    check_transition("<postgres store>", _source, _target)

# Pools and connections inherited through fork: never used and never closed in the child
# (closing would send a Terminate message on the parent's socket); kept referenced so
# garbage collection cannot close them either.
_INHERITED: list[object] = []
_STORES: weakref.WeakSet[PostgresStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class PostgresStore:
    """A Store in one PostgreSQL schema, safe for many processes, threads and hosts."""

    capabilities = Capabilities(transactional_enqueue=True, blocking_wait=True, shared=True)

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
        _STORES.add(self)

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
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
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
            _INHERITED.append(self._pool_obj)
        _INHERITED.extend(conn for _, conn in self._listeners)
        self._pool_obj = None
        self._listeners = []
        self._pid = os.getpid()

    def _run(
        self,
        work: Callable[Concatenate[Cursor[Any], P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``work(cursor, …)`` in one transaction on a pooled connection; commit."""
        pool = self._pool()
        try:
            with pool.connection() as conn, conn.cursor() as cur:
                return work(cur, *args, **kwargs)
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
        cur.execute(q.NOTIFY, (self.channel,))

    def _now(self, now: float | None) -> float:
        return self.clock.now() if now is None else now

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

        sync, server = self._run(work)
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

    def now(self) -> float:
        """The injected clock; by default the database's (see ServerClock)."""
        return self.clock.now()

    # producers -----------------------------------------------------------------------------
    def enqueue(
        self, jobs: Sequence[NewJob], *, connection: object | None = None, now: float | None = None
    ) -> list[EnqueueResult]:
        """Insert the batch atomically; with ``connection``, inside the caller's transaction.

        ``connection`` must be a ``psycopg.Connection`` to the same database. The batch
        runs in a savepoint of the caller's transaction (which we never commit): it
        appears, and wakes workers, only when the caller commits. On an autocommit
        connection the batch is its own transaction.
        """
        t = self._now(now)
        if connection is not None:
            return self._enqueue_joined(connection, jobs, t)
        if not jobs:
            return []
        return self._run(self._enqueue_work, jobs, t)

    def _enqueue_work(
        self, cur: Cursor[Any], jobs: Sequence[NewJob], t: float
    ) -> list[EnqueueResult]:
        results = enqueue_batch(cur, jobs, t)
        if any(r.state is S.PENDING and not r.duplicate for r in results):
            self._notify(cur)
        return results

    def _enqueue_joined(
        self, connection: object, jobs: Sequence[NewJob], now: float
    ) -> list[EnqueueResult]:
        conn = _caller_connection(connection, "enqueue")
        self._pool()  # the schema must exist before we write through someone else's handle
        if not jobs:
            return []
        return self._in_caller_transaction(conn, self._enqueue_work, jobs, now)

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
                    path = sql.Identifier(self.schema).as_string(conn)
                    cur.execute("SELECT set_config('search_path', %s, true)", (path,))
                    result = work(cur, *args, **kwargs)
                    cur.execute("SELECT set_config('search_path', %s, true)", (previous,))
                    return result
        except psycopg.Error as exc:
            if is_connection_error(exc):
                raise unavailable(exc, self.location) from exc
            raise

    # consumers -----------------------------------------------------------------------------
    def claim(self, params: ClaimParams) -> list[Lease]:
        """Lease up to ``limit`` pending jobs: a SKIP LOCKED CTE and UPDATE per queue."""
        if params.limit <= 0:
            return []
        return self._run(claim_jobs, params, self._now(params.now))

    def heartbeat(
        self, leases: Sequence[Lease], *, extend: float, now: float | None = None
    ) -> HeartbeatResult:
        """Extend each held lease to ``now + extend`` in one statement."""
        leases = distinct_leases(leases)
        if not leases:
            return HeartbeatResult({}, [], [])
        t = self._now(now)
        return self._run(heartbeat_leases, leases, t, t + extend)

    def complete(self, completions: Sequence[Completion], *, now: float | None = None) -> list[str]:
        """Mark jobs completed in one statement; return the ids whose lease was lost."""
        if not completions:
            return []
        return self._run(self._complete_work, completions, self._now(now))

    def _complete_work(
        self, cur: Cursor[Any], completions: Sequence[Completion], t: float
    ) -> list[str]:
        lost, ready = complete_jobs(cur, completions, t)
        if ready:
            self._notify(cur)
        return lost

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
            lost = self._complete_work(cur, [base.Completion(lease, result)], t)
            if lost:
                raise LeaseLost(lease.job_id)

        self._in_caller_transaction(conn, work)

    def complete_and_claim(
        self, completions: Sequence[Completion], params: ClaimParams
    ) -> tuple[list[str], list[Lease]]:
        """Acknowledge and claim in one transaction (one commit)."""
        t = self._now(params.now)

        def work(cur: Cursor[Any]) -> tuple[list[str], list[Lease]]:
            lost = self._complete_work(cur, completions, t) if completions else []
            leases = claim_jobs(cur, params, t) if params.limit > 0 else []
            return lost, leases

        return self._run(work)

    def fail(
        self,
        lease: Lease,
        error: JobError,
        *,
        retry_at: float | None,
        reason: FailureReason | None = None,
        now: float | None = None,
    ) -> JobState:
        """Record a failed attempt: retrying until ``retry_at``, or failed (DLQ) with ``reason``."""
        t = self._now(now)
        target = S.RETRYING if retry_at is not None else S.FAILED
        reason_value = (reason or FailureReason.EXHAUSTED).value if target is S.FAILED else None
        params = (target.value, encode_error(error), retry_at, t, reason_value)

        def work(cur: Cursor[Any]) -> None:
            row = cur.execute(q.FAIL, (*params, lease.job_id, lease.token)).fetchone()
            if row is None:
                raise LeaseLost(lease.job_id)
            if target is S.FAILED and row[0]:
                propagate_failure(cur, lease.job_id, t)

        self._run(work)
        return target

    def release(
        self, lease: Lease, *, run_at: float | None = None, now: float | None = None
    ) -> None:
        """Give the job back unstarted (``attempt -= 1``): pending, or scheduled if ahead."""
        t = self._now(now)
        target = S.SCHEDULED if run_at is not None and run_at > t else S.PENDING

        def work(cur: Cursor[Any]) -> None:
            params = (target.value, run_at, lease.job_id, lease.token)
            if cur.execute(q.RELEASE, params).fetchone() is None:
                raise LeaseLost(lease.job_id)
            if target is S.PENDING:
                self._notify(cur)

        self._run(work)

    def finish_cancelled(self, lease: Lease, *, now: float | None = None) -> None:
        """End the held job as cancelled and cancel/fail its dependents."""
        t = self._now(now)

        def work(cur: Cursor[Any]) -> None:
            row = cur.execute(q.FINISH_CANCELLED, (t, lease.job_id, lease.token)).fetchone()
            if row is None:
                raise LeaseLost(lease.job_id)
            if row[0]:
                propagate_failure(cur, lease.job_id, t)

        self._run(work)

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block on this thread's LISTEN connection until a NOTIFY or ``timeout``.

        The listening connection stays open between calls, so a notification sent while
        the worker was busy wakes the next wait at once. Any new work wakes every waiter
        of the schema whatever its queues; the claim sorts it out.
        """
        conn = self._listener()
        try:
            woken = False
            for _ in conn.notifies(timeout=max(timeout, 0.0), stop_after=1):
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
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
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

    # maintenance ---------------------------------------------------------------------------
    def stage_due(self, *, now: float | None = None, limit: int = 1000) -> StageResult:
        """Promote due scheduled/retrying jobs to pending; report the next due time."""
        t = self._now(now)

        def work(cur: Cursor[Any]) -> StageResult:
            promoted = cur.execute(q.STAGE, (t, max(limit, 0))).rowcount
            row = cur.execute(q.NEXT_DUE).fetchone()
            if promoted:
                self._notify(cur)
            return StageResult(promoted, row[0] if row else None)

        return self._run(work)

    def rescue_expired(self, params: RescueParams) -> RescueResult:
        """Retry or fail processing jobs whose lease expired, appending a LeaseExpired error.

        Expiry is judged by the database's clock unless a clock or ``now`` was injected."""
        server_judged = params.now is None and isinstance(self.clock, ServerClock)
        t = self._now(params.now)
        return self._run(rescue_jobs, params, t, server_judged=server_judged)

    def prune(self, params: PruneParams) -> PruneResult:
        """Delete terminal jobs past their retention, then orphaned rows and expired records."""
        return self._run(prune_jobs, params, self._now(params.now))

    # management / read model ---------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        """One job by id, or None."""
        row = self._run(lambda cur: cur.execute(q.GET, (job_id,)).fetchone())
        return None if row is None else decode_job(row)

    def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """Jobs by id, in the given order, skipping unknown ids."""
        if not job_ids:
            return []
        ids = list(job_ids)
        rows = self._run(lambda cur: cur.execute(q.GET_MANY, (ids,)).fetchall())
        found = {job.id: job for job in map(decode_job, rows)}
        return [found[i] for i in job_ids if i in found]

    def search(self, query: JobQuery) -> Page:
        """Jobs matching every filter, ordered by ``created_at`` then id, one page of them."""
        if query.limit < 0 or query.offset < 0:
            raise ValueError("limit and offset must not be negative")
        limit = min(query.limit, base.SEARCH_LIMIT_MAX)
        where, params = search_filter(query)
        order = "DESC" if query.newest_first else "ASC"
        count_sql = f"SELECT count(*) FROM jobs WHERE {where}"
        page_sql = (
            f"SELECT {SELECT_LIST} FROM jobs WHERE {where} "
            f"ORDER BY created_at {order}, id {order} LIMIT %s OFFSET %s"
        )

        def work(cur: Cursor[Any]) -> tuple[int, list[Any]]:
            row = cur.execute(count_sql.encode(), params).fetchone()
            rows = cur.execute(page_sql.encode(), (*params, limit, query.offset)).fetchall()
            return (int(row[0]) if row else 0), rows

        total, rows = self._run(work)
        return Page([decode_job(r) for r in rows], total, limit, query.offset)

    def stats(self, *, now: float | None = None) -> list[StateCounts]:
        """Jobs per queue and state, and each queue's oldest pending ``run_at``."""

        def work(cur: Cursor[Any]) -> list[StateCounts]:
            by_queue: dict[str, StateCounts] = {}
            for queue, state, count in cur.execute(q.COUNTS).fetchall():
                by_queue.setdefault(queue, StateCounts(queue)).counts[state] = int(count)
            for queue, oldest in cur.execute(q.OLDEST_PENDING).fetchall():
                by_queue.setdefault(queue, StateCounts(queue)).oldest_pending_at = oldest
            return [by_queue[name] for name in sorted(by_queue)]

        return self._run(work)

    def cancel(
        self, job_ids: Sequence[str], *, force: bool = False, now: float | None = None
    ) -> CancelResult:
        """Cancel waiting jobs now; processing ones by flag, or at once with ``force``."""
        return self._run(cancel_jobs, job_ids, force, self._now(now))

    def retry(self, job_ids: Sequence[str], *, now: float | None = None) -> list[str]:
        """Move failed/cancelled jobs back to pending with fresh attempts (errors kept)."""
        t = self._now(now)

        def work(cur: Cursor[Any]) -> list[str]:
            moved = retry_jobs(cur, job_ids, t)
            if moved:
                self._notify(cur)
            return moved

        return self._run(work)

    # job controls --------------------------------------------------------------------------
    def reprioritize(
        self, job_ids: Sequence[str], priority: int, *, now: float | None = None
    ) -> list[str]:
        """Set the priority of waiting jobs in one ``UPDATE``."""
        value = controls.check_priority(priority)
        return self._change_waiting(pg_controls.SET_PRIORITY, value, job_ids)

    def move(self, job_ids: Sequence[str], queue: str, *, now: float | None = None) -> list[str]:
        """Move waiting jobs to ``queue`` in one ``UPDATE``; NOTIFY if one is pending."""
        target = controls.check_queue(queue)
        return self._change_waiting(pg_controls.SET_QUEUE, target, job_ids)

    def _change_waiting(self, statement: str, value: object, job_ids: Sequence[str]) -> list[str]:
        def work(cur: Cursor[Any]) -> list[str]:
            changed, pending = pg_controls.change_waiting(cur, statement, value, job_ids)
            if pending:
                self._notify(cur)
            return changed

        return self._run(work)

    def find_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Ids starting with ``prefix``: one range scan of the primary key."""
        low, high = controls.prefix_bounds(controls.normalize_prefix(prefix))
        return self._run(pg_controls.find_ids, low, high, controls.check_find_limit(limit))

    # nodes ---------------------------------------------------------------------------------
    def register_node(self, node: NodeInfo, *, now: float | None = None) -> None:
        """Insert or replace the node's row (one upsert), its ``heartbeat_at`` set to ``now``."""
        row = node_params(node, heartbeat_at=self._now(now))
        self._run(lambda cur: cur.execute(q.UPSERT_NODE, row))

    def remove_node(self, node_id: str) -> None:
        """Delete the node's row; unknown ids are ignored."""
        self._run(lambda cur: cur.execute(q.DELETE_NODE, (node_id,)))

    def list_nodes(self) -> list[NodeInfo]:
        """Every node, oldest ``started_at`` first (then by id)."""
        rows = self._run(lambda cur: cur.execute(q.LIST_NODES).fetchall())
        return [node_from_json(data) for (data,) in rows]

    def prune_nodes(self, *, older_than: float, now: float | None = None) -> int:
        """Delete nodes whose heartbeat is before ``now - older_than``; return how many."""
        cutoff = self._now(now) - older_than
        return self._run(lambda cur: cur.execute(q.PRUNE_NODES, (cutoff,)).rowcount)

    def delete(self, job_ids: Sequence[str]) -> int:
        """Delete jobs that are not processing; dependents of unfinished ones get their policy."""
        return self._run(delete_jobs, job_ids, self.clock.now())

    # records (SQL in conveyor.stores.postgres.records) -------------------------------------
    def get_record(self, namespace: str, key: str, *, now: float | None = None) -> Record | None:
        """The live record, or None."""
        check_record(namespace, key)
        return self._run(records.get_record, namespace, key, self._now(now))

    def put_record(
        self,
        namespace: str,
        key: str,
        value: bytes,
        *,
        expect_version: int | None,
        expires_at: float | None = None,
        now: float | None = None,
    ) -> Record | None:
        """Compare-and-set in one statement (see :mod:`conveyor.stores.postgres.records`)."""
        check_record(namespace, key, value, expect_version=expect_version, expires_at=expires_at)
        t = self._now(now)
        return self._run(records.put_record, namespace, key, value, expect_version, expires_at, t)

    def delete_record(self, namespace: str, key: str, *, expect_version: int | None = None) -> bool:
        """Delete the record, live or expired (at ``expect_version`` when given)."""
        check_record(namespace, key, expect_version=expect_version)
        return self._run(records.delete_record, namespace, key, expect_version)

    def list_records(
        self, namespace: str, *, prefix: str = "", now: float | None = None
    ) -> list[Record]:
        """Live records of the namespace whose key starts with ``prefix``, by key."""
        check_record(namespace, prefix or "-")
        return self._run(records.list_records, namespace, prefix, self._now(now))


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
