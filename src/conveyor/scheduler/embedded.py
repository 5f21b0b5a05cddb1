"""Running the scheduler alongside a worker (``conveyor worker --with-scheduler``).

With ``--solo`` the scheduler is a thread of the worker process. Under the prefork
supervisor it is a child process of its own (``conveyor scheduler``), restarted if it
dies, because a thread in a process that forks could hold a lock at the moment of the
fork and deadlock the child.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Sequence

from conveyor.scheduler.service import ScheduledApp, Scheduler

log = logging.getLogger("conveyor.scheduler")

RESTART_DELAY = 1.0
STOP_TIMEOUT = 10.0


class SchedulerThread:
    """The scheduler service on a daemon thread of this process."""

    def __init__(self, app: ScheduledApp) -> None:
        self.service = Scheduler(app)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.service.run, args=(self._stop,), name="conveyor-scheduler", daemon=True
        )

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current pass and give up the leader lease."""
        self._stop.set()
        self._thread.join(timeout=STOP_TIMEOUT)


class SchedulerProcess:
    """``conveyor scheduler`` as a child process, restarted after a crash."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._monitor = threading.Thread(
            target=self._watch, name="conveyor-scheduler-monitor", daemon=True
        )

    @classmethod
    def for_app(cls, app_spec: str, store_dsn: str | None) -> SchedulerProcess:
        """The command that runs the same app's scheduler on the same store."""
        command = [sys.executable, "-m", "conveyor", "--app", app_spec]
        if store_dsn:
            command += ["--store", store_dsn]
        return cls([*command, "scheduler", "--exit-with-parent"])

    @property
    def pid(self) -> int | None:
        """The running scheduler's pid, if any."""
        with self._lock:
            return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Start the process and its monitor."""
        self._spawn()
        self._monitor.start()

    def _spawn(self) -> None:
        with self._lock:
            if not self._stop.is_set():
                # its own session: a Ctrl-C meant for the worker must not reach it
                # (it stops when the worker stops it, or when the worker is gone)
                self._proc = subprocess.Popen(
                    self.command, stdin=subprocess.DEVNULL, start_new_session=True
                )
                log.info("scheduler process %d started", self._proc.pid)

    def _watch(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                proc = self._proc
            if proc is None:
                return
            code = proc.wait()
            if self._stop.is_set():
                return
            log.error("scheduler process %d exited with %s; restarting", proc.pid, code)
            if self._stop.wait(RESTART_DELAY):
                return
            self._spawn()

    def stop(self) -> None:
        """SIGTERM the process and wait for it (killed after :data:`STOP_TIMEOUT`)."""
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._monitor.join(timeout=STOP_TIMEOUT)
