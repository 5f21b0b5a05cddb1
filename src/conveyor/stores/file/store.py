"""The file store: jobs as files in one directory, shared by the processes of one host.

Every state change is one :class:`~conveyor.stores.file.transaction.Transaction` run under
an exclusive ``flock`` and committed through a journal (write, ``fsync``, rename,
``fsync`` of the directory), so it is atomic across processes and survives a crash.
Reads of single jobs, searches and records (the node registry too) take no lock: files
only ever appear complete, by ``rename``. The job hooks and their rules are those of
:class:`~conveyor.stores.table_store.TableStore`, shared with the memory store; this
module gives the transaction and finds jobs by the index markers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from conveyor.clock import Clock, SystemClock
from conveyor.errors import ConfigurationError, InvalidOption
from conveyor.ids import is_job_id
from conveyor.job import (
    TERMINAL_STATES,
    WAITING_STATES,
    EnqueueResult,
    Job,
    JobState,
    NewJob,
    StateCounts,
)
from conveyor.stores.base import (
    Capabilities,
    ClaimParams,
    JobQuery,
    Page,
    PruneParams,
    PruneResult,
    Record,
    StoreInfo,
)
from conveyor.stores.corrupt import claimable, quarantined
from conveyor.stores.file import layout
from conveyor.stores.file import records as file_records
from conveyor.stores.file.journal import Directory
from conveyor.stores.file.transaction import Transaction
from conveyor.stores.job_table import drop_holds_of, drop_orphan_holds, fail_dependents
from conveyor.stores.selection import matches, unique_ids
from conveyor.stores.table_store import TableStore, retention
from conveyor.stores.wakeup import WakeChannel
from conveyor.validation import queue_name

S = JobState
log = logging.getLogger("conveyor.stores.file")
R = TypeVar("R")

DURABILITY = "crash-safe (write, fsync, rename, fsync dir)"


class FileStore(TableStore[Transaction]):
    """A Store kept as files under one directory (see :mod:`conveyor.stores.file.layout`)."""

    name = "file"
    capabilities = Capabilities(transactional_enqueue=False, blocking_wait=True, shared=True)

    def __init__(self, root: str, *, clock: Clock | None = None) -> None:
        if not os.path.isabs(root):
            raise ConfigurationError(f"the file store needs an absolute directory, got {root!r}")
        created = not os.path.exists(root)
        os.makedirs(root, mode=0o700, exist_ok=True)
        if created:
            os.chmod(root, 0o700)
        self.root = os.path.realpath(root)
        self.clock = clock or SystemClock()
        self._dir = Directory(self.root)
        self._wake = WakeChannel(os.path.join(self.root, layout.WAKE_BASE))
        self._pid = os.getpid()
        for rel in layout.DIRECTORIES:
            self._dir.makedirs(rel)
        with self._dir.locked():
            self._dir.clear_tmp()
            self._check_version()

    @classmethod
    def from_dsn(cls, dsn: str, clock: Clock | None = None) -> FileStore:
        """Open ``file:///absolute/dir`` (see :func:`~conveyor.stores.file.layout.parse_dsn`)."""
        return cls(layout.parse_dsn(dsn), clock=clock)

    def __repr__(self) -> str:
        return f"FileStore({self.root!r})"

    # lifecycle ---------------------------------------------------------------------------
    def _check_version(self) -> int | None:
        data = self._dir.read(layout.VERSION_FILE)
        if data is None:
            return None
        try:
            version = int(data.decode().strip())
        except ValueError as exc:
            raise ConfigurationError(f"{self.root}/VERSION is not a layout version") from exc
        if version > layout.LAYOUT_VERSION:
            raise ConfigurationError(
                f"{self.root} uses file store layout {version}; this Conveyor knows up to "
                f"{layout.LAYOUT_VERSION} (upgrade Conveyor)"
            )
        return version

    def migrate(self) -> int:
        """Write the layout version file if missing; return the version. Idempotent."""
        with self._locked():
            if self._check_version() is None:
                self._dir.write_durably(layout.VERSION_FILE, b"%d\n" % layout.LAYOUT_VERSION)
        return layout.LAYOUT_VERSION

    def close(self) -> None:
        """Release this process's lock descriptor and wake-up sockets; safe to call twice.

        The store stays usable: the next call reopens what it needs."""
        self._after_fork()
        self._wake.close()
        self._dir.close()

    def info(self) -> StoreInfo:
        """Driver, directory and durability."""
        with self._locked():
            version = self._check_version()
        return StoreInfo(
            "file", self.root, DURABILITY, version, {"locking": "flock on <root>/lock"}
        )

    def _after_fork(self) -> None:
        """In a forked child, reset the wake-up channel's locks (the lock file reopens itself)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._wake.after_fork()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._after_fork()
        with self._dir.locked():
            yield

    def _atomic(self, work: Callable[[Transaction], R]) -> R:
        """Run ``work`` in one transaction under the lock; commit; wake waiters if needed."""
        with self._locked():
            tx = Transaction(self._dir)
            result = work(tx)
            tx.commit()
        if tx.woke:
            self._wake.notify()
        return result

    # producers ---------------------------------------------------------------------------
    def _enqueue(
        self, jobs: Sequence[NewJob], now: float, connection: object | None
    ) -> list[EnqueueResult]:
        """Refuse what cannot become a safe file name first, then one commit."""
        for job in jobs:
            if not is_job_id(job.id):
                raise InvalidOption("id", f"{job.id[:80]!r} is not a job id (a UUID)")
            queue_name(job.queue)
            if not layout.priority_fits(job.priority):
                raise InvalidOption("priority", f"{job.priority} is out of range")
        return super()._enqueue(jobs, now, connection)

    # finders (the index markers) -------------------------------------------------------
    def _choose(self, table: Transaction, params: ClaimParams, now: float) -> list[Job]:
        """The named jobs, or each queue's from its markers (sorted by name: the claim
        order). A job whose file cannot be decoded is quarantined instead."""
        chosen: list[Job] = []
        if params.job_ids is not None:
            for job_id in unique_ids(params.job_ids):
                job = table.job(job_id)
                if job_id in table.corrupt:
                    _quarantine(table, job_id, now, None)
                elif job is not None and job.state is S.PENDING:
                    chosen.append(job)
            return chosen[: params.limit]
        for queue in unique_ids(params.queues):
            room = params.limit - len(chosen)
            if room <= 0:
                break
            if not layout.is_queue_dir(queue):
                continue
            for name in heapq.nsmallest(room, table.marker_names(S.PENDING, queue)):
                job_id = layout.marker_id(name)
                job = table.job(job_id)
                if job_id in table.corrupt:
                    marker = f"{layout.index_dir(S.PENDING, queue)}/{name}"
                    _quarantine(table, job_id, now, (queue, marker))
                elif job is not None and job.state is S.PENDING:
                    chosen.append(job)
        return chosen

    def _waiting(self, table: Transaction) -> list[tuple[float, str]]:
        waiting: list[tuple[float, str]] = []
        for state in WAITING_STATES:
            for queue in table.queues(state):
                waiting.extend((b, job_id) for _, b, job_id in table.markers(state, queue))
        return sorted(waiting)

    def _expired(self, table: Transaction, now: float, limit: int) -> list[str]:
        expired: list[tuple[float, str]] = []
        for queue in table.queues(S.PROCESSING):
            expired.extend((b, i) for _, b, i in table.markers(S.PROCESSING, queue) if b < now)
        return [job_id for _, job_id in sorted(expired)[:limit]]

    def _wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block on the wake-up channel until a commit makes work pending, or ``timeout``."""
        self._after_fork()
        return self._wake.wait(timeout)

    # maintenance -------------------------------------------------------------------------
    def _prune(self, params: PruneParams, now: float) -> PruneResult:
        """Delete terminal jobs past their retention, except a parent whose chain step is
        not terminal yet; drop orphaned key holds and expired records (counted as orphans)."""
        return self._atomic(lambda tx: _prune(tx, params, now))

    # management --------------------------------------------------------------------------
    def _read_job(self, job_id: str) -> Job | None:
        if not is_job_id(job_id):
            return None
        data = self._dir.read(layout.job_path(job_id))
        return None if data is None else layout.decode_job_or_salvage(data, job_id)[0]

    def _get(self, job_id: str) -> Job | None:
        """No lock: job files are replaced atomically."""
        return self._read_job(job_id)

    def _get_many(self, job_ids: Sequence[str]) -> list[Job]:
        found = (self._read_job(i) for i in job_ids)
        return [job for job in found if job is not None]

    def _search(self, query: JobQuery, limit: int, offset: int) -> Page:
        """Reads every candidate job file."""
        if query.ids is not None:
            candidates = list(dict.fromkeys(query.ids))
        else:
            names = self._dir.listdir(layout.JOBS_DIR)
            candidates = [n[: -len(".json")] for n in names if n.endswith(".json")]
        found = [
            job
            for job in (self._read_job(i) for i in candidates)
            if job is not None and matches(job, query)
        ]
        found.sort(key=lambda j: (j.created_at, j.id), reverse=query.newest_first)
        return Page(found[offset : offset + limit], len(found), limit, offset)

    def _stats(self, now: float) -> list[StateCounts]:
        """Counts from the index markers, under the lock (one consistent snapshot)."""
        by_queue: dict[str, StateCounts] = {}
        with self._locked():
            tx = Transaction(self._dir)
            for state in JobState:
                for queue in tx.queues(state):
                    markers = tx.markers(state, queue)
                    if not markers:
                        continue
                    entry = by_queue.setdefault(queue, StateCounts(queue))
                    entry.counts[state.value] = len(markers)
                    if state is S.PENDING:
                        entry.oldest_pending_at = min(b for _, b, _ in markers)
        return [by_queue[q] for q in sorted(by_queue)]

    def _find_ids(self, prefix: str, limit: int) -> list[str]:
        """One listing of the jobs directory."""
        names = self._dir.listdir(layout.JOBS_DIR)
        found = sorted(
            name[: -len(".json")]
            for name in names
            if name.startswith(prefix) and name.endswith(".json") and is_job_id(name[:-5])
        )
        return found[:limit]

    # records (see conveyor.stores.file.records) -------------------------------------------
    def _get_record(self, namespace: str, key: str, now: float) -> Record | None:
        """No lock: record files are replaced atomically."""
        return file_records.get(self._dir, namespace, key, now)

    def _put_record(
        self, proposed: Record, expect_version: int | None, now: float
    ) -> Record | None:
        """Compare-and-set in one journalled transaction under the lock."""
        return self._atomic(lambda tx: file_records.put(tx, proposed, expect_version, now))

    def _delete_record(self, namespace: str, key: str, expect_version: int | None) -> bool:
        return self._atomic(lambda tx: file_records.delete(tx, namespace, key, expect_version))

    def _list_records(self, namespace: str, prefix: str, now: float) -> list[Record]:
        """No lock."""
        return file_records.list_live(self._dir, namespace, prefix, now)


