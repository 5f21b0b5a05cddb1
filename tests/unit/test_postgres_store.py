"""What is specific to the PostgreSQL store: DSN and schema, migrations, transactional
enqueue and completion, LISTEN/NOTIFY, SKIP LOCKED under concurrency, connection loss.

The shared behaviour is covered by the conformance suite in ``tests/stores``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis.stateful import run_state_machine_as_test
from tests import servers
from tests.stores.test_state_machine import MACHINE_SETTINGS, StoreComparison

from conveyor.clock import FakeClock
from conveyor.errors import ConfigurationError, LeaseLost, StoreUnavailable
from conveyor.ids import IdGenerator
from conveyor.job import JobError, JobState, NewJob
from conveyor.stores import open_store
from conveyor.stores.base import ClaimParams, Completion, NodeInfo, PruneParams
from conveyor.stores.postgres import PostgresStore
from conveyor.stores.postgres.connection import parse_dsn
from conveyor.stores.postgres.dialect import POSTGRES_SQL
from conveyor.stores.postgres.schema import latest_version

_IDS = IdGenerator()


def _job(**overrides: Any) -> NewJob:
    fields: dict[str, Any] = {"id": _IDS.new(), "queue": "default", "task": "t.noop"}
    fields["payload"] = b"\x00payload"
    fields.update(overrides)
    return NewJob(**fields)


def _claim(store: PostgresStore, limit: int = 1, worker: str = "w1") -> list[Any]:
    return store.claim(ClaimParams(queues=["default"], worker_id=worker, limit=limit))


def _server_dsn(dsn: str) -> str:
    return parse_dsn(dsn).conninfo


@pytest.fixture(scope="module", autouse=True)
def _server_accepts_connections(postgres_server: Any) -> None:
    """The shared server helper waits for the port; wait until it also accepts logins
    (right after start-up it answers "the database system is starting up")."""
    deadline = time.monotonic() + 30.0
    while True:
        try:
            with psycopg.connect(postgres_server.dsn, connect_timeout=5):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def store(postgres_dsn: str) -> Iterator[PostgresStore]:
    opened = open_store(postgres_dsn, clock=FakeClock())
    assert isinstance(opened, PostgresStore)
    opened.migrate()
    try:
        yield opened
    finally:
        opened.close()


# DSN -----------------------------------------------------------------------------------------
def test_dsn_schema_is_stripped_and_other_parameters_pass_through() -> None:
    settings = parse_dsn(
        "postgresql://bob:secret@db.example:5433/app?schema=jobs_1&sslmode=require"
    )

    assert settings.schema == "jobs_1"
    assert "schema" not in settings.conninfo
    assert "sslmode=require" in settings.conninfo
    assert settings.conninfo.startswith("postgresql://bob:secret@db.example:5433/app")
    assert "secret" not in settings.location
    assert "schema=jobs_1" in settings.location


def test_dsn_without_schema_uses_public_and_postgres_scheme_is_accepted() -> None:
    settings = parse_dsn("postgres://u@h/db")

    assert settings.schema == "public"
    assert settings.conninfo == "postgresql://u@h/db"


@pytest.mark.parametrize("bad", ["1abc", "a-b", 'x"; DROP TABLE jobs; --', "", "a" * 64])
def test_dsn_refuses_a_schema_that_is_not_an_identifier(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_dsn(f"postgresql://u@h/db?schema={bad}")


def test_password_parameter_is_redacted_from_the_location() -> None:
    settings = parse_dsn("postgresql://u@h/db?password=hunter2&schema=s")

    assert "hunter2" not in settings.location
    assert "password=hunter2" in settings.conninfo


def test_tables_live_in_the_named_schema(store: PostgresStore, postgres_dsn: str) -> None:
    store.enqueue([_job()])
    with psycopg.connect(_server_dsn(postgres_dsn)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
            (store.schema,),
        ).fetchone()
        public = conn.execute("SELECT to_regclass('public.jobs')").fetchone()
    assert row is not None and row[0] >= 6
    assert public == (None,)


def test_info_reports_driver_durability_and_version(store: PostgresStore) -> None:
    info = store.info()

    assert info.driver == "postgresql"
    assert "durable (PostgreSQL commit" in info.durability
    assert "synchronous_commit" in info.durability
    assert info.schema_version == latest_version()
    assert info.details["schema"] == store.schema


# migrations ------------------------------------------------------------------------------------
def test_migrations_are_idempotent(store: PostgresStore, postgres_dsn: str) -> None:
    assert store.migrate() == latest_version()
    assert store.migrate() == latest_version()
    again = PostgresStore.from_dsn(postgres_dsn)
    try:
        assert again.migrate() == latest_version()
    finally:
        again.close()
    with psycopg.connect(_server_dsn(postgres_dsn)) as conn:
        rows = conn.execute(f'SELECT version FROM "{store.schema}".schema_migrations').fetchall()
    assert [r[0] for r in rows] == list(range(1, latest_version() + 1))


def test_version_4_drops_the_nodes_table_and_nodes_live_on_records(
    store: PostgresStore, postgres_dsn: str
) -> None:
    store.register_node(NodeInfo(id="n", host="h", pid=1, queues=("default",)), now=7.0)

    with psycopg.connect(_server_dsn(postgres_dsn)) as conn:
        table = conn.execute("SELECT to_regclass(%s)", (f'"{store.schema}".nodes',)).fetchone()
        record = conn.execute(
            f'SELECT key FROM "{store.schema}".records WHERE namespace = %s', ("node",)
        ).fetchall()

    assert latest_version() >= 4
    assert table == (None,)
    assert record == [("n",)]
    assert [(n.id, n.heartbeat_at) for n in store.list_nodes()] == [("n", 7.0)]


def test_concurrent_migrators_serialise(postgres_dsn: str) -> None:
    stores = [PostgresStore.from_dsn(postgres_dsn) for _ in range(4)]
    versions: list[int] = []
    errors: list[BaseException] = []

    def run(s: PostgresStore) -> None:
        try:
            versions.append(s.migrate())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for s in stores:
        s.close()
    assert errors == []
    assert versions == [latest_version()] * 4


# transactional enqueue ----------------------------------------------------------------------------
def test_enqueue_in_a_rolled_back_transaction_leaves_no_job(
    store: PostgresStore, postgres_dsn: str
) -> None:
    job = _job()
    with psycopg.connect(_server_dsn(postgres_dsn)) as conn:
        conn.execute("CREATE TEMP TABLE orders (id int)")
        conn.execute("INSERT INTO orders VALUES (1)")
        [result] = store.enqueue([job], connection=conn)
        assert result.id == job.id
        assert store.get(job.id) is None  # not visible before the caller commits
        conn.rollback()

    assert store.get(job.id) is None


def test_enqueue_in_a_committed_transaction_creates_the_job(
    store: PostgresStore, postgres_dsn: str
) -> None:
    job = _job()
    with psycopg.connect(_server_dsn(postgres_dsn)) as conn:
        store.enqueue([job], connection=conn)
        path = conn.execute("SHOW search_path").fetchone()
        assert path is not None and store.schema not in str(path[0])  # caller's path restored
        conn.commit()

    stored = store.get(job.id)
    assert stored is not None and stored.state is JobState.PENDING


def test_a_refused_batch_keeps_the_callers_transaction_usable(
    store: PostgresStore, postgres_dsn: str
) -> None:
    from conveyor.errors import UnknownDependency

    ok = _job()
    with psycopg.connect(_server_dsn(postgres_dsn)) as conn:
        store.enqueue([ok], connection=conn)
        with pytest.raises(UnknownDependency):
            store.enqueue([_job(depends_on=("missing",))], connection=conn)
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.commit()

    assert store.get(ok.id) is not None


def test_enqueue_on_an_autocommit_connection_commits_by_itself(
    store: PostgresStore, postgres_dsn: str
) -> None:
    job = _job()
    with psycopg.connect(_server_dsn(postgres_dsn), autocommit=True) as conn:
        store.enqueue([job], connection=conn)

    assert store.get(job.id) is not None


def test_enqueue_refuses_a_connection_that_is_not_psycopg(store: PostgresStore) -> None:
    import sqlite3

    job = _job()
    with pytest.raises(ConfigurationError):
        store.enqueue([job], connection=sqlite3.connect(":memory:"))
    assert store.get(job.id) is None


# complete_in_transaction -----------------------------------------------------------------------
def test_complete_in_transaction_commits_with_the_callers_work(
    store: PostgresStore, postgres_dsn: str
) -> None:
    [result] = store.enqueue([_job()])
    [lease] = _claim(store)
    with psycopg.connect(_server_dsn(postgres_dsn)) as conn:
        store.complete_in_transaction(lease, b"done", conn)
        still = store.get(result.id)
        assert still is not None and still.state is JobState.PROCESSING
        conn.commit()

    done = store.get(result.id)
    assert done is not None and done.state is JobState.COMPLETED and done.result == b"done"
    assert store.complete([Completion(lease, b"again")]) == [result.id]  # fenced


def test_complete_in_transaction_rolls_back_with_the_callers_work(
    store: PostgresStore, postgres_dsn: str
) -> None:
    [result] = store.enqueue([_job()])
    [lease] = _claim(store)
    with psycopg.connect(_server_dsn(postgres_dsn)) as conn:
        store.complete_in_transaction(lease, b"done", conn)
        conn.rollback()

    job = store.get(result.id)
    assert job is not None and job.state is JobState.PROCESSING
    assert store.complete([Completion(lease, b"ok")]) == []


def test_complete_in_transaction_with_a_lost_lease_raises(
    store: PostgresStore, postgres_dsn: str
) -> None:
    store.enqueue([_job()])
    [lease] = _claim(store)
    store.cancel([lease.job_id], force=True)
    with psycopg.connect(_server_dsn(postgres_dsn)) as conn:
        with pytest.raises(LeaseLost):
            store.complete_in_transaction(lease, None, conn)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_complete_in_transaction_refuses_other_objects(store: PostgresStore) -> None:
    store.enqueue([_job()])
    [lease] = _claim(store)
    with pytest.raises(ConfigurationError):
        store.complete_in_transaction(lease, None, object())


# LISTEN / NOTIFY -------------------------------------------------------------------------------
def test_wait_for_work_times_out_with_false(store: PostgresStore) -> None:
    started = time.monotonic()
    assert store.wait_for_work(["default"], timeout=0.2) is False
    assert 0.15 <= time.monotonic() - started < 2.0


def test_wait_for_work_wakes_on_an_enqueue_from_another_store(
    store: PostgresStore, postgres_dsn: str
) -> None:
    store.wait_for_work(["default"], timeout=0.01)  # LISTEN is now registered
    producer = PostgresStore.from_dsn(postgres_dsn)
    outcome: list[bool] = []
    woke_at: list[float] = []

    def waiter() -> None:
        outcome.append(store.wait_for_work(["default"], timeout=10.0))
        woke_at.append(time.monotonic())

    thread = threading.Thread(target=waiter)
    try:
        producer.migrate()
        thread.start()
        time.sleep(0.2)
        sent = time.monotonic()
        producer.enqueue([_job()])
        thread.join(timeout=10)
    finally:
        producer.close()
    assert outcome == [True]
    assert woke_at[0] - sent < 1.0


def test_notification_of_a_transactional_enqueue_waits_for_the_commit(
    store: PostgresStore, postgres_dsn: str
) -> None:
    store.wait_for_work(["default"], timeout=0.01)
    with psycopg.connect(_server_dsn(postgres_dsn)) as conn:
        store.enqueue([_job()], connection=conn)
        assert store.wait_for_work(["default"], timeout=0.2) is False
        conn.commit()
    assert store.wait_for_work(["default"], timeout=5.0) is True


# SKIP LOCKED ----------------------------------------------------------------------------------
def test_concurrent_claimers_take_every_job_exactly_once(postgres_dsn: str) -> None:
    store = PostgresStore.from_dsn(postgres_dsn, clock=FakeClock())
    try:
        ids = [r.id for r in store.enqueue([_job() for _ in range(300)])]
        claimed: list[list[str]] = [[] for _ in range(4)]
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def worker(index: int) -> None:
            try:
                start.wait()
                lost: list[str] = []
                leases = _claim(store, limit=7, worker=f"w{index}")
                while leases:
                    claimed[index].extend(lease.job_id for lease in leases)
                    done = [Completion(lease, b"r") for lease in leases]
                    lost_now, leases = store.complete_and_claim(
                        done, ClaimParams(queues=["default"], worker_id=f"w{index}", limit=7)
                    )
                    lost.extend(lost_now)
                assert lost == []
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        everything = [job_id for part in claimed for job_id in part]
        assert sorted(everything) == sorted(ids)
        assert len(set(everything)) == len(ids)
        assert sum(1 for part in claimed if part) >= 2
        stats = {s.queue: s.counts for s in store.stats()}
        assert stats["default"] == {"completed": 300}
    finally:
        store.close()


# prune against a concurrent retry ---------------------------------------------------------
def _waiting_on_a_lock(postgres_dsn: str) -> bool:
    with psycopg.connect(_server_dsn(postgres_dsn), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
    return row is not None and row[0] > 0


def test_prune_keeps_a_job_retried_while_it_was_being_pruned(
    store: PostgresStore, postgres_dsn: str
) -> None:
    """The pruner picks an old failed job; an operator's retry commits before the pruner
    deletes it: the job is pending again and must survive, not be deleted by id."""
    [failed] = store.enqueue([_job(max_attempts=1)])
    [lease] = _claim(store)
    error = JobError(attempt=lease.job.attempt, type="ValueError", message="boom")
    store.fail(lease, error, retry_at=None, reason=None)
    assert isinstance(store.clock, FakeClock)
    store.clock.advance(1000)

    outcome: list[object] = []
    with psycopg.connect(_server_dsn(postgres_dsn)) as operator:
        operator.execute(f'SET search_path TO "{store.schema}"')
        retried = operator.execute(POSTGRES_SQL.retry, (store.clock.now(), failed.id)).rowcount
        assert retried == 1  # the row is locked until the operator commits

        def prune() -> None:
            try:
                outcome.append(store.prune(PruneParams(failed_after=500, sweep=False)))
            except BaseException as exc:  # pragma: no cover - reported below
                outcome.append(exc)

        thread = threading.Thread(target=prune)
        thread.start()
        deadline = time.monotonic() + 10.0
        while thread.is_alive() and not _waiting_on_a_lock(postgres_dsn):
            assert time.monotonic() < deadline, "prune neither finished nor waited on the row"
            time.sleep(0.01)
        operator.commit()
        thread.join(timeout=30)

    assert not thread.is_alive()
    assert [type(o).__name__ for o in outcome] == ["PruneResult"]
    job = store.get(failed.id)
    assert job is not None and job.state is JobState.PENDING


# connection loss ------------------------------------------------------------------------------
def _terminate_others(postgres_dsn: str) -> int:
    with psycopg.connect(_server_dsn(postgres_dsn), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        ).fetchall()
    return len(rows)


def _eventually(call: Any) -> Any:
    """The call may fail once with StoreUnavailable; the one after must succeed."""
    try:
        return call()
    except StoreUnavailable:
        return call()


def test_the_store_survives_terminated_connections(store: PostgresStore, postgres_dsn: str) -> None:
    [first] = store.enqueue([_job()])
    store.wait_for_work(["default"], timeout=0.01)
    assert _terminate_others(postgres_dsn) >= 1

    [second] = _eventually(lambda: store.enqueue([_job()]))
    leases = _eventually(lambda: _claim(store, limit=5))
    assert {lease.job_id for lease in leases} == {first.id, second.id}
    assert store.complete([Completion(lease, None) for lease in leases]) == []

    # The waiter's connection was terminated too: one StoreUnavailable at most, then it works.
    assert _eventually(lambda: store.wait_for_work(["default"], timeout=0.05)) in (True, False)
    assert store.wait_for_work(["default"], timeout=0.05) is False


def test_a_dead_server_raises_store_unavailable() -> None:
    store = PostgresStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout=0.5)
    try:
        with pytest.raises(StoreUnavailable):
            store.get("x")
    finally:
        store.close()


def test_close_wakes_a_waiter_quietly(store: PostgresStore) -> None:
    outcome: list[object] = []
    thread = threading.Thread(
        target=lambda: outcome.append(store.wait_for_work(["default"], timeout=10.0))
    )
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    store.close()
    thread.join(timeout=10)
    assert outcome == [False]
    assert time.monotonic() - started < 2.0


# fork safety ------------------------------------------------------------------------------------
def _claim_all_in_child(store: PostgresStore, worker: str, out: Any) -> None:
    taken: list[str] = []
    while leases := _claim(store, limit=5, worker=worker):
        taken.extend(lease.job_id for lease in leases)
        assert store.complete([Completion(lease, None) for lease in leases]) == []
    out.put(taken)


def test_forked_processes_claim_every_job_exactly_once(store: PostgresStore) -> None:
    import multiprocessing

    ids = [r.id for r in store.enqueue([_job() for _ in range(200)])]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all_in_child, args=(store, f"p{i}", out)) for i in range(4)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    everything = [job_id for part in results for job_id in part]
    assert sorted(everything) == sorted(ids)
    # The parent's pool was never touched by the children: it still works.
    assert {s.queue: s.counts for s in store.stats()}["default"] == {"completed": 200}


def test_concurrent_enqueues_of_one_unique_key_keep_one_job(postgres_dsn: str) -> None:
    stores = [PostgresStore.from_dsn(postgres_dsn) for _ in range(6)]
    results: list[Any] = []
    start = threading.Barrier(len(stores))

    def producer(s: PostgresStore) -> None:
        start.wait()
        results.extend(s.enqueue([_job(unique_key="report-1")]))

    try:
        for s in stores:
            s.migrate()
        threads = [threading.Thread(target=producer, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        for s in stores:
            s.close()
    fresh = [r for r in results if not r.duplicate]
    assert len(results) == len(stores)
    assert len(fresh) == 1
    assert {r.id for r in results} == {fresh[0].id}


# model-based -------------------------------------------------------------------------------
def test_postgres_matches_the_reference_store(
    postgres_server: servers.PostgresServer, tmp_path: Path
) -> None:
    """The Hypothesis state machine of tests/stores, PostgreSQL against the memory store;
    every example gets a schema of its own."""
    schemas: list[str] = []

    class Machine(StoreComparison):
        def __init__(self) -> None:
            super().__init__("memory", tmp_path)
            schema = f"sm_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            schemas.append(schema)
            driver = PostgresStore.from_dsn(
                f"{postgres_server.dsn}?schema={schema}", clock=self.clock
            )
            driver.migrate()
            self.stores[1].close()
            self.stores = (self.stores[0], driver)

    try:
        run_state_machine_as_test(Machine, settings=MACHINE_SETTINGS)
    finally:
        with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
