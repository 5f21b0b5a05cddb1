"""A child's current job and claimed batch, shared with its supervisor through a
small mapped file.

The child writes the job id, lease token, start time and timeout into the slot
when it starts a job (a memory write, no system call), and clears it when the job
ends; the supervisor reads it on each tick. That keeps the hot path free of
per-job messages while the supervisor still knows enough to enforce hard timeouts
and to recover the job of a child that dies.

The child also publishes every batch it claims (ids and lease tokens), so when it
dies the supervisor releases the jobs it held but was not running at once, without
counting a crash against them (G9: poison means it ran).

Layout (little-endian): the current job, ``seq u64 | started f64 | timeout f64 |
job id 40s | token 40s``, then the batch: ``active u64`` and two halves of ``count u64
| capacity * (job id 40s | token 40s)``.

The current job is a seqlock: a writer makes ``seq`` odd while it writes and even
when done; a reader retries until it sees the same even ``seq`` before and after.
The batch is double-buffered: the child writes a new batch into the inactive half,
then flips ``active`` (one aligned word). A child that dies at any instant, even
half-way through a write, leaves one complete batch in the active half: the new
one, or the previous one whose leases the store has mostly closed (releasing those
is refused by fencing and does no harm).
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

_LAYOUT = struct.Struct("<Qdd40s40s")
_SEQ = struct.Struct("<Q")
_ENTRY = struct.Struct("<40s40s")
SIZE = _LAYOUT.size
"""Bytes of the current-job part (the batch region follows)."""


@dataclass(frozen=True, slots=True)
class CurrentJob:
    """What a child is running: the job, its lease token, when it started, its timeout."""

    job_id: str
    token: str
    started: float
    """``time.monotonic()`` of the child (one clock for every process on the host)."""
    timeout: float | None


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """One job of a child's claimed batch: its id and lease token."""

    job_id: str
    token: str


def size_for(capacity: int) -> int:
    """Bytes of a slot whose batch region holds ``capacity`` jobs."""
    return SIZE + _SEQ.size + 2 * (_SEQ.size + capacity * _ENTRY.size)


class JobSlot:
    """One child's slot; the supervisor creates it, the child attaches by fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        size = os.fstat(fd).st_size
        self._map = mmap.mmap(fd, size)
        self._seq = _SEQ.unpack_from(self._map, 0)[0]
        half = size - SIZE - _SEQ.size
        self.capacity = max(half // 2 - _SEQ.size, 0) // _ENTRY.size
        """How many jobs of a claimed batch fit (the supervisor sizes it for the prefetch)."""
        self._active = _SEQ.unpack_from(self._map, SIZE)[0] if self.capacity else 0

    @classmethod
    def create(cls, capacity: int = 1) -> JobSlot:
        """A new zeroed slot for batches of up to ``capacity`` jobs, backed by an
        unlinked temporary file."""
        fd, path = tempfile.mkstemp(prefix="conveyor-slot-")
        os.unlink(path)
        os.ftruncate(fd, size_for(capacity))
        return cls(fd)

    def close(self) -> None:
        """Unmap and close (both sides call this)."""
        self._map.close()
        os.close(self.fd)

    def publish(self, job_id: str, token: str, started: float, timeout: float | None) -> None:
        """Child side: the job now running."""
        self._write(started, math.nan if timeout is None else timeout, job_id, token)

    def clear(self) -> None:
        """Child side: no job running."""
        self._write(0.0, math.nan, "", "")

    def _write(self, started: float, timeout: float, job_id: str, token: str) -> None:
        seq = self._seq + 1
        _SEQ.pack_into(self._map, 0, seq)
        _LAYOUT.pack_into(self._map, 0, seq, started, timeout, job_id.encode(), token.encode())
        self._seq = seq + 1
        _SEQ.pack_into(self._map, 0, self._seq)

    def publish_batch(self, jobs: Sequence[tuple[str, str]]) -> None:
        """Child side: the batch just claimed, as ``(job id, lease token)`` pairs.

        Written into the inactive half, then made active by one word: a death at any
        instant leaves a complete batch behind. Jobs beyond the capacity are left out
        (their leases expire and the rescuer recovers them)."""
        if not self.capacity:
            return
        target = 1 - self._active
        base = self._half(target)
        count = min(len(jobs), self.capacity)
        for index in range(count):
            job_id, token = jobs[index]
            _ENTRY.pack_into(
                self._map, base + _SEQ.size + index * _ENTRY.size, job_id.encode(), token.encode()
            )
        _SEQ.pack_into(self._map, base, count)
        _SEQ.pack_into(self._map, SIZE, target)
        self._active = target

    def read_batch(self) -> list[ClaimedJob]:
        """Supervisor side, once the child is dead: its last published batch."""
        if not self.capacity:
            return []
        active = _SEQ.unpack_from(self._map, SIZE)[0]
        if active not in (0, 1):
            return []
        base = self._half(active)
        count = min(_SEQ.unpack_from(self._map, base)[0], self.capacity)
        batch: list[ClaimedJob] = []
        for index in range(count):
            job_id, token = _ENTRY.unpack_from(self._map, base + _SEQ.size + index * _ENTRY.size)
            job = job_id.rstrip(b"\0").decode(errors="replace")
            if job:
                batch.append(ClaimedJob(job, token.rstrip(b"\0").decode(errors="replace")))
        return batch

    def _half(self, which: int) -> int:
        return SIZE + _SEQ.size + which * (_SEQ.size + self.capacity * _ENTRY.size)

    def read(self) -> CurrentJob | None:
        """Supervisor side: the child's current job, or None."""
        for _ in range(100):
            seq, started, timeout, job_id, token = _LAYOUT.unpack_from(self._map, 0)
            if seq % 2 == 0 and _SEQ.unpack_from(self._map, 0)[0] == seq:
                break
        else:
            return None
        job = job_id.rstrip(b"\0").decode()
        if not job:
            return None
        return CurrentJob(
            job, token.rstrip(b"\0").decode(), started, None if math.isnan(timeout) else timeout
        )
