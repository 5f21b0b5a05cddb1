"""LeaderLease: one holder at a time, judged by the store's clock, on every driver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.stores.support import SERVER_FIXTURES, STORE_FACTORIES, open_test_store

from conveyor.clock import FakeClock
from conveyor.coordination.lease import NAMESPACE, LeaderLease
from conveyor.errors import InvalidOption
from conveyor.stores.base import Store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=list(STORE_FACTORIES), ids=list(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    fixture = SERVER_FIXTURES.get(request.param)
    dsn = request.getfixturevalue(fixture) if fixture else None
    instance = open_test_store(request.param, tmp_path / "store", clock, dsn)
    try:
        yield instance
    finally:
        instance.close()


def test_acquire_a_free_lease(store: Store) -> None:
    lease = LeaderLease(store, "scheduler", "node-a", ttl=15)
    assert not lease.held and lease.owner() is None
    assert lease.acquire()
    assert lease.held and lease.owner() == "node-a"
    record = store.get_record(NAMESPACE, "scheduler")
    assert record is not None and record.value == b"node-a"


def test_another_holder_is_refused_until_expiry_then_takes_over(
    store: Store, clock: FakeClock
) -> None:
    a = LeaderLease(store, "scheduler", "node-a", ttl=15)
    b = LeaderLease(store, "scheduler", "node-b", ttl=15)
    assert a.acquire()
    clock.advance(14.9)
    assert not b.acquire() and not b.held
    assert b.owner() == "node-a"
    clock.advance(0.1)  # a did not renew: the lease expired exactly at ttl
    assert b.acquire() and b.held
    assert b.owner() == "node-b"
    assert not a.acquire() and not a.held  # the old holder learns it lost the lease


def test_renewal_keeps_the_lease_past_the_first_ttl(store: Store, clock: FakeClock) -> None:
    a = LeaderLease(store, "scheduler", "node-a", ttl=10)
    b = LeaderLease(store, "scheduler", "node-b", ttl=10)
    assert a.acquire()
    for _ in range(5):
        clock.advance(6.0)
        assert a.acquire()  # renew
        assert not b.acquire()
    clock.advance(9.9)  # 9.9 s after the last renewal: still a's
    assert not b.acquire()
    clock.advance(0.1)
    assert b.acquire()


def test_release_frees_the_lease_at_once(store: Store) -> None:
    a = LeaderLease(store, "scheduler", "node-a")
    b = LeaderLease(store, "scheduler", "node-b")
    assert a.acquire()
    a.release()
    assert not a.held and a.owner() is None
    assert b.acquire()


def test_release_by_a_non_holder_changes_nothing(store: Store) -> None:
    a = LeaderLease(store, "scheduler", "node-a")
    b = LeaderLease(store, "scheduler", "node-b")
    assert a.acquire()
    b.release()
    assert a.owner() == "node-a"
    assert not b.acquire()
    assert a.acquire()


def test_leases_with_other_names_are_independent(store: Store) -> None:
    assert LeaderLease(store, "scheduler", "node-a").acquire()
    assert LeaderLease(store, "rescuer", "node-b").acquire()
    assert not LeaderLease(store, "scheduler", "node-b").acquire()


@pytest.mark.parametrize("ttl", [0, -1.0])
def test_ttl_must_be_positive(store: Store, ttl: float) -> None:
    with pytest.raises(InvalidOption) as caught:
        LeaderLease(store, "scheduler", "node-a", ttl=ttl)
    assert caught.value.option == "ttl"
