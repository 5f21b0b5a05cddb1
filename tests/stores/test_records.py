"""Records: versioned compare-and-set values with expiry (the coordination primitive)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import InvalidOption
from conveyor.stores.base import RECORD_VALUE_MAX, Record, Store

from .support import LOCAL_DRIVERS, REFERENCE_DRIVER, STORE_FACTORIES, open_test_store

PERSISTENT_DRIVERS = [name for name in LOCAL_DRIVERS if name != REFERENCE_DRIVER]


def test_create_then_read_back(store: Store) -> None:
    created = store.put_record("ns", "alpha", b"\x00one\xff", expect_version=None)
    assert created == Record("ns", "alpha", b"\x00one\xff", 1, None)
    assert store.get_record("ns", "alpha") == created


def test_missing_record_reads_as_none(store: Store) -> None:
    assert store.get_record("ns", "nothing") is None
    store.put_record("other", "nothing", b"x", expect_version=None)
    assert store.get_record("ns", "nothing") is None


def test_create_refused_when_the_key_exists(store: Store) -> None:
    store.put_record("ns", "k", b"first", expect_version=None)
    assert store.put_record("ns", "k", b"second", expect_version=None) is None
    record = store.get_record("ns", "k")
    assert record is not None and record.value == b"first"


def test_replace_needs_the_current_version(store: Store) -> None:
    store.put_record("ns", "k", b"v1", expect_version=None)
    second = store.put_record("ns", "k", b"v2", expect_version=1)
    assert second is not None and second.version == 2 and second.value == b"v2"
    assert store.put_record("ns", "k", b"stale", expect_version=1) is None
    assert store.put_record("ns", "k", b"future", expect_version=3) is None
    third = store.put_record("ns", "k", b"v3", expect_version=2)
    assert third is not None and third.version == 3
    record = store.get_record("ns", "k")
    assert record is not None and record.value == b"v3"


def test_replace_of_a_missing_key_is_a_conflict(store: Store) -> None:
    assert store.put_record("ns", "ghost", b"x", expect_version=1) is None
    assert store.get_record("ns", "ghost") is None


def test_empty_value_is_kept(store: Store) -> None:
    store.put_record("ns", "empty", b"", expect_version=None)
    record = store.get_record("ns", "empty")
    assert record is not None and record.value == b""


def test_largest_value_round_trips(store: Store) -> None:
    value = bytes(range(256)) * (RECORD_VALUE_MAX // 256)
    assert len(value) == RECORD_VALUE_MAX
    store.put_record("ns", "big", value, expect_version=None)
    record = store.get_record("ns", "big")
    assert record is not None and record.value == value


def test_expired_record_reads_as_absent_and_can_be_created_again(
    store: Store, clock: FakeClock
) -> None:
    now = clock.now()
    first = store.put_record("ns", "lease", b"a", expect_version=None, expires_at=now + 10)
    assert first is not None and first.expires_at == pytest.approx(now + 10)
    clock.advance(9.5)
    assert store.get_record("ns", "lease") == first
    assert store.put_record("ns", "lease", b"b", expect_version=None) is None
    clock.advance(0.5)  # expires exactly at expires_at
    assert store.get_record("ns", "lease") is None
    assert store.put_record("ns", "lease", b"stale", expect_version=1) is None
    again = store.put_record("ns", "lease", b"b", expect_version=None, expires_at=now + 60)
    assert again is not None and again.version == 2, "a version is never reused for a key"
    assert store.get_record("ns", "lease") == again


def test_expiry_can_be_extended_and_removed(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    store.put_record("ns", "k", b"a", expect_version=None, expires_at=now + 5)
    extended = store.put_record("ns", "k", b"a", expect_version=1, expires_at=now + 50)
    assert extended is not None
    clock.advance(20)
    assert store.get_record("ns", "k") == extended
    forever = store.put_record("ns", "k", b"a", expect_version=2, expires_at=None)
    assert forever is not None and forever.expires_at is None
    clock.advance(10**6)
    assert store.get_record("ns", "k") == forever


def test_explicit_now_judges_expiry(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    store.put_record("ns", "k", b"a", expect_version=None, expires_at=now + 5, now=now)
    assert store.get_record("ns", "k", now=now + 4) is not None
    assert store.get_record("ns", "k", now=now + 6) is None
    assert store.list_records("ns", now=now + 6) == []
    assert store.put_record("ns", "k", b"b", expect_version=None, now=now + 6) is not None


def test_delete(store: Store) -> None:
    store.put_record("ns", "k", b"a", expect_version=None)
    store.put_record("ns", "k", b"b", expect_version=1)
    assert store.delete_record("ns", "k", expect_version=1) is False
    assert store.get_record("ns", "k") is not None
    assert store.delete_record("ns", "k", expect_version=2) is True
    assert store.get_record("ns", "k") is None
    assert store.delete_record("ns", "k") is False
    store.put_record("ns", "k2", b"a", expect_version=None)
    assert store.delete_record("ns", "k2") is True
    recreated = store.put_record("ns", "k", b"c", expect_version=None)
    assert recreated is not None and recreated.version == 1


def test_list_is_by_key_with_prefix_and_skips_expired(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    for key in ("b", "a", "ab", "c:1", "c:2"):
        store.put_record("ns", key, key.encode(), expect_version=None)
    store.put_record("ns", "c:0", b"gone", expect_version=None, expires_at=now + 1)
    store.put_record("elsewhere", "a", b"x", expect_version=None)
    clock.advance(2)
    assert [r.key for r in store.list_records("ns")] == ["a", "ab", "b", "c:1", "c:2"]
    assert [r.value for r in store.list_records("ns", prefix="c:")] == [b"c:1", b"c:2"]
    assert [r.key for r in store.list_records("ns", prefix="a")] == ["a", "ab"]
    assert store.list_records("none") == []


def test_keys_with_odd_characters(store: Store) -> None:
    keys = ["tenant:é/ü", "with space", "a%b_c*d", "line\nbreak", "x" * 512]
    for key in keys:
        store.put_record("odd ns:1", key, key.encode(), expect_version=None)
    assert sorted(r.key for r in store.list_records("odd ns:1")) == sorted(keys)
    assert [r.key for r in store.list_records("odd ns:1", prefix="a%")] == ["a%b_c*d"]
    assert [r.key for r in store.list_records("odd ns:1", prefix="a_")] == []


@pytest.mark.parametrize(
    ("namespace", "key", "value", "field"),
    [
        ("", "k", b"v", "namespace"),
        ("ns", "", b"v", "key"),
        ("ns", "x" * 513, b"v", "key"),
        ("ns", "a\0b", b"v", "key"),
        ("ns", "k", "text", "value"),
        ("ns", "k", b"x" * (RECORD_VALUE_MAX + 1), "value"),
    ],
)
def test_bad_arguments_are_refused(
    store: Store, namespace: str, key: str, value: bytes, field: str
) -> None:
    with pytest.raises(InvalidOption) as caught:
        store.put_record(namespace, key, value, expect_version=None)
    assert caught.value.option == field
    assert store.list_records("ns") == []


def test_bad_version_and_expiry_are_refused(store: Store) -> None:
    with pytest.raises(InvalidOption, match="expect_version"):
        store.put_record("ns", "k", b"v", expect_version=0)
    with pytest.raises(InvalidOption, match="expires_at"):
        store.put_record("ns", "k", b"v", expect_version=None, expires_at=float("nan"))
    assert store.get_record("ns", "k") is None


def test_prune_drops_expired_records(store: Store, clock: FakeClock) -> None:
    from conveyor.stores.base import PruneParams

    now = clock.now()
    store.put_record("ns", "old", b"a", expect_version=None, expires_at=now + 1)
    store.put_record("ns", "kept", b"b", expect_version=None)
    clock.advance(5)
    result = store.prune(PruneParams())
    assert result.orphans >= 1
    assert [r.key for r in store.list_records("ns")] == ["kept"]
    # the expired record is gone for good: a replace finds nothing to replace
    assert store.put_record("ns", "old", b"c", expect_version=1) is None


def test_concurrent_increments_lose_nothing(store: Store) -> None:
    """Compare-and-set loops from several threads: every increment lands exactly once."""
    store.put_record("ns", "counter", b"0", expect_version=None)
    per_thread, threads = 25, 4
    conflicts: list[int] = []

    def bump() -> None:
        for _ in range(per_thread):
            while True:
                current = store.get_record("ns", "counter")
                assert current is not None
                nxt = str(int(current.value) + 1).encode()
                if store.put_record("ns", "counter", nxt, expect_version=current.version):
                    break
                conflicts.append(1)

    workers = [threading.Thread(target=bump) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    final = store.get_record("ns", "counter")
    assert final is not None
    assert int(final.value) == per_thread * threads
    assert final.version == per_thread * threads + 1


@pytest.mark.parametrize("driver", PERSISTENT_DRIVERS)
def test_records_survive_closing_and_reopening_the_store(
    driver: str, tmp_path: Path, clock: FakeClock
) -> None:
    first = open_test_store(driver, tmp_path / "store", clock)
    first.put_record("ns", "k", b"kept", expect_version=None, expires_at=clock.now() + 100)
    first.close()
    second = open_test_store(driver, tmp_path / "store", clock)
    try:
        record = second.get_record("ns", "k")
        assert record is not None and record.value == b"kept" and record.version == 1
    finally:
        second.close()


def test_every_driver_is_registered() -> None:
    assert REFERENCE_DRIVER in STORE_FACTORIES
