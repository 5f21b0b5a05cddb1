"""WAL checkpoints off the hot path.

SQLite checkpoints the WAL back into the database when a commit finds it past
``wal_autocheckpoint`` pages, and that commit then waits for the copy and its
``fsync`` (tens of milliseconds here): the tail of enqueue→start latency. A
consuming process (one that waits for work) instead runs passive checkpoints on
this thread every :data:`INTERVAL` seconds; writers never wait for them, and the
auto-checkpoint threshold stays as a safety net for processes that only enqueue.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("conveyor.stores.sqlite")

INTERVAL = 0.5


class Checkpointer:
    """A daemon thread running ``PRAGMA wal_checkpoint(PASSIVE)`` periodically."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self.pid = os.getpid()
        self._connect = connect
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conveyor-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = None
        while not self._stop.wait(INTERVAL):
            try:
                conn = conn or self._connect()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                log.debug("passive checkpoint failed: %s", exc)
                conn = None
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
