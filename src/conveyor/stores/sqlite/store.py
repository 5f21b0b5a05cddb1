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
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from conveyor.clock import Clock, SystemClock
from conveyor.errors import ConfigurationError, LeaseLost, StoreUnavailable
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
from conveyor.stores import base, controls
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
from conveyor.stores.node_records import node_from_json, node_params
from conveyor.stores.records import check_record
from conveyor.stores.selection import distinct_leases
from conveyor.stores.sqlite import controls as sqlite_controls
from conveyor.stores.sqlite import queries as q
from conveyor.stores.sqlite import records, schema
from conveyor.stores.sqlite.checkpoint import Checkpointer
from conveyor.stores.sqlite.connection import (
    Settings,
    make_settings,
    open_connection,
    parse_dsn,
    translate,
)
from conveyor.stores.sqlite.dependencies import propagate_failure
from conveyor.stores.sqlite.enqueue import enqueue_batch
from conveyor.stores.sqlite.gate import WriterGate
from conveyor.stores.sqlite.lease_clock import LeaseClock, establish_base
from conveyor.stores.sqlite.operations import (
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
from conveyor.stores.sqlite.rows import (
    SELECT_LIST,
    decode_job,
    encode_error,
    encode_ids,
    state_of,
)
from conveyor.stores.wakeup import WakeChannel

S = JobState
P = ParamSpec("P")
T = TypeVar("T")

for _source, _target in q.GUARDED_TRANSITIONS:
    check_transition("<sqlite store>", _source, _target)

_SAVEPOINT = "conveyor_enqueue"

# Connections inherited through fork: never used and never closed in the child (closing
# could disturb the parent's locks); kept referenced so garbage collection cannot either.
_INHERITED: list[sqlite3.Connection] = []
_STORES: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SQLiteStore:
    """A Store in one SQLite database file (WAL), safe for many processes and threads."""

    capabilities = Capabilities(transactional_enqueue=True, blocking_wait=True, shared=True)

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
        _STORES.add(self)

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
            _INHERITED.extend(c for owner, c in self._connections if owner != pid)
            self._connections = [(o, c) for o, c in self._connections if o == pid]

    def _after_fork(self) -> None:
        """In a fresh child: new locks, and every inherited connection retired."""
        self._lock = threading.Lock()
        self._generation += 1
        self._drop_inherited(os.getpid())
        self._wake.after_fork()

    def _write(
        self,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``work(conn, …)`` in one ``BEGIN IMMEDIATE`` transaction."""
        conn = self._conn()
        with self._gate.hold():
            return self._transaction(conn, work, *args, **kwargs)

    def _transaction(
        self,
        conn: sqlite3.Connection,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
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
            result = work(conn, *args, **kwargs)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            raise translate(exc, self.path) from exc
        except BaseException:
            _rollback(conn)
            raise
        return result

    def _read(
        self,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``work(conn, …)`` in one read transaction (one consistent snapshot)."""
        conn = self._conn()
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("BEGIN")
            try:
                return work(conn, *args, **kwargs)
            finally:
                _rollback(conn)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    def _now(self, now: float | None) -> float:
        return self.clock.now() if now is None else now

    def _lease_now(self, now: float | None) -> float:
        """Lease time (see :mod:`.lease_clock`); an explicit ``now`` is taken as is."""
        return self._lease_clock.now() if now is None else now

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
                _INHERITED.append(conn)
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

    def now(self) -> float:
        """The injected clock (SQLite has none of its own worth trusting across processes)."""
        return self.clock.now()

    def notify(self) -> None:
        """Wake waiting workers now; call after committing a transactional enqueue."""
        self._wake.notify()

    # producers -----------------------------------------------------------------------------
    def enqueue(
        self, jobs: Sequence[NewJob], *, connection: object | None = None, now: float | None = None
    ) -> list[EnqueueResult]:
        """Insert the batch atomically; with ``connection``, inside the caller's transaction.

        A joined transaction cannot tell us when it commits, so workers see those jobs at
        their next poll unless the caller calls :meth:`notify` after committing. If the
        connection is in autocommit mode the batch is committed here and workers are woken.
        """
        t = self._now(now)
        if not jobs and connection is None:
            return []
        if connection is not None:
            results, committed = self._enqueue_joined(connection, jobs, t)
        else:
            results = self._write(lambda conn: enqueue_batch(conn.cursor(), jobs, t))
            committed = True
        if committed and any(r.state is S.PENDING and not r.duplicate for r in results):
            self._wake.notify()
        return results

    def _enqueue_joined(
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

    # consumers -----------------------------------------------------------------------------
    def claim(self, params: ClaimParams) -> list[Lease]:
        """Lease up to ``limit`` pending jobs: one UPDATE … RETURNING per queue."""
        if params.limit <= 0:
            return []
        t = self._now(params.now)
        return self._write(claim_jobs, params, t, self._lease_now(params.now))

    def heartbeat(
        self, leases: Sequence[Lease], *, extend: float, now: float | None = None
    ) -> HeartbeatResult:
        """Extend each held lease to ``now + extend``; report lost ones and cancel requests."""
        leases = distinct_leases(leases)
        if not leases:
            return HeartbeatResult({}, [], [])
        t = self._now(now)
        return self._write(heartbeat_leases, leases, t, self._lease_now(now) + extend)

    def complete(self, completions: Sequence[Completion], *, now: float | None = None) -> list[str]:
        """Mark jobs completed in one transaction; return the ids whose lease was lost."""
        if not completions:
            return []
        t = self._now(now)
        lost, ready = self._write(complete_jobs, completions, t)
        if ready:
            self._wake.notify()
        return lost

    def complete_and_claim(
        self, completions: Sequence[Completion], params: ClaimParams
    ) -> tuple[list[str], list[Lease]]:
        """Acknowledge and claim in one ``BEGIN IMMEDIATE`` transaction (one commit)."""
        t = self._now(params.now)
        lease_now = self._lease_now(params.now)
        lost, ready, leases = self._write(_complete_then_claim, completions, params, t, lease_now)
        if ready:
            self._wake.notify()
        return lost, leases

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

        def work(conn: sqlite3.Connection) -> None:
            row = conn.execute(q.FAIL, (*params, lease.job_id, lease.token)).fetchall()
            if not row:
                raise LeaseLost(lease.job_id)
            if target is S.FAILED and row[0][0]:
                propagate_failure(conn, lease.job_id, t)

        self._write(work)
        return target

    def release(
        self, lease: Lease, *, run_at: float | None = None, now: float | None = None
    ) -> None:
        """Give the job back unstarted (``attempt -= 1``): pending, or scheduled if ahead."""
        t = self._now(now)
        target = S.SCHEDULED if run_at is not None and run_at > t else S.PENDING

        def work(conn: sqlite3.Connection) -> None:
            params = (target.value, run_at, lease.job_id, lease.token)
            if not conn.execute(q.RELEASE, params).fetchall():
                raise LeaseLost(lease.job_id)

        self._write(work)
        if target is S.PENDING:
            self._wake.notify()

    def finish_cancelled(self, lease: Lease, *, now: float | None = None) -> None:
        """End the held job as cancelled and cancel/fail its dependents."""
        t = self._now(now)

        def work(conn: sqlite3.Connection) -> None:
            row = conn.execute(q.FINISH_CANCELLED, (t, lease.job_id, lease.token)).fetchall()
            if not row:
                raise LeaseLost(lease.job_id)
            if row[0][0]:
                propagate_failure(conn, lease.job_id, t)

        self._write(work)

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
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

    # maintenance ---------------------------------------------------------------------------
    def stage_due(self, *, now: float | None = None, limit: int = 1000) -> StageResult:
        """Promote due scheduled/retrying jobs to pending; report the next due time."""
        t = self._now(now)

        def work(conn: sqlite3.Connection) -> StageResult:
            promoted = conn.execute(q.STAGE, (t, max(limit, 0))).rowcount
            next_due = conn.execute(q.NEXT_DUE).fetchone()[0]
            return StageResult(promoted, next_due)

        result = self._write(work)
        if result.promoted:
            self._wake.notify()
        return result

    def rescue_expired(self, params: RescueParams) -> RescueResult:
        """Retry or fail processing jobs whose lease expired, appending a LeaseExpired error."""
        return self._write(rescue_jobs, params, self._now(params.now), self._lease_now(params.now))

    def prune(self, params: PruneParams) -> PruneResult:
        """Delete terminal jobs past their retention, then orphaned rows and expired records
        (one short write transaction; a dry run only reads)."""
        run = self._read if params.dry_run else self._write
        return run(prune_jobs, params, self._now(params.now))

    # management / read model ---------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        """One job by id, or None."""
        row = self._read(lambda conn: conn.execute(q.GET, (job_id,)).fetchone())
        return None if row is None else decode_job(row)

    def get_many(self, job_ids: Sequence[str]) -> list[Job]:
        """Jobs by id, in the given order, skipping unknown ids."""
        if not job_ids:
            return []
        ids = encode_ids(job_ids)
        rows = self._read(lambda conn: conn.execute(q.GET_MANY, (ids,)).fetchall())
        found = {job.id: job for job in map(decode_job, rows)}
        return [found[i] for i in job_ids if i in found]

    def search(self, query: JobQuery) -> Page:
        """Jobs matching every filter, ordered by ``created_at`` then id, one page of them."""
        if query.limit < 0 or query.offset < 0:
            raise ValueError("limit and offset must not be negative")
        limit = min(query.limit, base.SEARCH_LIMIT_MAX)
        where, params = search_filter(query)
        order = "DESC" if query.newest_first else "ASC"
        count_sql = f"SELECT COUNT(*) FROM jobs WHERE {where}"
        page_sql = (
            f"SELECT {SELECT_LIST} FROM jobs WHERE {where} "
            f"ORDER BY created_at {order}, id {order} LIMIT ? OFFSET ?"
        )

        def work(conn: sqlite3.Connection) -> tuple[int, list[Any]]:
            total = conn.execute(count_sql, params).fetchone()[0]
            rows = conn.execute(page_sql, (*params, limit, query.offset)).fetchall()
            return total, rows

        total, rows = self._read(work)
        return Page([decode_job(r) for r in rows], total, limit, query.offset)

    def stats(self, *, now: float | None = None) -> list[StateCounts]:
        """Jobs per queue and state, and each queue's oldest pending ``run_at``."""

        def work(conn: sqlite3.Connection) -> list[StateCounts]:
            by_queue: dict[str, StateCounts] = {}
            for queue, state, count in conn.execute(q.COUNTS):
                counts = by_queue.setdefault(queue, StateCounts(queue)).counts
                name = state_of(state).value  # an unknown state counts as failed (corrupt)
                counts[name] = counts.get(name, 0) + count
            for queue, oldest in conn.execute(q.OLDEST_PENDING):
                by_queue.setdefault(queue, StateCounts(queue)).oldest_pending_at = oldest
            return [by_queue[name] for name in sorted(by_queue)]

        return self._read(work)

    def cancel(
        self, job_ids: Sequence[str], *, force: bool = False, now: float | None = None
    ) -> CancelResult:
        """Cancel waiting jobs now; processing ones by flag, or at once with ``force``."""
        return self._write(cancel_jobs, job_ids, force, self._now(now))

    def retry(self, job_ids: Sequence[str], *, now: float | None = None) -> list[str]:
        """Move failed/cancelled jobs back to pending with fresh attempts (errors kept)."""
        t = self._now(now)
        moved = self._write(retry_jobs, job_ids, t)
        if moved:
            self._wake.notify()
        return moved

    # job controls --------------------------------------------------------------------------
    def reprioritize(
        self, job_ids: Sequence[str], priority: int, *, now: float | None = None
    ) -> list[str]:
        """Set the priority of waiting jobs in one ``UPDATE``."""
        value = controls.check_priority(priority)
        return self._change_waiting(sqlite_controls.SET_PRIORITY, value, job_ids)

    def move(self, job_ids: Sequence[str], queue: str, *, now: float | None = None) -> list[str]:
        """Move waiting jobs to ``queue`` in one ``UPDATE``; wake waiters if one is pending."""
        target = controls.check_queue(queue)
        return self._change_waiting(sqlite_controls.SET_QUEUE, target, job_ids)

    def _change_waiting(self, statement: str, value: object, job_ids: Sequence[str]) -> list[str]:
        changed, pending = self._write(sqlite_controls.change_waiting, statement, value, job_ids)
        if pending:
            self._wake.notify()
        return changed

    def find_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        """Ids starting with ``prefix``: one range scan of the primary key."""
        low, high = controls.prefix_bounds(controls.normalize_prefix(prefix))
        return self._read(sqlite_controls.find_ids, low, high, controls.check_find_limit(limit))

    # nodes ---------------------------------------------------------------------------------
    def register_node(self, node: NodeInfo, *, now: float | None = None) -> None:
        """Insert or replace the node's row (one upsert), its ``heartbeat_at`` set to ``now``."""
        row = node_params(node, heartbeat_at=self._now(now))
        self._write(lambda conn: conn.execute(q.UPSERT_NODE, row))

    def remove_node(self, node_id: str) -> None:
        """Delete the node's row; unknown ids are ignored."""
        self._write(lambda conn: conn.execute(q.DELETE_NODE, (node_id,)))

    def list_nodes(self) -> list[NodeInfo]:
        """Every node, oldest ``started_at`` first (then by id)."""
        rows = self._read(lambda conn: conn.execute(q.LIST_NODES).fetchall())
        return [node_from_json(data) for (data,) in rows]

    def prune_nodes(self, *, older_than: float, now: float | None = None) -> int:
        """Delete nodes whose heartbeat is before ``now - older_than``; return how many."""
        cutoff = self._now(now) - older_than
        return self._write(lambda conn: conn.execute(q.PRUNE_NODES, (cutoff,)).rowcount)

    def delete(self, job_ids: Sequence[str]) -> int:
        """Delete jobs that are not processing; dependents of unfinished ones get their policy."""
        return self._write(delete_jobs, job_ids, self.clock.now())

    # records -------------------------------------------------------------------------------
    def get_record(self, namespace: str, key: str, *, now: float | None = None) -> Record | None:
        """The live record, or None."""
        check_record(namespace, key)
        return self._read(records.get_record, namespace, key, self._now(now))

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
        """Compare-and-set in one ``BEGIN IMMEDIATE`` transaction."""
        check_record(namespace, key, value, expect_version=expect_version, expires_at=expires_at)
        t = self._now(now)
        return self._write(records.put_record, namespace, key, value, expect_version, expires_at, t)

    def delete_record(self, namespace: str, key: str, *, expect_version: int | None = None) -> bool:
        """Delete the record, live or expired (at ``expect_version`` when given)."""
        check_record(namespace, key, expect_version=expect_version)
        return self._write(records.delete_record, namespace, key, expect_version)

    def list_records(
        self, namespace: str, *, prefix: str = "", now: float | None = None
    ) -> list[Record]:
        """Live records of the namespace whose key starts with ``prefix``, by key."""
        check_record(namespace, prefix or "-")
        return self._read(records.list_records, namespace, prefix, self._now(now))


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
        results = enqueue_batch(cur, jobs, now)
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


def _complete_then_claim(
    conn: sqlite3.Connection,
    completions: Sequence[Completion],
    params: ClaimParams,
    now: float,
    lease_now: float,
) -> tuple[list[str], int, list[Lease]]:
    lost, ready = complete_jobs(conn, completions, now) if completions else ([], 0)
    leases = claim_jobs(conn, params, now, lease_now) if params.limit > 0 else []
    return lost, ready, leases
