"""What is particular to the Redis store (the shared behaviour is in ``tests/stores``)."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("redis")

import redis
from hypothesis.stateful import run_state_machine_as_test
from tests.servers import RedisServer, free_port
from tests.stores.support import add, claim, new_job
from tests.stores.test_state_machine import MACHINE_SETTINGS, StoreComparison

from conveyor.clock import FakeClock
from conveyor.errors import ConfigurationError, StoreUnavailable
from conveyor.job import JobError, JobState
from conveyor.stores import open_store
from conveyor.stores.base import (
    ClaimParams,
    Completion,
    JobQuery,
    NodeInfo,
    PruneParams,
    RescueParams,
)
from conveyor.stores.redis import RedisStore
from conveyor.stores.redis.codec import sort_key
from conveyor.stores.redis.store import durability_text, parse_dsn, safe_location

BIG = 123456789012345678901234567890


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    instance = RedisStore.from_dsn(redis_url, clock=FakeClock())
    instance.migrate()
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        client.close()


# DSN ---------------------------------------------------------------------------------------
def test_prefix_is_taken_from_the_dsn_and_stripped() -> None:
    url, prefix = parse_dsn("redis://:secret@localhost:6380/2?prefix=jobs&socket_timeout=5")

    assert prefix == "jobs"
    assert url == "redis://:secret@localhost:6380/2?socket_timeout=5"


def test_prefix_defaults_to_conveyor() -> None:
    assert parse_dsn("rediss://example.com/0") == ("rediss://example.com/0", "conveyor")


def test_an_empty_prefix_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        parse_dsn("redis://localhost/0?prefix=")


def test_location_hides_the_password() -> None:
    location = safe_location("redis://user:secret@host:6379/3", "p")

    assert "secret" not in location
    assert location == "redis://user@host:6379/3?prefix=p"


def test_open_store_picks_the_redis_driver(redis_url: str) -> None:
    opened = open_store(redis_url, clock=FakeClock())
    try:
        assert isinstance(opened, RedisStore)
        assert opened.prefix == redis_url.rsplit("=", 1)[1]
    finally:
        opened.close()


def test_sort_key_orders_like_the_numbers() -> None:
    values = [-1e12, -2.5, -0.0, 0.0, 1e-9, 1.0, 1_700_000_000.000001, 1_700_000_000.000002, 1e15]

    assert sorted(values, key=sort_key) == sorted(values)


# keys --------------------------------------------------------------------------------------
def test_every_key_starts_with_the_prefix(redis_server: RedisServer) -> None:
    db = 9
    client = redis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/{db}")
    client.flushdb()
    clock = FakeClock()
    instance = RedisStore.from_dsn(
        f"redis://127.0.0.1:{redis_server.port}/{db}?prefix=mine", clock=clock
    )
    try:
        instance.migrate()
        parent = add(instance, unique_key="u", idempotency_key="i", tags=("t1", "t2"))
        child = add(instance, depends_on=(parent,))
        add(instance, queue="later", run_at=clock.now() + 60)
        [lease] = claim(instance)
        instance.complete([Completion(lease, b"done")])
        [lease2] = claim(instance)
        assert lease2.job_id == child
        instance.fail(lease2, JobError(1, "E", "boom"), retry_at=clock.now() + 5)
        failing = add(instance)
        [lease3] = claim(instance, lease_for=1)
        clock.advance(10)
        instance.rescue_expired(RescueParams(max_rescues=1))
        instance.stage_due()
        instance.cancel([failing])
        instance.register_node(NodeInfo(id="n1", host="h", pid=1, queues=("default",)))
        instance.search(JobQuery(tag="t1"))
        instance.stats()
        instance.prune(PruneParams(completed_after=0, failed_after=0, cancelled_after=0))
        assert lease3.job_id == failing

        keys = [k.decode() for k in client.scan_iter(count=1000)]
        assert keys
        assert all(k.startswith("mine:") for k in keys), keys
    finally:
        instance.close()
        client.flushdb()
        client.close()


def test_the_node_registry_is_kept_on_records(store: RedisStore, admin: redis.Redis) -> None:
    """Nodes are records of the namespace ``node`` (docs/stores/redis.md, key layout): no
    keys of their own, so the records' prune and readers see them like any record."""
    store.register_node(NodeInfo(id="n1", host="h", pid=1, queues=("default",)))

    assert [record.key for record in store.list_records("node")] == ["n1"]
    assert admin.hexists(f"{store.prefix}:records:node", "n1")
    assert admin.exists(f"{store.prefix}:nodes", f"{store.prefix}:node_heartbeats") == 0
    store.remove_node("n1")
    assert admin.exists(f"{store.prefix}:records:node") == 0