# helpers ---------------------------------------------------------------------------------
def _quarantine(tx: Transaction, job_id: str, now: float, found_at: tuple[str, str] | None) -> None:
    """Dead-letter a claimed job whose file cannot be decoded (failed, ``corrupt``, the
    decode error recorded), rewriting its file; ``found_at`` is the (queue, marker path)
    the claim found it by, which a damaged file may not name."""
    salvaged = tx.corrupt[job_id]
    if not claimable(salvaged):
        return
    job = quarantined(salvaged, now)
    if not layout.is_queue_dir(job.queue):
        if found_at is None:
            return  # no queue to file it under: reads still show it as corrupt
        job = dataclasses.replace(job, queue=found_at[0])
    tx.put(job)
    # The markers follow from the decoded states, which a damaged file does not give:
    # drop the one the claim came by, and write the new one whatever the old was.
    if found_at is not None:
        tx.remove(found_at[1])
    tx.write_bytes(layout.marker_path(job), b"")
    del tx.corrupt[job_id]
    log.error("job %s quarantined (failed, corrupt): %s", job_id, salvaged.message)
    fail_dependents(tx, job_id, now)


def _prune(tx: Transaction, params: PruneParams, now: float) -> PruneResult:
    doomed: list[tuple[float, str]] = []
    for state, age in retention(params).items():
        if age is None:
            continue
        for queue in tx.queues(state):
            doomed.extend((b, i) for _, b, i in tx.markers(state, queue) if b <= now - age)
    if doomed:
        needed = _needed_parents(tx)
        doomed = [(b, i) for b, i in doomed if i not in needed]
    if params.dry_run:
        return PruneResult(len(doomed), 0)
    orphans = 0
    for _, job_id in sorted(doomed)[: params.limit]:
        job = tx.job(job_id)
        orphans += 0 if job is None else drop_holds_of(tx, job)
        orphans += sum(file_records.delete(tx, ns, job_id, None) for ns in params.job_records)
        tx.drop(job_id)
        tx.pop_dependents(job_id)
    if params.sweep:
        orphans += drop_orphan_holds(tx, now) + file_records.drop_expired(tx, now)
    return PruneResult(min(len(doomed), params.limit), orphans)


def _needed_parents(tx: Transaction) -> set[str]:
    """Jobs a chain step that is not terminal yet reads when it runs (its ``parent_id``).

    Reads every unfinished job's record, once per batch and only when some job is old
    enough to delete: no index names a job's steps on this store."""
    needed: set[str] = set()
    for state in S:
        if state in TERMINAL_STATES:
            continue
        for queue in tx.queues(state):
            for _, _, job_id in tx.markers(state, queue):
                job = tx.job(job_id)
                if job is not None and job.parent_id:
                    needed.add(job.parent_id)
    return needed
