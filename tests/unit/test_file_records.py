"""File-store specifics of records: file naming, crash safety, several processes."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import StoreError
from conveyor.stores.base import PruneParams, Record
from conveyor.stores.file import FileStore, layout
from conveyor.stores.file.records import decode_record, encode_record

_FORK = multiprocessing.get_context("fork")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


@pytest.fixture
def store(root: Path) -> FileStore:
    instance = FileStore(str(root), clock=FakeClock())
    instance.migrate()
    return instance


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


def test_the_file_format_round_trips_odd_names_and_binary_values() -> None:
    for key in ("a\nb", "../../etc/passwd", "é/ü", "\udc80 lone surrogate", "x" * 512):
        record = Record("ns/..", key, b"\n\x00\xff" * 3, 7, 1234.5678901234)
        assert decode_record(encode_record(record)) == record
    assert decode_record(encode_record(Record("n", "k", b"", 1))) == Record("n", "k", b"", 1)


def test_record_files_are_named_by_digest_inside_the_root(store: FileStore, root: Path) -> None:
    for key in ("../../escape", "/abs", "a/b", "line\nbreak"):
        assert store.put_record("../ns", key, b"v", expect_version=None) is not None
    names = {n for n in files_under(root) if n.startswith(layout.RECORDS_DIR)}
    assert len(names) == 4
    for name in names:
        top, namespace_dir, file_name = name.split("/")
        assert top == "records" and namespace_dir == layout.digest("../ns")
        assert layout.is_record_name(file_name)
    assert not (root.parent / "escape").exists()
    assert [r.key for r in store.list_records("../ns")] == sorted(
        ["../../escape", "/abs", "a/b", "line\nbreak"]
    )


def test_a_conflict_writes_nothing(
    store: FileStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put_record("ns", "k", b"a", expect_version=None)
    before = {n: (root / n).read_bytes() for n in files_under(root) if n != "lock"}
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    assert store.put_record("ns", "k", b"b", expect_version=None) is None
    assert store.put_record("ns", "k", b"b", expect_version=5) is None
    assert store.delete_record("ns", "k", expect_version=5) is False
    assert synced == []
    assert {n: (root / n).read_bytes() for n in files_under(root) if n != "lock"} == before


def test_a_write_is_synced_before_it_returns(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    store.put_record("ns", "k", b"v", expect_version=None)
    # the journal, the root directory, the record file and its directory
    assert len(synced) >= 4


def test_a_crash_between_journal_and_apply_leaves_old_then_replays_new(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = FileStore(str(root), clock=FakeClock())
    first.put_record("ns", "k", b"old", expect_version=None)
    real_replace = os.replace
    calls = {"n": 0}

    def crash_after_the_journal(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the journal is in place; the record file is not
            raise KeyboardInterrupt("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_after_the_journal)
    with pytest.raises(KeyboardInterrupt):
        first.put_record("ns", "k", b"new", expect_version=1)
    monkeypatch.setattr(os, "replace", real_replace)
    assert (root / "journal").exists()
    # a lockless read sees the old record, complete
    assert first.get_record("ns", "k") == Record("ns", "k", b"old", 1)

    second = FileStore(str(root), clock=FakeClock())  # takes the lock: replays the journal

    assert not (root / "journal").exists()
    assert list((root / "tmp").iterdir()) == []
    assert second.get_record("ns", "k") == Record("ns", "k", b"new", 2)
    assert second.put_record("ns", "k", b"stale", expect_version=1) is None


def test_a_torn_record_journal_leaves_the_old_record(
    store: FileStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put_record("ns", "k", b"old", expect_version=None)
    real_replace = os.replace

    def crash_before_the_journal(src: str, dst: str) -> None:
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(os, "replace", crash_before_the_journal)
    with pytest.raises(KeyboardInterrupt):
        store.put_record("ns", "k", b"new", expect_version=1)
    monkeypatch.setattr(os, "replace", real_replace)

    assert not (root / "journal").exists()
    assert store.get_record("ns", "k") == Record("ns", "k", b"old", 1)
    again = store.put_record("ns", "k", b"new", expect_version=1)
    assert again == Record("ns", "k", b"new", 2)


def _die_mid_put(store: FileStore) -> None:
    """In a forked child: replace the record, but die after the journal is in place."""
    real_replace = os.replace
    calls = {"n": 0}

    def die_after_the_journal(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            os._exit(17)
        real_replace(src, dst)

    setattr(os, "replace", die_after_the_journal)  # noqa: B010 - patch the real module
    store.put_record("ns", "k", b"new", expect_version=1)


def test_a_process_killed_mid_put_is_replayed_by_the_next_writer(
    store: FileStore, root: Path
) -> None:
    store.put_record("ns", "k", b"old", expect_version=None)
    child = _FORK.Process(target=_die_mid_put, args=(store,))
    child.start()
    child.join(30)
    assert child.exitcode == 17
    assert (root / "journal").exists()
    assert store.get_record("ns", "k") == Record("ns", "k", b"old", 1)

    # the next compare-and-set replays the dead writer's commit before judging
    assert store.put_record("ns", "k", b"mine", expect_version=1) is None
    assert store.get_record("ns", "k") == Record("ns", "k", b"new", 2)
    assert not (root / "journal").exists()


def _increment(root: str, times: int) -> None:
    store = FileStore(root, clock=FakeClock())
    for _ in range(times):
        while True:
            current = store.get_record("ns", "counter")
            assert current is not None
            nxt = str(int(current.value) + 1).encode()
            if store.put_record("ns", "counter", nxt, expect_version=current.version):
                break
    store.close()


def test_compare_and_set_across_processes_loses_nothing(store: FileStore) -> None:
    store.put_record("ns", "counter", b"0", expect_version=None)
    children = [_FORK.Process(target=_increment, args=(store.root, 15)) for _ in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    final = store.get_record("ns", "counter")
    assert final is not None and int(final.value) == 60 and final.version == 61


def test_prune_removes_only_expired_record_files(store: FileStore, root: Path) -> None:
    now = store.clock.now()
    store.put_record("a", "gone", b"x", expect_version=None, expires_at=now + 1)
    store.put_record("b", "gone", b"x", expect_version=None, expires_at=now)
    store.put_record("a", "kept", b"y", expect_version=None, expires_at=now + 100)
    store.put_record("b", "forever", b"z", expect_version=None)
    result = store.prune(PruneParams(now=now + 2))
    assert result.orphans == 2
    kept = {n for n in files_under(root) if n.startswith(layout.RECORDS_DIR)}
    assert kept == {
        layout.record_path("a", "kept"),
        layout.record_path("b", "forever"),
    }
    assert store.prune(PruneParams(now=now + 2)).orphans == 0


def test_a_file_of_another_key_is_refused(store: FileStore, root: Path) -> None:
    store.put_record("ns", "one", b"1", expect_version=None)
    target = root / layout.record_path("ns", "two")
    target.write_bytes((root / layout.record_path("ns", "one")).read_bytes())
    with pytest.raises(StoreError, match="holds"):
        store.get_record("ns", "two")
    with pytest.raises(StoreError, match="holds"):
        store.put_record("ns", "two", b"2", expect_version=None)