# server checks -----------------------------------------------------------------------------
def test_an_evicting_maxmemory_policy_is_refused(redis_url: str, admin: redis.Redis) -> None:
    admin.config_set("maxmemory-policy", "allkeys-lru")
    try:
        instance = RedisStore.from_dsn(redis_url, clock=FakeClock())
        with pytest.raises(ConfigurationError, match="noeviction"):
            instance.migrate()
        instance.close()
    finally:
        admin.config_set("maxmemory-policy", "noeviction")


def test_info_reports_the_aof_durability(store: RedisStore) -> None:
    info = store.info()

    assert info.driver == "redis"
    # The test server runs with appendonly yes, appendfsync everysec.
    assert info.durability == (
        "up to 1 s of acknowledged jobs may be lost on power loss (AOF everysec)"
    )
    assert info.details["maxmemory-policy"] == "noeviction"
    assert info.schema_version == store.migrate() == 1


def test_a_weak_durability_is_logged(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    instance = RedisStore.from_dsn(redis_url, clock=FakeClock())
    with caplog.at_level("WARNING", logger="conveyor.stores.redis"):
        instance.migrate()
    instance.close()

    assert "AOF everysec" in caplog.text


@pytest.mark.parametrize(
    ("appendonly", "appendfsync", "expected", "strongest"),
    [
        ("yes", "always", "fully durable (AOF, appendfsync always)", True),
        ("yes", "everysec", "up to 1 s", False),
        ("yes", "no", "the OS decides", False),
        ("no", "everysec", "not durable (no AOF)", False),
        (None, None, "unknown", False),
    ],
)
def test_durability_text(
    appendonly: str | None, appendfsync: str | None, expected: str, strongest: bool
) -> None:
    text, best = durability_text(appendonly, appendfsync)

    assert expected in text
    assert best is strongest


# exact values ------------------------------------------------------------------------------
def test_big_integers_and_bytes_round_trip_untouched(store: RedisStore) -> None:
    payload = f'{{"n": {BIG}, "m": {-(2**64) + 1}}}'.encode() + b"\x00\xff"
    run_at = 1_700_000_000.123456789
    job = new_job(payload=payload, run_at=run_at, priority=2**40, timeout=0.1 + 0.2)
    store.enqueue([job], now=run_at - 1)
    assert store.stage_due(now=run_at).promoted == 1
    [lease] = claim(store)
    result = f"[{BIG}, 1e400, 0.30000000000000004]".encode()
    store.complete([Completion(lease, result)])

    stored = store.get(job.id)
    assert stored is not None
    assert stored.payload == payload
    assert stored.result == result
    assert stored.run_at == run_at
    assert stored.priority == 2**40
    assert stored.timeout == 0.1 + 0.2


# wake-ups ----------------------------------------------------------------------------------
def test_wait_times_out_with_false(store: RedisStore) -> None:
    started = time.monotonic()

    assert store.wait_for_work(["default"], timeout=0.2) is False
    assert 0.15 <= time.monotonic() - started < 1.5


def test_an_enqueue_from_another_client_wakes_every_waiter(redis_url: str) -> None:
    clock = FakeClock()
    waiters = [RedisStore.from_dsn(redis_url, clock=clock) for _ in range(3)]
    producer = RedisStore.from_dsn(redis_url, clock=clock)
    outcomes: list[tuple[bool, float]] = []
    lock = threading.Lock()

    def wait(instance: RedisStore) -> None:
        result = instance.wait_for_work(["default"], timeout=5.0)
        with lock:
            outcomes.append((result, time.monotonic()))

    threads = [threading.Thread(target=wait, args=(w,), daemon=True) for w in waiters]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.3)  # let every waiter subscribe
        sent = time.monotonic()
        add(producer)
        for thread in threads:
            thread.join(timeout=5.0)

        assert [result for result, _ in outcomes] == [True, True, True]
        assert max(at for _, at in outcomes) - sent < 0.5
    finally:
        for instance in (*waiters, producer):
            instance.close()


