"""The report channel from a child to its supervisor: JSON lines over a plain pipe.

Reports are small (well under ``PIPE_BUF``), so each ``os.write`` is atomic even
when the heartbeat thread and the main thread report at once. A plain pipe keeps
``multiprocessing`` (and the OpenSSL it pulls in through ``hmac``) out of the
worker's memory.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import orjson

Report = tuple[str, dict[str, Any]]


class ReportWriter:
    """The child's end."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()

    def send(self, kind: str, data: dict[str, Any]) -> None:
        """Write one report (raises OSError if the supervisor is gone)."""
        line = orjson.dumps([kind, data]) + b"\n"
        with self._lock:
            view = memoryview(line)
            while view:
                view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        """Close the write end."""
        os.close(self.fd)


class ReportReader:
    """The supervisor's end: non-blocking, buffered, selectable."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._buffer = b""
        self.closed = False

    def fileno(self) -> int:
        """For ``select``."""
        return self.fd

    def read(self) -> list[Report]:
        """Every complete report waiting now; sets :attr:`closed` at end of file."""
        while not self.closed:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                self.closed = True
                break
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        reports: list[Report] = []
        for line in lines:
            try:
                kind, data = orjson.loads(line)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue  # a garbled line from a dying child; nothing to act on
            reports.append((str(kind), dict(data)))
        return reports

    def close(self) -> None:
        """Close the read end."""
        os.close(self.fd)


def report_pipe() -> tuple[ReportReader, int]:
    """A new channel: the reader, and the raw write descriptor for the child."""
    read_fd, write_fd = os.pipe()
    return ReportReader(read_fd), write_fd
