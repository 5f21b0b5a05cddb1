"""Starting child processes: a protocol, so the supervisor can be tested with fakes.

:class:`ExecLauncher` starts each child as a fresh interpreter
(``python -m conveyor.worker.child``) with a pipe for its reports: a fresh
process imports the app anew, so a rolling restart (SIGHUP) picks up new code,
and nothing of the supervisor's state (threads, connections) leaks into it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Protocol

from conveyor.config import WorkerSettings


class ChildProcess(Protocol):
    """A running child as the supervisor sees it."""

    pid: int
    conn: Connection
    """Read end of the child's report pipe."""

    def poll(self) -> int | None:
        """Exit status if it has exited (negative: killed by that signal), else None."""
        ...

    def signal(self, sig: int) -> None:
        """Send ``sig`` (ignored if the child is already gone)."""
        ...


class ChildLauncher(Protocol):
    """Starts children for the supervisor."""

    def launch(self, slot: int, settings: WorkerSettings) -> ChildProcess:
        """Start one child for ``slot`` with these worker settings."""
        ...


@dataclasses.dataclass(slots=True)
class PopenChild:
    """A child started with :mod:`subprocess`."""

    proc: subprocess.Popen[bytes]
    conn: Connection
    pid: int

    def poll(self) -> int | None:
        """Reap without blocking."""
        return self.proc.poll()

    def signal(self, sig: int) -> None:
        """Signal the child unless it has already exited."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                return


class ExecLauncher:
    """Starts ``python -m conveyor.worker.child`` for an app given as ``module:attr``."""

    def __init__(
        self,
        app_spec: str,
        *,
        store: str = "",
        log_level: str = "INFO",
        log_format: str = "text",
    ) -> None:
        self.app_spec = app_spec
        self.store = store
        self.log_level = log_level
        self.log_format = log_format

    def launch(self, slot: int, settings: WorkerSettings) -> ChildProcess:
        """Spawn the child with the write end of a fresh pipe."""
        reader, writer = Pipe(duplex=False)
        fields = dataclasses.asdict(settings)
        fields["worker_id"] = settings.worker_id or ""
        command = [
            sys.executable,
            "-m",
            "conveyor.worker.child",
            "--app",
            self.app_spec,
            "--fd",
            str(writer.fileno()),
            "--parent",
            str(os.getpid()),
            "--settings",
            json.dumps(fields),
            "--log-level",
            self.log_level,
            "--log-format",
            self.log_format,
        ]
        if self.store:
            command += ["--store", self.store]
        try:
            proc = subprocess.Popen(
                command, pass_fds=(writer.fileno(),), close_fds=True, stdin=subprocess.DEVNULL
            )
        finally:
            writer.close()
        return PopenChild(proc, reader, proc.pid)


def kill_quietly(child: ChildProcess) -> None:
    """SIGKILL a child that may already be gone."""
    child.signal(signal.SIGKILL)
