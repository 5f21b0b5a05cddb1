"""A supervised worker process: ``python -m conveyor.worker.child …`` (started by the
supervisor, never by hand).

The child imports the app itself (so a rolling restart loads new code), runs the
consumer loop, and reports to its supervisor over an inherited pipe: ready, job
started/finished, liveness (from the heartbeat thread), leaks, recycling. It dies
with its supervisor (``PR_SET_PDEATHSIG``, plus a parent check on every beat).

Signals sent by the supervisor are routed by
:func:`conveyor.worker.signals.child_signals`.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from conveyor.config import WorkerSettings
from conveyor.errors import ConveyorError
from conveyor.job import Lease
from conveyor.loading import load_app
from conveyor.logs import configure_logging
from conveyor.runtime import Runtime
from conveyor.worker.channel import ReportWriter
from conveyor.worker.consumer import Worker
from conveyor.worker.reporting import WorkerStats, rss_bytes
from conveyor.worker.signals import child_signals
from conveyor.worker.slot import JobSlot

EXIT_CONFIG = 78
"""Exit status when the app cannot be loaded (EX_CONFIG): the supervisor stops."""

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL us when the supervisor dies; exit if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the parent check on every heartbeat still applies
    if os.getppid() != parent:
        os._exit(1)


class PipeReporter:
    """Sends events to the supervisor; a broken pipe means it is gone, so we go too."""

    def __init__(self, conn: ReportWriter, slot: JobSlot, parent: int) -> None:
        self.conn = conn
        self.slot = slot
        self.parent = parent
        self._lock = threading.Lock()

    def send(self, kind: str, **data: Any) -> None:
        """One message; exits the process if the supervisor cannot be reached."""
        try:
            self.conn.send(kind, data)
        except (OSError, ValueError):
            os._exit(1)

    def claimed(self, leases: Sequence[Lease]) -> None:
        """Publish the claimed batch in the shared slot, so the supervisor can release
        the jobs not yet started if this process dies (no message, no system call)."""
        self.slot.publish_batch([(lease.job_id, lease.token) for lease in leases])

    def job_started(self, lease: Lease, timeout: float | None) -> None:
        """Publish the running job in the shared slot (no message, no system call)."""
        self.slot.publish(lease.job_id, lease.token, time.monotonic(), timeout)

    def job_finished(self, job_id: str, outcome: str) -> None:
        """Clear the slot unless the next job has already replaced this one."""
        current = self.slot.read()
        if current is not None and current.job_id == job_id:
            self.slot.clear()

    def alive(self, stats: WorkerStats) -> None:
        """Liveness with counters and memory; exit if the supervisor has died."""
        if os.getppid() != self.parent:
            os._exit(1)
        self.send(
            "alive",
            processed=stats.processed,
            completed=stats.completed,
            failed=stats.failed,
            rss=rss_bytes(),
        )

    def leak(self, task: str, growth_mib: float, runs: int) -> None:
        """A task keeps growing memory."""
        self.send("leak", task=task, growth_mib=growth_mib, runs=runs)

    def recycling(self, reason: str) -> None:
        """This child is about to exit to be replaced."""
        self.send("recycle", reason=reason)

    def memory_exceeded(self, job_id: str, message: str) -> None:
        """Ask the supervisor to kill this process: its job passed its memory limit and
        did not stop (say, inside a C call)."""
        self.send("memory", job_id=job_id, message=message)


def run_child(app: Runtime, settings: WorkerSettings, reporter: PipeReporter) -> int:
    """The child's life once it has its app: report ready, consume, report stats."""
    worker = Worker(app, settings, reporter=reporter, maintenance=False)
    with child_signals(worker):
        reporter.send("ready", worker_id=worker.worker_id, pid=os.getpid())
        stats = worker.run()
        # A SIGTERM sent now (the supervisor stops every child once one drained) waits
        # until the counters are sent; under the default action it would lose them.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    reporter.send("stats", **dataclasses.asdict(stats))
    if worker.drained:
        reporter.send("drained")
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    app.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of an exec'd child: load the app, then :func:`run_child`."""
    parser = argparse.ArgumentParser(prog="conveyor-child")
    parser.add_argument("--app", required=True)
    parser.add_argument("--store", default="")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--slot-fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--settings", required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", default="text")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    reporter = PipeReporter(ReportWriter(args.fd), JobSlot(args.slot_fd), args.parent)
    configure_logging(args.log_level, args.log_format)
    try:
        app = load_app(args.app)
        if args.store:
            app.use_store(args.store)
        settings = WorkerSettings(**json.loads(args.settings))
    except ConveyorError as exc:
        reporter.send("error", message=str(exc))
        return EXIT_CONFIG
    return run_child(app, settings, reporter)


if __name__ == "__main__":
    sys.exit(main())
