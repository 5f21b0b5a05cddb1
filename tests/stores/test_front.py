"""The store front: what it does before a driver's hook runs, for every driver alike.

The front (``conveyor.stores.front.StoreFront``) is shared code, so it is tested once,
here, on the reference driver with its hooks watched: empty batches never reach a
driver, the clock is read once per operation, ids and leases reach the driver once
each, and bad input is refused before any hook runs. The node registry it keeps on
records is checked on every driver by ``test_nodes.py`` and, below, on the records
themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import ConfigurationError, InvalidOption
from conveyor.job import JobError, NewJob
from conveyor.stores.base import (
    CancelResult,
    ClaimParams,
    HeartbeatResult,
    JobQuery,
    NodeInfo,
    RescueParams,
    Store,
)
from conveyor.stores.front import NODE_NAMESPACE, StoreFront
from conveyor.stores.memory import MemoryStore


class CountingClock(FakeClock):
    """A fake clock that counts its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def now(self) -> float:
        self.reads += 1
        return super().now()


class WatchedStore(MemoryStore):
    """The memory store with every hook call recorded as ``(hook name, arguments)``."""

    def __init__(self, clock: CountingClock) -> None:
        super().__init__(clock=clock)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        hooks = ("_enqueue", "_claim", "_heartbeat", "_complete", "_cancel", "_retry")
        hooks += ("_delete", "_reprioritize", "_move", "_get_many", "_search", "_find_ids")
        hooks += ("_complete_and_claim", "_rescue_expired", "_put_record", "_get_record")
        if name not in hooks:
            return attribute
        calls = super().__getattribute__("calls")

        def watched(*args: Any) -> Any:
            calls.append((name, args))
            return attribute(*args)

        return watched


@pytest.fixture
def counting_clock() -> CountingClock:
    return CountingClock()


@pytest.fixture
def watched(counting_clock: CountingClock) -> WatchedStore:
    return WatchedStore(counting_clock)


def test_every_driver_is_a_store_front(store: Store) -> None:
    """Each registered driver goes through the front (none reimplements the public API)."""
    assert isinstance(store, StoreFront)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.enqueue([]),
        lambda s: s.complete([]),
        lambda s: s.heartbeat([], extend=30),
        lambda s: s.cancel([]),
        lambda s: s.retry([]),
        lambda s: s.delete([]),
        lambda s: s.get_many([]),
        lambda s: s.reprioritize([], 5),
        lambda s: s.move([], "other"),
        lambda s: s.claim(ClaimParams(queues=["default"], worker_id="w", limit=0)),
    ],
    ids=[
        "enqueue",
        "complete",
        "heartbeat",
        "cancel",
        "retry",
        "delete",
        "get_many",
        "reprioritize",
        "move",
        "claim-0",
    ],
)
def test_empty_batches_never_reach_the_driver(
    watched: WatchedStore, call: Callable[[Store], object]
) -> None:
    result = call(watched)
    assert result in ([], 0, HeartbeatResult({}, [], []), CancelResult([], [], []))
    assert watched.calls == []


def test_the_clock_is_read_once_per_operation(
    watched: WatchedStore, counting_clock: CountingClock, make_job: Callable[..., NewJob]
) -> None:
    watched.enqueue([make_job(), make_job()])
    assert counting_clock.reads == 1
    counting_clock.reads = 0
    [lease] = watched.claim(ClaimParams(queues=["default"], worker_id="w", limit=1))
    assert counting_clock.reads == 1
    counting_clock.reads = 0
    watched.fail(lease, JobError(1, "E", "boom"), retry_at=None)
    assert counting_clock.reads == 1
    counting_clock.reads = 0
    watched.rescue_expired(RescueParams())
    assert counting_clock.reads == 1


def test_an_injected_now_is_passed_as_the_lease_time(
    watched: WatchedStore, counting_clock: CountingClock, make_job: Callable[..., NewJob]
) -> None:
    """A caller's ``now`` reaches the driver as both the time and the lease time; without
    one, the lease time is left to the driver (None), which may have a clock of its own."""
    watched.enqueue([make_job()])
    watched.claim(ClaimParams(queues=["default"], worker_id="w", now=123.0))
    watched.rescue_expired(RescueParams())
    claim = next(args for name, args in watched.calls if name == "_claim")
    rescue = next(args for name, args in watched.calls if name == "_rescue_expired")
    assert claim[1:] == (123.0, 123.0)
    assert rescue[2] is None
    assert counting_clock.reads == 2  # the enqueue and the rescue; the claim read none


def test_repeated_ids_reach_the_driver_once(
    watched: WatchedStore, make_job: Callable[..., NewJob]
) -> None:
    job = make_job()
    watched.enqueue([job])
    watched.cancel([job.id, job.id, job.id])
    [(_, args)] = [call for call in watched.calls if call[0] == "_cancel"]
    assert list(args[0]) == [job.id]


def test_bad_input_is_refused_before_any_hook(watched: WatchedStore) -> None:
    with pytest.raises(InvalidOption):
        watched.put_record("", "k", b"v", expect_version=None)
    with pytest.raises(InvalidOption):
        watched.find_ids("not-hex!")
    with pytest.raises(InvalidOption):
        watched.find_ids("0190", limit=0)
    with pytest.raises(InvalidOption):
        watched.move(["x"], "bad queue name with spaces")
    with pytest.raises(ValueError, match="must not be negative"):
        watched.search(JobQuery(limit=-1))
    assert watched.calls == []


def test_joining_a_transaction_needs_a_driver_that_can(watched: WatchedStore) -> None:
    with pytest.raises(ConfigurationError, match="cannot join a database transaction"):
        watched.enqueue([], connection=object())
    assert watched.calls == []


def test_nodes_live_on_records(watched: WatchedStore, counting_clock: CountingClock) -> None:
    """The registry is ordinary records: a node is one record under its id."""
    node = NodeInfo(id="node-a", host="h", pid=1, queues=("default",), started_at=5.0)
    watched.register_node(node, now=100.0)
    [record] = watched.list_records(NODE_NAMESPACE)
    assert record.key == "node-a"
    assert record.version == 1
    watched.register_node(node, now=110.0)
    assert watched.list_records(NODE_NAMESPACE)[0].version == 2
    [listed] = watched.list_nodes()
    assert listed.heartbeat_at == 110.0
    assert watched.prune_nodes(older_than=5, now=200.0) == 1
    assert watched.list_records(NODE_NAMESPACE) == []
