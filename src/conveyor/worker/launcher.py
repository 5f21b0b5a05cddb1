"""Starting child processes: a protocol, so the supervisor can be tested with fakes.

:class:`ForkLauncher` forks children from the supervisor (fast start, shared pages)
until a reload; :class:`ExecLauncher` starts each child as a fresh interpreter
(``python -m conveyor.worker.child``) with a pipe for its reports: a fresh
process imports the app anew, so a rolling restart (SIGHUP) picks up new code,
and nothing of the supervisor's state (threads, connections) leaks into it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Protocol

from conveyor.config import WorkerSettings
from conveyor.worker.channel import ReportReader, ReportWriter, report_pipe
from conveyor.worker.child import PipeReporter, die_with_parent, run_child
from conveyor.worker.signals import forget_inherited
from conveyor.worker.slot import ClaimedJob, CurrentJob, JobSlot

if TYPE_CHECKING:
    from conveyor.runtime import Runtime


class ChildProcess(Protocol):
    """A running child as the supervisor sees it."""

    pid: int
    conn: ReportReader
    """Read end of the child's report pipe."""

    def poll(self) -> int | None:
        """Exit status if it has exited (negative: killed by that signal), else None."""
        ...

    def signal(self, sig: int) -> None:
        """Send ``sig`` (ignored if the child is already gone)."""
        ...

    def current_job(self) -> CurrentJob | None:
        """The job the child says it is running (readable after it died, too)."""
        ...

    def claimed_jobs(self) -> list[ClaimedJob]:
        """The last batch the child published (read once it has died)."""
        ...

    def close(self) -> None:
        """Release the pipe and the job slot once the child has been reaped."""
        ...


class ChildLauncher(Protocol):
    """Starts children for the supervisor."""

    def launch(self, slot: int, settings: WorkerSettings) -> ChildProcess:
        """Start one child for ``slot`` with these worker settings."""
        ...

    def reload(self) -> None:
        """From now on, start children that load the code afresh (SIGHUP)."""
        ...


class _Reports:
    """What every kind of child shares: its report pipe and its job slot."""

    __slots__ = ()
    conn: ReportReader
    slot: JobSlot

    def current_job(self) -> CurrentJob | None:
        """Read the child's job slot."""
        return self.slot.read()

    def claimed_jobs(self) -> list[ClaimedJob]:
        """Read the child's last published batch."""
        return self.slot.read_batch()

    def close(self) -> None:
        """Close the pipe and the slot."""
        self.conn.close()
        self.slot.close()


@dataclasses.dataclass(slots=True)
class PopenChild(_Reports):
    """A child started with :mod:`subprocess`."""

    proc: subprocess.Popen[bytes]
    conn: ReportReader
    pid: int
    slot: JobSlot

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

    def reload(self) -> None:
        """Every child is a fresh interpreter already."""

    def launch(self, slot: int, settings: WorkerSettings) -> ChildProcess:
        """Spawn the child with the write end of a fresh pipe."""
        reader, writer = report_pipe()
        job_slot = JobSlot.create(settings.prefetch)
        fields = dataclasses.asdict(settings)
        fields["worker_id"] = settings.worker_id or ""
        command = [
            sys.executable,
            "-m",
            "conveyor.worker.child",
            "--app",
            self.app_spec,
            "--fd",
            str(writer),
            "--slot-fd",
            str(job_slot.fd),
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
                command,
                pass_fds=(writer, job_slot.fd),
                close_fds=True,
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            reader.close()
            job_slot.close()
            raise
        finally:
            os.close(writer)
        return PopenChild(proc, reader, proc.pid, job_slot)


@dataclasses.dataclass(slots=True)
class ForkedChild(_Reports):
    """A child forked from the supervisor."""

    pid: int
    conn: ReportReader
    slot: JobSlot
    status: int | None = None

    def poll(self) -> int | None:
        """Reap without blocking; negative status for a death by signal."""
        if self.status is None:
            try:
                pid, raw = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.status = 0
                return self.status
            if pid:
                self.status = os.waitstatus_to_exitcode(raw)
        return self.status

    def signal(self, sig: int) -> None:
        """Signal the child unless it has been reaped."""
        if self.status is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return


class ForkLauncher:
    """Forks children from the supervisor, which has the app imported already.

    A forked child starts in milliseconds (nothing to import) and shares the
    supervisor's memory pages until it writes them. It runs the code the
    supervisor loaded, so after :meth:`reload` (SIGHUP) this launcher hands over
    to an :class:`ExecLauncher`, whose children import the app afresh.
    """

    def __init__(self, app: Runtime, fresh: ExecLauncher) -> None:
        self.app = app
        self.fresh = fresh
        self.reloaded = False

    def reload(self) -> None:
        """Start every later child with :attr:`fresh`."""
        self.reloaded = True

    def launch(self, slot: int, settings: WorkerSettings) -> ChildProcess:
        """Fork (or, after a reload, exec) one child."""
        if self.reloaded:
            return self.fresh.launch(slot, settings)
        reader, writer = report_pipe()
        job_slot = JobSlot.create(settings.prefetch)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the supervisor's stack
            code = 1
            try:
                reader.close()
                code = _forked_child(self.app, settings, writer, job_slot, parent)
            except BaseException:
                logging.getLogger("conveyor.worker").exception("worker child failed")
            finally:
                os._exit(code)
        os.close(writer)
        return ForkedChild(pid, reader, job_slot)


def _forked_child(
    app: Runtime, settings: WorkerSettings, writer: int, job_slot: JobSlot, parent: int
) -> int:
    forget_inherited()
    die_with_parent(parent)
    return run_child(app, settings, PipeReporter(ReportWriter(writer), job_slot, parent))


def kill_quietly(child: ChildProcess) -> None:
    """SIGKILL a child that may already be gone."""
    child.signal(signal.SIGKILL)
