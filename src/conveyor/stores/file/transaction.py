"""A change set over the store's files, read through its own pending writes.

The store loads jobs, key holds and dependency lists through a :class:`Transaction`,
changes them in memory, and commits once: the job records, the index markers that follow
from each job's old and new state, and the other files go to disk in one journalled
step (see :mod:`conveyor.stores.file.journal`).
"""

from __future__ import annotations

import json
from typing import Any

from conveyor.ids import is_job_id
from conveyor.job import Job, JobState
from conveyor.stores.corrupt import Salvage
from conveyor.stores.file import layout
from conveyor.stores.file.journal import Directory, Ops
from conveyor.stores.job_table import KeyKind, KeyRow

_HOLD_PATH = {KeyKind.UNIQUE: layout.unique_path, KeyKind.IDEMPOTENCY: layout.idempotency_path}
_HOLD_DIR = {KeyKind.UNIQUE: layout.UNIQUE_DIR, KeyKind.IDEMPOTENCY: layout.IDEMPOTENCY_DIR}


class Transaction:
    """Pending changes; create one per locked operation."""

    def __init__(self, directory: Directory) -> None:
        self.dir = directory
        self._original: dict[str, Job | None] = {}
        self._jobs: dict[str, Job | None] = {}
        self._files: Ops = {}
        self.corrupt: dict[str, Salvage] = {}
        """Jobs whose file could not be decoded (:meth:`job` returns the salvaged job)."""
        self.woke = False
        """Set when a job became pending: waiters are notified after the commit."""

    # jobs -------------------------------------------------------------------------------
    def job(self, job_id: str) -> Job | None:
        """The job as this transaction sees it (None: unknown, deleted, or not an id)."""
        if job_id in self._jobs:
            return self._jobs[job_id]
        if not is_job_id(job_id):
            return None
        data = self.dir.read(layout.job_path(job_id))
        job = None
        if data is not None:
            job, salvaged = layout.decode_job_or_salvage(data, job_id)
            if salvaged is not None:
                self.corrupt[job_id] = salvaged
        self._original[job_id] = job
        self._jobs[job_id] = job
        return job

    def put(self, job: Job) -> None:
        """Store the job's new version (insert or update)."""
        if job.id not in self._jobs:
            self.job(job.id)
        self._jobs[job.id] = job
        if job.state is JobState.PENDING:
            self.woke = True

    def drop(self, job_id: str) -> None:
        """Delete the job's record and marker."""
        self.job(job_id)
        self._jobs[job_id] = None

    def marker_names(self, state: JobState, queue: str) -> list[str]:
        """Marker names of one state and queue, including this transaction's changes.

        Names are not parsed here (a claim only parses the few it takes); anything that
        is not a marker parses to None or an unknown id later and is skipped."""
        names = self.dir.listdir(layout.index_dir(state, queue))
        changes = [
            (self._original.get(job_id), job)
            for job_id, job in self._jobs.items()
            if job is not self._original.get(job_id)
        ]
        if not changes:
            return names
        found = set(names)
        for before, job in changes:
            if before is not None and before.state is state and before.queue == queue:
                found.discard(layout.marker_name(before))
            if job is not None and job.state is state and job.queue == queue:
                found.add(layout.marker_name(job))
        return list(found)

    def markers(self, state: JobState, queue: str) -> list[tuple[int, float, str]]:
        """Parsed markers of one state and queue, including this transaction's changes."""
        parsed = (layout.parse_marker(name) for name in self.marker_names(state, queue))
        return [m for m in parsed if m is not None]

    def queues(self, state: JobState) -> list[str]:
        """Queues with a marker directory for ``state`` (or a job in it in this change set)."""
        names = {q for q in self.dir.listdir(f"{layout.INDEX_DIR}/{state.value}")}
        names.update(j.queue for j in self._jobs.values() if j is not None and j.state is state)
        return sorted(q for q in names if layout.is_queue_dir(q))

    # other files ------------------------------------------------------------------------
    def read_bytes(self, rel: str) -> bytes | None:
        """A file's content as this transaction sees it, or None."""
        return self._files[rel] if rel in self._files else self.dir.read(rel)

    def read_json(self, rel: str) -> Any:
        """A JSON file's value as this transaction sees it, or None."""
        data = self.read_bytes(rel)
        return None if data is None else json.loads(data)

    def write_json(self, rel: str, value: object) -> None:
        """Replace a JSON file at commit."""
        self._files[rel] = json.dumps(value, separators=(",", ":")).encode()

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Replace a file at commit."""
        self._files[rel] = data

    def remove(self, rel: str) -> None:
        """Remove a file at commit."""
        self._files[rel] = None

    def add_dependent(self, job_id: str, dependent: str) -> None:
        """Record that ``dependent`` waits on ``job_id``."""
        rel = layout.deps_path(job_id)
        waiting = self.read_json(rel) or []
        waiting.append(dependent)
        self.write_json(rel, waiting)

    def pop_dependents(self, job_id: str) -> list[str]:
        """The jobs waiting on ``job_id``; forget the list."""
        rel = layout.deps_path(job_id)
        waiting = self.read_json(rel)
        if waiting is None:
            return []
        self.remove(rel)
        return [str(i) for i in waiting]

    def wake(self) -> None:
        """Notify waiters after the commit."""
        self.woke = True

    # key holds ---------------------------------------------------------------------------
    def hold(self, kind: KeyKind, key: str) -> KeyRow | None:
        """The hold on ``key``, or None."""
        return _key_row(self.read_json(_HOLD_PATH[kind](key)))

    def put_hold(self, kind: KeyKind, key: str, row: KeyRow) -> None:
        """Set the hold on ``key`` at commit (the fingerprint only on idempotency keys)."""
        value: dict[str, Any] = {"key": key, "job_id": row.job_id, "expires_at": row.expires_at}
        if kind is KeyKind.IDEMPOTENCY:
            value["fingerprint"] = row.fingerprint
        self.write_json(_HOLD_PATH[kind](key), value)

    def drop_hold(self, kind: KeyKind, key: str) -> None:
        """Remove the hold on ``key`` at commit."""
        self.remove(_HOLD_PATH[kind](key))

    def holds(self, kind: KeyKind) -> list[tuple[str, KeyRow]]:
        """Every stored hold of ``kind`` (as on disk: for the orphan sweep)."""
        found = []
        directory = _HOLD_DIR[kind]
        for name in self.dir.listdir(directory):
            value = self.read_json(f"{directory}/{name}")
            row = _key_row(value)
            if row is not None:
                found.append((str(value["key"]), row))
        return found

    # committing -------------------------------------------------------------------------
    def ops(self) -> Ops:
        """Every file to write or remove."""
        ops: Ops = dict(self._files)
        for job_id, job in self._jobs.items():
            before = self._original.get(job_id)
            if job is before:
                continue
            old_marker = None if before is None else layout.marker_path(before)
            new_marker = None if job is None else layout.marker_path(job)
            if old_marker is not None and old_marker != new_marker:
                ops[old_marker] = None
            if job is None:
                ops[layout.job_path(job_id)] = None
                continue
            if new_marker is not None and new_marker != old_marker:
                ops[new_marker] = b""
            ops[layout.job_path(job_id)] = layout.encode_job(job)
        return ops

    def commit(self) -> None:
        """Write everything atomically and durably."""
        for job in self._jobs.values():
            if job is not None:
                self.dir.makedirs(layout.index_dir(job.state, job.queue))
        self.dir.commit(self.ops())


def _key_row(value: Any) -> KeyRow | None:
    """A hold file's JSON as a row (None: no file)."""
    if value is None:
        return None
    expires = value.get("expires_at")
    return KeyRow(
        str(value["job_id"]),
        None if expires is None else float(expires),
        str(value.get("fingerprint", "")),
    )
