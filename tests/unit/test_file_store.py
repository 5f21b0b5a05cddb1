"""What is specific to the file store: DSNs, paths, the commit protocol, processes."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import ConfigurationError, InvalidJob, InvalidOption
from conveyor.ids import IdGenerator
from conveyor.job import JobState, NewJob
from conveyor.stores import open_store
from conveyor.stores.base import ClaimParams, Completion, Store
from conveyor.stores.file import FileStore
from conveyor.stores.file import journal as journal_module
from conveyor.stores.file.layout import PathEscape, parse_dsn

_IDS = IdGenerator()
_FORK = multiprocessing.get_context("fork")


def job(**overrides: object) -> NewJob:
    fields: dict[str, object] = {
        "id": _IDS.new(),
        "queue": "default",
        "task": "tests.noop",
        "payload": b"\x00payload",
    }
    fields.update(overrides)
    return NewJob(**fields)  # type: ignore[arg-type]


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


@pytest.fixture
def store(root: Path) -> FileStore:
    instance = FileStore(str(root), clock=FakeClock())
    instance.migrate()
    return instance


# DSN ---------------------------------------------------------------------------------------
def test_an_absolute_dsn_names_the_directory() -> None:
    assert parse_dsn("file:///var/lib/conveyor") == "/var/lib/conveyor"
    assert parse_dsn("file://localhost/var/lib/conveyor/") == "/var/lib/conveyor"
    assert parse_dsn("file:///var/lib/with%20space") == "/var/lib/with space"


@pytest.mark.parametrize(
    "dsn",
    [
        "file://relative/dir",
        "file://example.com/var/jobs",
        "file:///",
        "file:",
        "file:///var/jobs?fsync=off",
        "sqlite:///var/jobs",
    ],
)
def test_relative_remote_or_parametrised_dsns_are_refused(dsn: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_dsn(dsn)


def test_open_store_opens_a_file_store_with_a_private_directory(root: Path) -> None:
    opened = open_store(f"file://{root}", clock=FakeClock())

    assert isinstance(opened, FileStore)
    assert isinstance(opened, Store)
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    info = opened.info()
    assert info.driver == "file"
    assert info.location == str(root.resolve())
    assert info.durability == "crash-safe (write, fsync, rename, fsync dir)"
    assert opened.capabilities.shared and opened.capabilities.blocking_wait
    assert not opened.capabilities.transactional_enqueue


def test_enqueue_with_a_connection_is_refused(store: FileStore) -> None:
    with pytest.raises(ConfigurationError):
        store.enqueue([job()], connection=object())


def test_migrate_writes_a_version_file_and_refuses_a_newer_one(root: Path) -> None:
    first = FileStore(str(root))
    assert first.migrate() == 1
    assert (root / "VERSION").read_text() == "1\n"

    (root / "VERSION").write_text("99\n")
    with pytest.raises(ConfigurationError):
        FileStore(str(root))


# paths -------------------------------------------------------------------------------------
@pytest.mark.parametrize("queue", ["../x", "a/../../b", "/etc", "..", "a\x00b", "UPPER"])
def test_queue_names_that_could_escape_are_refused(
    store: FileStore, root: Path, tmp_path: Path, queue: str
) -> None:
    before = files_under(tmp_path)

    with pytest.raises(InvalidOption):
        store.enqueue([job(queue=queue)])

    assert files_under(tmp_path) == before
    assert store.claim(ClaimParams(queues=[queue], worker_id="w")) == []


@pytest.mark.parametrize("job_id", ["../../escape", "/tmp/x", "..", "x" * 36, ""])
def test_crafted_ids_never_create_a_file(store: FileStore, tmp_path: Path, job_id: str) -> None:
    before = files_under(tmp_path)

    with pytest.raises(InvalidJob):
        store.enqueue([job(id=job_id)])
    with pytest.raises(InvalidJob):
        store.enqueue([job(depends_on=(job_id,))])

    assert files_under(tmp_path) == before
    assert store.get(job_id) is None
    assert store.get_many([job_id]) == []
    assert store.cancel([job_id]).skipped == [job_id]
    assert store.delete([job_id]) == 0


def test_a_symlink_out_of_the_root_is_never_followed(
    store: FileStore, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "index" / "pending").mkdir(parents=True, exist_ok=True)
    (root / "index" / "pending" / "evil").symlink_to(outside)

    with pytest.raises(PathEscape):
        store.enqueue([job(queue="evil")])

    assert list(outside.iterdir()) == []
    assert not list((root / "jobs").iterdir())
    with pytest.raises(PathEscape):  # a tampered index is reported, never silently used
        store.stats()


def test_the_directory_refuses_paths_that_leave_the_root(store: FileStore) -> None:
    directory = journal_module.Directory(store.root)
    for rel in ("../x", "/etc/passwd", "jobs/../../x", "a\x00b", "."):
        with pytest.raises(PathEscape):
            directory.path(rel)


# the commit protocol -----------------------------------------------------------------------
def test_an_enqueue_leaves_complete_files_and_no_temporaries(store: FileStore, root: Path) -> None:
    new = [job(), job(queue="other", priority=5)]
    store.enqueue(new)

    assert list((root / "tmp").iterdir()) == []
    assert not (root / "journal").exists()
    for item in new:
        assert (root / "jobs" / f"{item.id}.json").is_file()
        stored = store.get(item.id)
        assert stored is not None and stored.payload == item.payload


def test_every_written_file_is_synced_before_the_call_returns(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    store.enqueue([job()])

    # the journal, the root directory, the job record and the directories it touched
    assert len(synced) >= 4


def test_a_commit_interrupted_midway_is_completed_by_the_next_writer(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = FileStore(str(root), clock=FakeClock())
    batch = [job(), job(), job()]
    real_replace = os.replace
    calls = {"n": 0}

    def crash_after_first_file(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # journal, first job file, then "crash"
            raise KeyboardInterrupt("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_after_first_file)
    with pytest.raises(KeyboardInterrupt):
        first.enqueue(batch)
    monkeypatch.setattr(os, "replace", real_replace)
    assert (root / "journal").exists()

    second = FileStore(str(root), clock=FakeClock())

    assert not (root / "journal").exists()
    assert list((root / "tmp").iterdir()) == []
    assert [j.id for j in second.get_many([b.id for b in batch])] == [b.id for b in batch]
    assert second.stats()[0].counts == {"pending": 3}


def _die_mid_commit(store: FileStore, new: list[NewJob]) -> None:
    """In a forked child: enqueue, but die (no cleanup at all) after the first file."""
    real_replace = os.replace
    calls = {"n": 0}

    def die_after_first_file(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            os._exit(17)
        real_replace(src, dst)

    setattr(os, "replace", die_after_first_file)  # noqa: B010 - patch the real module
    store.enqueue(new)


def test_a_process_killed_mid_commit_leaves_a_journal_the_next_writer_replays(
    store: FileStore, root: Path
) -> None:
    batch = [job(), job(), job()]
    child = _FORK.Process(target=_die_mid_commit, args=(store, batch))
    child.start()
    child.join(30)
    assert child.exitcode == 17
    assert (root / "journal").exists()
    assert len([b for b in batch if store.get(b.id) is not None]) < 3

    # the kernel released the dead writer's flock; this process takes it and replays
    leases = store.claim(ClaimParams(queues=["default"], worker_id="w", limit=10))

    assert sorted(lease.job_id for lease in leases) == sorted(b.id for b in batch)
    assert not (root / "journal").exists()
    assert list((root / "tmp").iterdir()) == []


def test_a_claim_reads_only_the_jobs_it_takes(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.enqueue([job(queue="other") for _ in range(30)])
    wanted = [job(priority=1), job(priority=9), job(priority=1)]
    store.enqueue(wanted)
    read: list[str] = []
    real_read = journal_module.Directory.read

    def spy(self: journal_module.Directory, rel: str) -> bytes | None:
        read.append(rel)
        return real_read(self, rel)

    monkeypatch.setattr(journal_module.Directory, "read", spy)
    [lease] = store.claim(ClaimParams(queues=["default"], worker_id="w"))

    assert lease.job_id == wanted[1].id
    assert read == [f"jobs/{wanted[1].id}.json"]


def test_a_torn_journal_is_discarded(root: Path) -> None:
    store = FileStore(str(root), clock=FakeClock())
    kept = job()
    store.enqueue([kept])
    (root / "journal").write_bytes(b"not a checksum\n[]")

    reopened = FileStore(str(root), clock=FakeClock())

    assert not (root / "journal").exists()
    assert reopened.get(kept.id) is not None


def test_data_survives_close_and_reopen(root: Path) -> None:
    clock = FakeClock()
    store = FileStore(str(root), clock=clock)
    waiting, running = job(unique_key="k"), job(priority=3)
    store.enqueue([waiting, running])
    [lease] = store.claim(ClaimParams(queues=["default"], worker_id="w"))
    assert lease.job_id == running.id
    store.close()
    store.close()

    reopened = FileStore(str(root), clock=clock)

    assert reopened.get(waiting.id) == store.get(waiting.id)
    held = reopened.get(running.id)
    assert held is not None and held.state is JobState.PROCESSING
    assert reopened.complete([Completion(lease, b"ok")]) == []
    duplicate = reopened.enqueue([job(unique_key="k")])
    assert duplicate[0].duplicate and duplicate[0].id == waiting.id


# processes ---------------------------------------------------------------------------------
def _enqueue_later(root: str, delay: float) -> None:
    time.sleep(delay)
    FileStore(root).enqueue([job()])


def test_a_waiter_is_woken_by_an_enqueue_in_another_process(store: FileStore) -> None:
    assert store.wait_for_work(["default"], 0.05) is False  # binds the waiter's socket
    child = _FORK.Process(target=_enqueue_later, args=(store.root, 0.3))
    child.start()
    try:
        started = time.monotonic()
        woke = store.wait_for_work(["default"], 10.0)
        elapsed = time.monotonic() - started
    finally:
        child.join(10)
    assert woke is True
    assert elapsed < 3.0
    assert child.exitcode == 0


def test_waiting_without_work_times_out(store: FileStore) -> None:
    started = time.monotonic()
    assert store.wait_for_work(["default"], 0.2) is False
    assert time.monotonic() - started >= 0.15


def _drain(store: FileStore, out: str) -> None:
    """Runs in a forked child, on the store object inherited from the parent."""
    done: list[str] = []
    params = ClaimParams(queues=["default"], worker_id=str(os.getpid()), limit=3)
    leases = store.claim(params)
    while leases:
        done.extend(lease.job_id for lease in leases)
        lost, leases = store.complete_and_claim(
            [Completion(lease, lease.job_id.encode()) for lease in leases], params
        )
        assert lost == []
    Path(out).write_text("\n".join(done))


def test_four_processes_complete_each_job_exactly_once(store: FileStore, tmp_path: Path) -> None:
    jobs = [job(priority=i % 3) for i in range(300)]
    store.enqueue(jobs)  # the parent's lock descriptor is open when the children fork
    outs = [tmp_path / f"out-{n}.txt" for n in range(4)]
    children = [_FORK.Process(target=_drain, args=(store, str(o))) for o in outs]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
    assert [c.exitcode for c in children] == [0, 0, 0, 0]

    done = [line for o in outs for line in o.read_text().splitlines() if line]
    assert sorted(done) == sorted(j.id for j in jobs)
    assert len(set(done)) == 300
    assert sum(1 for o in outs if o.read_text()) >= 2  # the work really was shared
    finished = store.get_many([j.id for j in jobs])
    assert all(j.state is JobState.COMPLETED and j.result == j.id.encode() for j in finished)
    assert store.stats()[0].counts == {"completed": 300}
