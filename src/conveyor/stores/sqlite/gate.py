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
        self._state: tuple[int, threading.Lock, int] | None = None
        """(pid, thread lock, lock-file descriptor) of the process that set them up."""
        self._setup = threading.Lock()

    def _ensure(self) -> tuple[threading.Lock, int]:
        pid = os.getpid()
        state = self._state
        if state is not None and state[0] == pid:
            return state[1], state[2]
        # first use, or a forked child: the parent's lock and descriptor are not ours.
        # Threads racing here must agree on one lock and one descriptor.
        with self._setup:
            state = self._state
            if state is None or state[0] != pid:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                state = (pid, threading.Lock(), fd)
                self._state = state
        return state[1], state[2]

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Be the only writer while the block runs."""
        lock, fd = self._ensure()
        with lock:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close this process's descriptor."""
        state, self._state = self._state, None
        if state is not None and state[0] == os.getpid():
            os.close(state[2])
