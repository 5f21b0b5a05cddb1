"""One writer at a time across processes, handed over without sleeping.

SQLite lets one transaction write at a time; a second writer that finds the lock
taken polls it, sleeping 1, 2, 5 … up to 100 ms between tries. With several
worker processes writing all the time those sleeps dominate. Taking a blocking
``flock`` on a lock file beside the database before ``BEGIN IMMEDIATE`` queues
the writers in the kernel instead, and the next one wakes as soon as the lock is
released. Threads of one process queue on a ``threading.Lock`` first.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WriterGate:
    """A cross-process, cross-thread mutex for the store's write transactions."""

    def __init__(self, db_path: str) -> None:
        self.path = db_path + "-writer.lock"
        self._pid = 0
        self._fd = -1
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        # first use, or a forked child: the parent's lock and descriptor are not ours
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._pid = pid

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Be the only writer while the block runs."""
        self._ensure()
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close this process's descriptor."""
        if self._pid == os.getpid() and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        self._pid = 0