# races -------------------------------------------------------------------------------------
def _drain(instance: RedisStore, worker: str, out: list[str]) -> None:
    while True:
        leases = instance.claim(ClaimParams(queues=["default"], worker_id=worker, limit=3))
        if not leases:
            return
        out.extend(lease.job_id for lease in leases)
        instance.complete([Completion(lease) for lease in leases])


def test_threads_claim_every_job_exactly_once(store: RedisStore) -> None:
    ids = [job.id for job in (new_job() for _ in range(200)) if store.enqueue([job])]
    taken: list[list[str]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=_drain, args=(store, f"w{i}", taken[i])) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    claimed = [job_id for part in taken for job_id in part]
    assert sorted(claimed) == sorted(ids)
    assert all(part for part in taken) or len(claimed) == len(ids)


def _drain_in_child(instance: RedisStore, worker: str, queue: multiprocessing.Queue[str]) -> None:
    out: list[str] = []
    _drain(instance, worker, out)
    for job_id in out:
        queue.put(job_id)
    queue.put("")


def test_forked_processes_claim_every_job_exactly_once(store: RedisStore) -> None:
    jobs = [new_job() for _ in range(300)]
    store.enqueue(jobs)
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[str] = context.Queue()
    # The parent's client is in use before the fork: children must open their own.
    processes = [
        context.Process(target=_drain_in_child, args=(store, f"p{i}", results)) for i in range(4)
    ]
    for process in processes:
        process.start()
    claimed: list[str] = []
    finished = 0
    while finished < len(processes):
        item = results.get(timeout=60)
        if item:
            claimed.append(item)
        else:
            finished += 1
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    assert sorted(claimed) == sorted(job.id for job in jobs)
    assert store.get(jobs[0].id) is not None
    counts = {e.queue: e.counts for e in store.stats()}
    assert counts == {"default": {"completed": 300}}


# connection loss ---------------------------------------------------------------------------
def test_killed_connections_are_recovered(store: RedisStore, admin: redis.Redis) -> None:
    job_id = add(store)
    assert store.get(job_id) is not None

    admin.client_kill_filter(_type="normal", skipme=True)  # CLIENT KILL TYPE normal

    with contextlib.suppress(StoreUnavailable):  # the first call may meet the dead socket
        store.get(job_id)
    fetched = store.get(job_id)
    assert fetched is not None
    assert fetched.state is JobState.PENDING
    [lease] = claim(store)
    assert lease.job_id == job_id


def test_an_unreachable_server_raises_store_unavailable() -> None:
    instance = RedisStore.from_dsn(f"redis://127.0.0.1:{free_port()}/0", clock=FakeClock())
    with pytest.raises(StoreUnavailable):
        instance.get("anything")
    instance.close()


def test_a_restart_keeps_acknowledged_jobs(store: RedisStore, redis_server: RedisServer) -> None:
    ids = [add(store) for _ in range(5)]
    [lease] = claim(store)
    store.complete([Completion(lease, b"ok")])

    redis_server.restart()

    jobs = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the server may still be loading its AOF
        try:
            jobs = store.get_many(ids)
            break
        except StoreUnavailable:
            time.sleep(0.1)
    assert [job.id for job in jobs] == ids
    assert jobs[0].state is JobState.COMPLETED
    assert len(claim(store, limit=10)) == 4


# model-based -------------------------------------------------------------------------------
def test_redis_matches_the_reference_store(redis_server: RedisServer, tmp_path: Path) -> None:
    class Machine(StoreComparison):
        def __init__(self) -> None:
            super().__init__("memory", tmp_path)
            dsn = f"{redis_server.url}?prefix=sm{uuid.uuid4().hex[:12]}"
            driver = RedisStore.from_dsn(dsn, clock=self.clock)
            driver.migrate()
            self.stores[1].close()
            self.stores = (self.stores[0], driver)

    run_state_machine_as_test(Machine, settings=MACHINE_SETTINGS)


def test_the_first_enqueue_creates_the_store_for_read_commands(redis_url: str) -> None:
    """Workers and producers never call migrate(); read commands look for the layout key
    before they open a prefix, so the first write must leave it (the fault suite found
    `conveyor dlq list` refusing a prefix in use)."""
    from conveyor.stores.redis.store import store_exists

    instance = RedisStore.from_dsn(redis_url, clock=FakeClock())
    try:
        assert not store_exists(redis_url)
        add(instance)
        assert store_exists(redis_url)
    finally:
        instance.close()
