"""Signal handling for a worker: handlers only record intent; the loop acts.

SIGTERM/SIGINT: stop after the current job (release unstarted ones). A second
one: stop at once (the running job is interrupted and its lease released).
SIGQUIT: stop at once. Handlers are installed and restored by a context manager.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from conveyor.worker.consumer import StopWaiting, Worker

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def worker_signals(worker: Worker) -> Iterator[None]:
    """Route stop signals to ``worker`` while the block runs."""

    def graceful(signum: int, frame: FrameType | None) -> None:
        worker.request_stop(immediate=worker.stopping)
        if worker.idle:
            raise StopWaiting

    def immediate(signum: int, frame: FrameType | None) -> None:
        worker.request_stop(immediate=True)
        if worker.idle:
            raise StopWaiting

    saved: dict[signal.Signals, Any] = {}
    for sig in STOP_SIGNALS:
        saved[sig] = signal.signal(sig, graceful)
    saved[signal.SIGQUIT] = signal.signal(signal.SIGQUIT, immediate)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
