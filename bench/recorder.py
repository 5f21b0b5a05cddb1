"""What every benchmark task calls: one fixed-width line per job in the run's record file.

A line is ``start end value`` (``%17.6f`` each, epoch seconds): when the handler began,
when it returned, and the task's value (the enqueue time carried in the arguments for
the latency task, the payload length for the payload task, 0 for the no-op). Lines are
54 bytes, written with one ``os.write`` on an ``O_APPEND`` descriptor, so processes and
threads can share one file and the harness counts finished jobs from the file size.
The cost is two clock reads and one small write per job (a few microseconds), the
same for every system. The file is named by ``BENCH_RECORD`` in the environment.
"""

from __future__ import annotations

import os
import time

LINE = 54
_open: tuple[int, str, int] | None = None  # (pid, path, fd)


def record(start: float, value: float = 0.0) -> None:
    """Append ``start end value`` for one job (nothing when BENCH_RECORD is unset)."""
    end = time.time()
    global _open
    path = os.environ.get("BENCH_RECORD")
    if not path:
        return
    pid = os.getpid()
    if _open is None or _open[0] != pid or _open[1] != path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _open = (pid, path, fd)
    os.write(_open[2], b"%17.6f %17.6f %17.6f\n" % (start, end, value))


def read(path: str) -> list[tuple[float, float, float]]:
    """All complete lines of a record file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return []
    rows = []
    for line in data.splitlines():
        parts = line.split()
        if len(parts) == 3:
            rows.append((float(parts[0]), float(parts[1]), float(parts[2])))
    return rows


def count(path: str) -> int:
    """Finished jobs so far, from the file size."""
    try:
        return os.stat(path).st_size // LINE
    except FileNotFoundError:
        return 0
