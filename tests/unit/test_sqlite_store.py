"""SQLite driver specifics: DSN, pragmas, migrations, query plans, wake-ups, transactional
enqueue, fork safety and a multi-process claim race. Contract behaviour is in tests/stores."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import (
    ConfigurationError,
    StoreUnavailable,
    UnknownDependency,
)
from conveyor.ids import IdGenerator
from conveyor.job import JobError, JobState, NewJob
from conveyor.stores import node_records, open_store, wakeup
from conveyor.stores.base import (
    ClaimParams,
    Completion,
    JobQuery,
    NodeInfo,
    RescueParams,
    WorkerInfo,
)
from conveyor.stores.sqlite import SQLiteStore, dialect, schema
from conveyor.stores.sqlite.connection import parse_dsn
from conveyor.stores.sqlite.dialect import SQLITE_SQL
from conveyor.stores.wakeup import WakeChannel

S = JobState
FORK = multiprocessing.get_context("fork")
_IDS = IdGenerator()


def job(**overrides: Any) -> NewJob:
    fields: dict[str, Any] = {"id": _IDS.new(), "queue": "default", "task": "t", "payload": b"p"}
    fields.update(overrides)
    return NewJob(**fields)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "conveyor.db")


@pytest.fixture
def store(db_path: str) -> Iterator[SQLiteStore]:
    instance = SQLiteStore(db_path, clock=FakeClock())
    try:
        yield instance
    finally:
        instance.close()


def claim(store: SQLiteStore, limit: int = 1, worker: str = "w1") -> list[Any]:
    return store.claim(ClaimParams(queues=["default"], worker_id=worker, limit=limit))


# DSN ---------------------------------------------------------------------------------------
def test_dsn_with_three_slashes_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    settings = parse_dsn("sqlite:///data/jobs.db")

    assert settings.path == str(tmp_path / "data" / "jobs.db")
    assert (settings.synchronous, settings.busy_timeout_ms) == ("normal", 5000)


def test_dsn_with_four_slashes_is_absolute_and_decodes_escapes(tmp_path: Path) -> None:
    settings = parse_dsn(f"sqlite:///{tmp_path}/my%20jobs.db")

    assert settings.path == str(tmp_path / "my jobs.db")


def test_dsn_parameters_set_durability_and_busy_timeout(tmp_path: Path) -> None:
    settings = parse_dsn(f"sqlite:///{tmp_path}/j.db?synchronous=FULL&busy_timeout=250")

    assert (settings.synchronous, settings.busy_timeout_ms) == ("full", 250)
    assert settings.durability == "power-loss safe (WAL, synchronous=FULL)"


def test_open_store_builds_a_sqlite_store_from_the_dsn(tmp_path: Path) -> None:
    clock = FakeClock()
    store = open_store(f"sqlite:///{tmp_path}/j.db?synchronous=full", clock=clock)
    try:
        assert isinstance(store, SQLiteStore)
        assert store.clock is clock
        assert store.settings.synchronous == "full"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("dsn", "words"),
    [
        ("sqlite:///:memory:", ["in-memory"]),
        ("sqlite://", ["no database file"]),
        ("sqlite:///", ["no database file"]),
        ("sqlite://host/jobs.db", ["host"]),
        ("sqlite:///j.db?journal=wal", ["'journal'", "synchronous=normal|full", "busy_timeout"]),
        ("sqlite:///j.db?synchronous=off", ["'off'", "normal, full"]),
        ("sqlite:///j.db?busy_timeout=soon", ["'soon'", "milliseconds"]),
        ("sqlite:///j.db?busy_timeout=-5", ["'-5'", "milliseconds"]),
    ],
)
def test_bad_dsns_are_refused_with_the_reason(dsn: str, words: list[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        SQLiteStore.from_dsn(dsn)

    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("path", [":memory:", "", "file:jobs.db?mode=memory"])
def test_the_constructor_refuses_non_file_databases(path: str) -> None:
    with pytest.raises(ConfigurationError, match="file path"):
        SQLiteStore(path)


# pragmas, durability, errors ---------------------------------------------------------------
@pytest.mark.parametrize(("mode", "level"), [("normal", 1), ("full", 2)])
def test_connections_use_wal_and_the_configured_synchronous(
    db_path: str, mode: str, level: int
) -> None:
    store = SQLiteStore(db_path, synchronous=mode, busy_timeout_ms=1234)
    try:
        conn = store._conn()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == level
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
        assert conn.isolation_level is None  # autocommit: writes say BEGIN IMMEDIATE
    finally:
        store.close()


def test_info_reports_the_durability_in_force(db_path: str) -> None:
    normal = SQLiteStore(db_path)
    full = SQLiteStore(db_path, synchronous="full")
    try:
        info = normal.info()
        assert (info.driver, info.location) == ("sqlite", db_path)
        assert info.durability == "process-crash safe (WAL, synchronous=NORMAL)"
        assert info.schema_version == schema.latest_version()
        assert info.details["journal_mode"] == "wal"
        assert full.info().durability == "power-loss safe (WAL, synchronous=FULL)"
    finally:
        normal.close()
        full.close()


def test_a_locked_database_raises_store_unavailable(db_path: str) -> None:
    store = SQLiteStore(db_path, busy_timeout_ms=50)
    store.migrate()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="locked") as caught:
            store.enqueue([job()])
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        blocker.execute("ROLLBACK")
        # The failed call left no transaction open: the store works again.
        assert len(store.enqueue([job()])) == 1
    finally:
        blocker.close()
        store.close()


def test_an_unopenable_file_raises_store_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "missing-dir" / "j.db"))
    with pytest.raises(StoreUnavailable, match="unable to open"):
        store.get("x")
    store.close()


def test_close_is_idempotent_and_the_store_reopens_on_use(store: SQLiteStore) -> None:
    [result] = store.enqueue([job()])
    first = store._conn()

    store.close()
    store.close()

    assert store.get(result.id) is not None
    assert store._conn() is not first


# migrations -------------------------------------------------------------------------------
def test_migrations_ship_with_the_package_and_are_numbered() -> None:
    steps = schema.load_migrations()

    assert [s.version for s in steps] == list(range(1, len(steps) + 1))
    assert steps[0].name == "0001_initial.sql"
    assert "CREATE TABLE jobs" in steps[0].sql


def test_migrate_is_idempotent_and_records_each_version_once(store: SQLiteStore) -> None:
    latest = schema.latest_version()

    assert store.migrate() == latest
    assert store.migrate() == latest

    conn = store._conn()
    rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, latest + 1))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "job_dependencies", "unique_keys", "idempotency_keys"} <= tables


def test_a_schema_newer_than_the_code_is_refused(db_path: str) -> None:
    first = SQLiteStore(db_path)
    first.migrate()
    first._conn().execute("INSERT INTO schema_migrations VALUES (999, 0)")
    first.close()

    second = SQLiteStore(db_path)
    with pytest.raises(ConfigurationError, match="newer"):
        second.get("x")
    second.close()


def test_split_statements_keeps_triggers_whole_and_drops_comments() -> None:
    script = (
        "-- a comment\nCREATE TABLE a (x);\n"
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  SELECT 1;\n  SELECT 2;\nEND;\n-- end\n"
    )

    statements = schema.split_statements(script)

    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        schema.split_statements("CREATE TABLE b (x)")


def _migrate_in_child(path: str, start: Any, out: str) -> None:
    start.wait(10)
    store = SQLiteStore(path, busy_timeout_ms=10_000)
    version = store.migrate()
    store.close()
    Path(out).write_text(str(version))


@pytest.mark.slow
def test_processes_migrating_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    path = str(tmp_path / "race.db")
    start = FORK.Event()
    outs = [str(tmp_path / f"out{i}") for i in range(4)]
    children = [FORK.Process(target=_migrate_in_child, args=(path, start, o)) for o in outs]
    for child in children:
        child.start()
    start.set()
    for child in children:
        child.join(timeout=60)

    assert [c.exitcode for c in children] == [0, 0, 0, 0]
    assert {Path(o).read_text() for o in outs} == {str(schema.latest_version())}
    conn = sqlite3.connect(path)
    try:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    finally:
        conn.close()
    assert versions == list(range(1, schema.latest_version() + 1))


# query plans -------------------------------------------------------------------------------
def test_the_claim_walks_the_claim_index_without_sorting(store: SQLiteStore) -> None:
    store.enqueue([job(priority=p) for p in (0, 5, -5)])
    conn = store._conn()

    plan = " | ".join(
        row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {dialect.CLAIM_QUEUE_PLAN}", ("d", 5))
    )
    update_plan = " | ".join(
        row[3]
        for row in conn.execute(
            f"EXPLAIN QUERY PLAN {SQLITE_SQL.claim_queue}", (1.0, "w", 1.0, 1.0, "d", 5)
        )
    )

    assert "USING INDEX jobs_claim (queue=?)" in plan
    assert "TEMP B-TREE" not in plan
    assert "jobs_claim" in update_plan
    assert "TEMP B-TREE" not in update_plan


def test_maintenance_queries_use_their_partial_indexes(store: SQLiteStore) -> None:
    conn = store._conn()

    def plan(sql: str, params: tuple[Any, ...]) -> str:
        return " | ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))

    assert "jobs_due" in plan(SQLITE_SQL.stage, (1.0, 10))
    assert "jobs_due" in plan(SQLITE_SQL.next_due, ())
    assert "jobs_lease" in plan(SQLITE_SQL.expired, (1.0, 10))
    assert "jobs_finished" in plan(SQLITE_SQL.prune_candidates, ("completed", 1.0, 10))
    assert "jobs_finished" in plan(SQLITE_SQL.prune_count, ("completed", 1.0))
    assert "jobs_live_steps" in plan(SQLITE_SQL.prune_count, ("completed", 1.0))
    assert "jobs_claim" in plan(SQLITE_SQL.oldest_pending, ())


# hot paths ---------------------------------------------------------------------------------
def test_each_claimed_job_gets_its_own_random_token(store: SQLiteStore) -> None:
    store.enqueue([job() for _ in range(20)])

    leases = claim(store, limit=20)

    tokens = [lease.token for lease in leases]
    assert len(set(tokens)) == 20
    assert all(len(t) == 32 and int(t, 16) >= 0 for t in tokens)
    assert all(lease.job.lease_token == lease.token for lease in leases)


def test_complete_handles_batches_larger_than_one_statement(store: SQLiteStore) -> None:
    count = dialect.COMPLETE_CHUNK * 2 + 7
    store.enqueue([job() for _ in range(count)])
    leases = claim(store, limit=count)
    stale = leases[5]
    done = [Completion(lease, b"r") for lease in leases]
    # A lease whose token does not hold (forged) is reported lost; the rest complete.
    forged = Completion(type(stale)(stale.job, "0" * 32, stale.expires_at), b"x")

    lost = store.complete([forged, *done])

    assert lost == [stale.job_id]
    page = store.search(JobQuery(states=[S.COMPLETED], limit=1))
    assert page.total == count
    assert store.get(stale.job_id).result == b"r"  # type: ignore[union-attr]


def test_a_stale_and_a_live_lease_of_one_job_in_one_batch(store: SQLiteStore) -> None:
    clock = store.clock
    assert isinstance(clock, FakeClock)
    [result] = store.enqueue([job()])
    [stale] = claim(store)
    clock.advance(60)
    store.rescue_expired(RescueParams(retry_delay=0.0))
    store.stage_due()
    [live] = claim(store)

    lost = store.complete([Completion(stale, b"old"), Completion(live, b"new")])

    assert lost == [result.id]
    assert store.get(result.id).result == b"new"  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["%", "_", "\\", "50%_off"])
def test_text_search_treats_like_wildcards_literally(store: SQLiteStore, text: str) -> None:
    plain = job(task="report.build")
    special = job(task="report.x")
    store.enqueue([plain, special])
    [lease] = store.claim(
        ClaimParams(queues=["default"], worker_id="w", job_ids=[special.id], limit=1)
    )
    store.fail(lease, _error(f"disk at 50%_off {text} \\ done"), retry_at=None)

    page = store.search(JobQuery(text=text))

    assert [j.id for j in page.items] == [special.id]


def _error(message: str) -> JobError:
    return JobError(attempt=1, type="E", message=message)


# wake-up -----------------------------------------------------------------------------------
def _enqueue_from_child(path: str) -> None:
    store = SQLiteStore(path)
    store.enqueue([job()])
    store.close()


@pytest.mark.slow
def test_an_enqueue_in_another_process_wakes_a_waiting_thread(store: SQLiteStore) -> None:
    store.migrate()
    bound = threading.Event()
    outcome: list[Any] = []

    def waiter() -> None:
        try:
            store.wait_for_work(["default"], timeout=0)  # binds this thread's socket
            bound.set()
            started = time.monotonic()
            outcome.append(store.wait_for_work(["default"], timeout=5.0))
            outcome.append(time.monotonic() - started)
        except BaseException as exc:
            outcome.append(exc)
        finally:
            bound.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert bound.wait(timeout=5)
    child = FORK.Process(target=_enqueue_from_child, args=(store.path,))
    child.start()
    child.join(timeout=30)
    thread.join(timeout=10)

    assert child.exitcode == 0
    assert not thread.is_alive()
    assert outcome[0] is True
    assert outcome[1] < 2.5


def test_wait_for_work_blocks_until_the_timeout_when_nothing_happens(store: SQLiteStore) -> None:
    started = time.monotonic()

    assert store.wait_for_work(["default"], timeout=0.2) is False

    elapsed = time.monotonic() - started
    assert 0.19 <= elapsed < 2.0


def test_a_wait_drains_every_pending_notification(store: SQLiteStore) -> None:
    store.wait_for_work(["default"], timeout=0)  # bind
    for _ in range(5):
        store.enqueue([job()])

    assert store.wait_for_work(["default"], timeout=0) is True
    assert store.wait_for_work(["default"], timeout=0) is False


@pytest.mark.parametrize("tick_ms", [0, 10])
def test_notifications_reach_waiters_that_bind_right_after_a_listing(
    db_path: str, tick_ms: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket bound in the same timestamp tick as the last listing must still be seen.

    Many kernels stamp directories from a coarse clock (one tick is several ms); newer
    ones are fine-grained, so ``tick_ms=10`` simulates the coarse kind.
    """
    if tick_ms:
        tick = tick_ms * 1_000_000
        real = wakeup.directory_mtime_ns
        monkeypatch.setattr(wakeup, "directory_mtime_ns", lambda p: real(p) // tick * tick)
    sender = WakeChannel(db_path)
    waiters: list[WakeChannel] = []
    try:
        for _ in range(30):
            waiter = WakeChannel(db_path)
            waiters.append(waiter)
            assert waiter.wait(0) is False  # binds
            sender.notify()
            assert waiter.wait(0) is True
    finally:
        for channel in [sender, *waiters]:
            channel.close()


def test_an_unchanged_directory_is_not_listed_again(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = WakeChannel(db_path)
    waiter = WakeChannel(db_path)
    try:
        waiter.wait(0)
        old = time.time_ns() - 10_000_000_000
        os.utime(sender.directory, ns=(old, old))
        sender.notify()  # lists once; the listing is old enough to trust
        listings: list[str] = []
        real_listdir = os.listdir

        def counting_listdir(path: str) -> list[str]:
            listings.append(path)
            return real_listdir(path)

        monkeypatch.setattr(os, "listdir", counting_listdir)
        for _ in range(10):
            sender.notify()
        assert listings == []
        assert waiter.wait(0) is True

        late = WakeChannel(db_path)
        waiters_bound_later = late.wait(0)
        sender.notify()
        assert len(listings) == 1  # the new socket moved the directory's mtime
        assert late.wait(0) is True
        assert waiters_bound_later is False
        late.close()
    finally:
        sender.close()
        waiter.close()


def test_sockets_left_by_dead_processes_are_removed(db_path: str) -> None:
    sender = WakeChannel(db_path)
    os.makedirs(sender.directory, exist_ok=True)
    dead = os.path.join(sender.directory, "999999-deadbeef.sock")
    orphan = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    orphan.bind(dead)
    orphan.close()  # the file stays, nobody receives
    try:
        sender.notify()
        assert not os.path.exists(dead)
    finally:
        sender.close()


def test_long_database_paths_fall_back_to_a_short_directory(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = str(deep / "conveyor.db")
    waiter = WakeChannel(path)
    sender = WakeChannel(path)
    try:
        assert not waiter.directory.startswith(str(deep))
        waiter.wait(0)
        sender.notify()
        assert waiter.wait(0) is True
    finally:
        waiter.close()
        sender.close()


def test_close_wakes_a_blocked_waiter_and_removes_its_socket(store: SQLiteStore) -> None:
    started = threading.Event()
    outcome: list[Any] = []

    def waiter() -> None:
        store.wait_for_work(["default"], timeout=0)
        started.set()
        outcome.append(store.wait_for_work(["default"], timeout=10.0))

    thread = threading.Thread(target=waiter)
    thread.start()
    assert started.wait(5)
    directory = store._wake.directory
    assert len(os.listdir(directory)) == 1
    begun = time.monotonic()
    store.close()
    thread.join(timeout=5)

    assert not thread.is_alive()
    assert outcome == [False]
    assert time.monotonic() - begun < 5
    assert os.listdir(directory) == []


# transactional enqueue ---------------------------------------------------------------------
@pytest.fixture
def app_conn(store: SQLiteStore) -> Iterator[sqlite3.Connection]:
    store.migrate()
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, note TEXT)")
    try:
        yield conn
    finally:
        conn.close()


def test_jobs_enqueued_in_a_committed_transaction_appear(
    store: SQLiteStore, app_conn: sqlite3.Connection
) -> None:
    app_conn.execute("BEGIN")
    app_conn.execute("INSERT INTO orders (note) VALUES ('paid')")
    [result] = store.enqueue([job()], connection=app_conn)

    assert store.get(result.id) is None  # not visible before the caller commits
    assert app_conn.in_transaction
    app_conn.execute("COMMIT")

    assert store.get(result.id).state is S.PENDING  # type: ignore[union-attr]
    assert [lease.job_id for lease in claim(store)] == [result.id]


def test_jobs_enqueued_in_a_rolled_back_transaction_never_exist(
    store: SQLiteStore, app_conn: sqlite3.Connection
) -> None:
    keyed = job(unique_key="order-1")
    app_conn.execute("BEGIN")
    app_conn.execute("INSERT INTO orders (note) VALUES ('paid')")
    store.enqueue([keyed], connection=app_conn)
    app_conn.execute("ROLLBACK")

    assert store.get(keyed.id) is None
    assert app_conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
    # The unique key was rolled back with the job.
    [again] = store.enqueue([job(unique_key="order-1")])
    assert not again.duplicate


def test_a_refused_batch_leaves_the_callers_own_writes_alone(
    store: SQLiteStore, app_conn: sqlite3.Connection
) -> None:
    good = job()
    app_conn.execute("BEGIN")
    app_conn.execute("INSERT INTO orders (note) VALUES ('kept')")

    with pytest.raises(UnknownDependency):
        store.enqueue([good, job(depends_on=("nope",))], connection=app_conn)

    assert app_conn.in_transaction
    app_conn.execute("COMMIT")
    assert app_conn.execute("SELECT note FROM orders").fetchall() == [("kept",)]
    assert store.get(good.id) is None


def test_the_documented_with_conn_idiom_commits_or_rolls_back_both(
    store: SQLiteStore, app_conn: sqlite3.Connection
) -> None:
    conn = sqlite3.connect(store.path)  # default: implicit transactions, as in the quickstart
    kept, dropped = job(), job()
    try:
        with conn:
            conn.execute("INSERT INTO orders (note) VALUES ('kept')")
            store.enqueue([kept], connection=conn)
        with pytest.raises(RuntimeError), conn:
            conn.execute("INSERT INTO orders (note) VALUES ('dropped')")
            store.enqueue([dropped], connection=conn)
            raise RuntimeError("the handler failed")
    finally:
        conn.close()

    assert app_conn.execute("SELECT note FROM orders").fetchall() == [("kept",)]
    assert store.get(kept.id) is not None
    assert store.get(dropped.id) is None


@pytest.mark.parametrize("isolation_level", [None, "DEFERRED"])
def test_a_refused_batch_outside_a_transaction_leaves_none_open(
    store: SQLiteStore, isolation_level: Literal["DEFERRED"] | None
) -> None:
    store.migrate()
    conn = sqlite3.connect(store.path, isolation_level=isolation_level)
    first = job()
    try:
        with pytest.raises(UnknownDependency):
            store.enqueue([first, job(depends_on=("nope",))], connection=conn)
        assert not conn.in_transaction  # the write lock is not left held
        assert len(store.enqueue([job()])) == 1
    finally:
        conn.close()
    assert store.get(first.id) is None


def test_legacy_transaction_control_joins_and_the_caller_commits(store: SQLiteStore) -> None:
    store.migrate()
    conn = sqlite3.connect(store.path)  # default isolation_level: implicit transactions
    conn.row_factory = sqlite3.Row
    conn.text_factory = bytes
    try:
        [result] = store.enqueue([job()], connection=conn)
        assert conn.in_transaction
        assert store.get(result.id) is None
        conn.commit()
        assert store.get(result.id) is not None
        assert conn.row_factory is sqlite3.Row and conn.text_factory is bytes
    finally:
        conn.close()


def test_an_autocommit_connection_commits_at_once_and_wakes_waiters(
    store: SQLiteStore, app_conn: sqlite3.Connection
) -> None:
    store.wait_for_work(["default"], timeout=0)  # bind

    [result] = store.enqueue([job()], connection=app_conn)

    assert not app_conn.in_transaction
    assert store.get(result.id) is not None
    assert store.wait_for_work(["default"], timeout=0) is True


def test_a_connection_to_another_database_is_refused(store: SQLiteStore, tmp_path: Path) -> None:
    other = sqlite3.connect(str(tmp_path / "other.db"), isolation_level=None)
    memory = sqlite3.connect(":memory:")
    new = job()
    try:
        with pytest.raises(ConfigurationError, match=r"other\.db"):
            store.enqueue([new], connection=other)
        with pytest.raises(ConfigurationError, match="in-memory"):
            store.enqueue([new], connection=memory)
        with pytest.raises(ConfigurationError, match=r"sqlite3\.Connection"):
            store.enqueue([new], connection="sqlite:///x.db")
    finally:
        other.close()
        memory.close()
    assert store.get(new.id) is None


# fork safety and processes -----------------------------------------------------------------
def _use_inherited_store(store: SQLiteStore, parent_conn_id: int, out: str) -> None:
    conn = store._conn()
    [result] = store.enqueue([job(queue="child")])
    [lease] = store.claim(ClaimParams(queues=["child"], worker_id="child", limit=1))
    lost = store.complete([Completion(lease, b"from child")])
    Path(out).write_text(
        json.dumps({"new_conn": id(conn) != parent_conn_id, "id": result.id, "lost": lost})
    )
    store.close()


@pytest.mark.slow
def test_a_forked_child_opens_its_own_connection_and_the_parent_keeps_working(
    store: SQLiteStore, tmp_path: Path
) -> None:
    [before] = store.enqueue([job()])
    parent_conn = store._conn()
    out = str(tmp_path / "child.json")

    child = FORK.Process(target=_use_inherited_store, args=(store, id(parent_conn), out))
    child.start()
    child.join(timeout=60)

    assert child.exitcode == 0
    report = json.loads(Path(out).read_text())
    assert report["new_conn"] is True
    assert report["lost"] == []
    assert store._conn() is parent_conn
    assert store.get(report["id"]).result == b"from child"  # type: ignore[union-attr]
    assert [lease.job_id for lease in claim(store)] == [before.id]
    assert parent_conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _claim_and_complete(path: str, worker: str, out: str) -> None:
    store = SQLiteStore(path, busy_timeout_ms=30_000)
    claimed: list[str] = []
    limits = [1, 3, 7, 16]
    turn = 0
    while True:
        leases = store.claim(
            ClaimParams(queues=["race"], worker_id=worker, limit=limits[turn % len(limits)])
        )
        turn += 1
        if not leases:
            break
        claimed.extend(lease.job_id for lease in leases)
        lost = store.complete([Completion(lease, worker.encode()) for lease in leases])
        if lost:
            raise AssertionError(f"{worker} lost {lost}")
    store.close()
    Path(out).write_text(json.dumps(claimed))


@pytest.mark.slow
def test_four_processes_claim_every_job_exactly_once(store: SQLiteStore, tmp_path: Path) -> None:
    jobs = [job(queue="race", priority=i % 3) for i in range(2000)]
    store.enqueue(jobs)
    outs = [str(tmp_path / f"claims{i}.json") for i in range(4)]
    workers = [
        FORK.Process(target=_claim_and_complete, args=(store.path, f"w{i}", out))
        for i, out in enumerate(outs)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    claims = [json.loads(Path(out).read_text()) for out in outs]
    every = [job_id for claimed in claims for job_id in claimed]
    assert len(every) == len(set(every)) == 2000
    assert set(every) == {j.id for j in jobs}
    assert sum(1 for claimed in claims if claimed) >= 2  # they really raced
    stored = store.get_many([j.id for j in jobs])
    assert {j.state for j in stored} == {S.COMPLETED}
    assert {j.attempt for j in stored} == {1}
    owner = {job_id: f"w{i}".encode() for i, claimed in enumerate(claims) for job_id in claimed}
    assert all(j.result == owner[j.id] for j in stored)


# node registry -----------------------------------------------------------------------------
def test_a_version_1_database_is_upgraded_and_keeps_nodes_on_records(db_path: str) -> None:
    raw = sqlite3.connect(db_path, isolation_level=None)
    try:
        assert schema.migrate(raw, schema.load_migrations()[:1]) == 1
        raw.execute(
            "INSERT INTO jobs (id, queue, task, payload, state, run_at, created_at) "
            "VALUES ('old-job', 'default', 't', x'00', 'pending', 1.0, 1.0)"
        )
        assert raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'nodes'").fetchone() is None
    finally:
        raw.close()
    assert [m.name for m in schema.load_migrations()[:2]] == ["0001_initial.sql", "0002_nodes.sql"]

    store = SQLiteStore(db_path, clock=FakeClock())
    try:
        latest = schema.latest_version()
        assert store.info().schema_version == latest >= 6
        conn = store._conn()
        ledger = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        assert ledger == list(range(1, latest + 1))
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert not {"nodes", "nodes_heartbeat"} & names  # version 6 moved nodes to records
        old = store.get("old-job")
        assert old is not None and old.state is S.PENDING
        store.register_node(NodeInfo(id="n", host="h", pid=1, queues=("default",)))
        assert [n.id for n in store.list_nodes()] == ["n"]
    finally:
        store.close()


def test_the_nodes_table_of_version_2_is_dropped_by_version_6(db_path: str) -> None:
    raw = sqlite3.connect(db_path, isolation_level=None)
    try:
        assert schema.migrate(raw, schema.load_migrations()[:5]) == 5
        raw.execute("INSERT INTO nodes VALUES ('n', 1.0, 2.0, '{}')")
        assert schema.migrate(raw) == schema.latest_version() >= 6
        names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
    finally:
        raw.close()

    assert "0006_drop_nodes.sql" in [m.name for m in schema.load_migrations()]
    assert not {"nodes", "nodes_heartbeat"} & names


def test_node_records_keep_the_whole_node_as_json(store: SQLiteStore) -> None:
    worker = WorkerInfo(id="w", pid=2, state="busy", current_job="j1", rss_bytes=1 << 40)
    node = NodeInfo(id="n", host="h", pid=1, queues=("a",), started_at=5.5, workers=(worker,))
    store.register_node(node, now=9.25)

    row = (
        store._conn()
        .execute("SELECT key, value, expires_at FROM records WHERE namespace = 'node'")
        .fetchone()
    )

    assert row[0] == "n" and row[2] is None
    data = json.loads(row[1])
    assert (data["started_at"], data["heartbeat_at"]) == (5.5, 9.25)
    assert data["workers"] == [dataclasses.asdict(worker)]


def test_node_documents_tolerate_fields_they_do_not_know() -> None:
    text = json.dumps(
        {
            "id": "n",
            "host": "h",
            "pid": 1,
            "queues": ["a"],
            "zone": "eu",
            "workers": [{"id": "w", "pid": 2, "state": "idle", "gpu": 0}],
        }
    )

    node = node_records.node_from_json(text)

    assert node == NodeInfo(
        id="n", host="h", pid=1, queues=("a",), workers=(WorkerInfo(id="w", pid=2, state="idle"),)
    )


def test_large_payloads_live_apart_and_leave_with_their_job(
    store: SQLiteStore, db_path: str
) -> None:
    big = job(payload=os.urandom(dialect.INLINE_PAYLOAD_MAX + 1))
    small = job(payload=b"tiny")
    store.enqueue([big, small])
    with sqlite3.connect(db_path) as raw:
        kept = dict(raw.execute("SELECT id, length(payload) FROM jobs").fetchall())
        apart = raw.execute("SELECT job_id FROM job_payloads").fetchall()
    assert kept == {big.id: 0, small.id: 4} and apart == [(big.id,)]
    leases = claim(store, limit=2)
    assert {lease.job.payload for lease in leases} == {big.payload, small.payload}
    assert store.complete([Completion(lease) for lease in leases]) == []
    got = store.get(big.id)
    assert got is not None and got.payload == big.payload
    assert store.delete([big.id]) == 1
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("SELECT count(*) FROM job_payloads").fetchone() == (0,)


def test_threads_making_their_first_write_at_once_share_one_writer_gate(tmp_path: Path) -> None:
    """Regression: the gate was set up without a lock, so racing first writers could each
    open a descriptor and one could unlock another's, leaving the lock held forever."""
    import threading

    from conveyor.stores.sqlite import SQLiteStore

    for trial in range(40):  # the race hit about one trial in ten
        store = SQLiteStore(tmp_path / f"race{trial}.db")
        store.migrate()
        store._gate.close()  # as in a fresh process: the gate is not set up yet
        barrier = threading.Barrier(6)

        def write(n: int, store: SQLiteStore = store, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            store.put_record("ns", f"k{n}", b"v", expect_version=None)

        threads = [threading.Thread(target=write, args=(n,), daemon=True) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not any(t.is_alive() for t in threads), f"a writer hung (trial {trial})"
        assert len(store.list_records("ns")) == 6
        store.close()
