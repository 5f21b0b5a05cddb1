"""A child's current job, shared with its supervisor through a tiny mapped file.

The child writes the job id, lease token, start time and timeout into the slot
when it starts a job (a memory write, no system call), and clears it when the job
ends; the supervisor reads it on each tick. That keeps the hot path free of
per-job messages while the supervisor still knows enough to enforce hard timeouts
and to recover the job of a child that dies.

Layout (little-endian): ``seq u64 | started f64 | timeout f64 | job id 40s | token 40s``.
A writer makes ``seq`` odd while it writes and even when done (a seqlock); a reader
retries until it sees the same even ``seq`` before and after.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import tempfile
from dataclasses import dataclass

_LAYOUT = struct.Struct("<Qdd40s40s")
_SEQ = struct.Struct("<Q")
SIZE = _LAYOUT.size


@dataclass(frozen=True, slots=True)
class CurrentJob:
    """What a child is running: the job, its lease token, when it started, its timeout."""

    job_id: str
    token: str
    started: float
    """``time.monotonic()`` of the child (one clock for every process on the host)."""
    timeout: float | None


class JobSlot:
    """One child's slot; the supervisor creates it, the child attaches by fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, SIZE)
        self._seq = _SEQ.unpack_from(self._map, 0)[0]

    @classmethod
    def create(cls) -> JobSlot:
        """A new zeroed slot backed by an unlinked temporary file."""
        fd, path = tempfile.mkstemp(prefix="conveyor-slot-")
        os.unlink(path)
        os.ftruncate(fd, SIZE)
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
