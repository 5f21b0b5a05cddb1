"""Every signal handler of the worker processes; handlers only record intent, loops act.

- A worker run on its own (:func:`worker_signals`): SIGTERM/SIGINT stop after the
  current job (release unstarted ones); a second one stops at once (the running job
  is interrupted and its lease released); SIGQUIT stops at once.
- A supervised child (:func:`child_signals`): SIGTERM finishes the current job and
  exits; SIGQUIT interrupts it, releases it and exits; SIGUSR1 pauses; SIGUSR2
  resumes. SIGINT and SIGHUP are ignored: a terminal's Ctrl-C or hang-up reaches the
  supervisor, which decides.
- The supervisor (:func:`supervisor_signals`): each signal queues a :class:`Command`;
  a wake-up socket cuts the loop's sleep short.

Handlers are installed and restored by context managers (:func:`installed` also
serves ``conveyor scheduler``).
"""

from __future__ import annotations

import enum
import signal
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol

from conveyor.worker.consumer import StopWaiting, Worker

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
"""What :func:`signal.signal` takes and returns."""


class Command(enum.Enum):
    """What a signal asks of the supervisor; handlers only queue these."""

    STOP = "stop"
    STOP_NOW = "stop-now"
    PAUSE = "pause"
    RESUME = "resume"
    RELOAD = "reload"


SIGNAL_COMMANDS = {
    signal.SIGTERM: Command.STOP,
    signal.SIGINT: Command.STOP,
    signal.SIGQUIT: Command.STOP_NOW,
    signal.SIGUSR1: Command.PAUSE,
    signal.SIGUSR2: Command.RESUME,
    signal.SIGHUP: Command.RELOAD,
}

CHILD_SIGNALS = {
    Command.STOP: signal.SIGTERM,
    Command.STOP_NOW: signal.SIGQUIT,
    Command.PAUSE: signal.SIGUSR1,
    Command.RESUME: signal.SIGUSR2,
}
"""What the supervisor sends a child for a command; :func:`child_signals` answers each."""

INHERITED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
"""Signals whose supervisor handlers a forked child must not keep."""


class CommandSink(Protocol):
    """Takes commands from signal handlers (the supervisor)."""

    def command(self, cmd: Command) -> None:
        """Queue ``cmd``; must be safe to call from a signal handler."""
        ...


@contextmanager
def installed(handlers: Mapping[signal.Signals, Handler]) -> Iterator[None]:
    """Install ``handlers`` for the block, then put back what was there."""
    saved = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _stop(worker: Worker, *, immediate: bool) -> None:
    """Ask ``worker`` to stop; an idle wait is cut short so it notices now."""
    worker.request_stop(immediate=immediate)
    if worker.idle:
        raise StopWaiting


@contextmanager
def worker_signals(worker: Worker) -> Iterator[None]:
    """Route stop signals to a worker run on its own while the block runs."""

    def graceful(signum: int, frame: FrameType | None) -> None:
        _stop(worker, immediate=worker.stopping)

    def immediate(signum: int, frame: FrameType | None) -> None:
        _stop(worker, immediate=True)

    with installed({**dict.fromkeys(STOP_SIGNALS, graceful), signal.SIGQUIT: immediate}):
        yield


@contextmanager
def child_signals(worker: Worker) -> Iterator[None]:
    """Route the supervisor's signals to a supervised child's worker."""

    def graceful(signum: int, frame: FrameType | None) -> None:
        _stop(worker, immediate=False)

    def immediate(signum: int, frame: FrameType | None) -> None:
        _stop(worker, immediate=True)

    handlers: dict[signal.Signals, Handler] = {
        CHILD_SIGNALS[Command.STOP]: graceful,
        CHILD_SIGNALS[Command.STOP_NOW]: immediate,
        CHILD_SIGNALS[Command.PAUSE]: lambda s, f: worker.pause(),
        CHILD_SIGNALS[Command.RESUME]: lambda s, f: worker.resume(),
        signal.SIGINT: signal.SIG_IGN,
        signal.SIGHUP: signal.SIG_IGN,
    }
    with installed(handlers):
        yield


def forget_inherited() -> None:
    """In a forked child: drop the supervisor's handlers and its wake-up socket."""
    signal.set_wakeup_fd(-1)
    for sig in INHERITED:
        signal.signal(sig, signal.SIG_DFL)


@contextmanager
def supervisor_signals(sink: CommandSink) -> Iterator[socket.socket]:
    """Handlers that only queue commands; a wake-up socket cuts the loop's sleep short."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)

    def record(signum: int, frame: FrameType | None) -> None:
        sink.command(SIGNAL_COMMANDS[signal.Signals(signum)])

    try:
        with installed(dict.fromkeys(SIGNAL_COMMANDS, record)):
            previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            try:
                yield reader
            finally:
                signal.set_wakeup_fd(previous_fd)
    finally:
        reader.close()
        writer.close()


def drain_wakeups(sock: socket.socket) -> None:
    """Empty the wake-up socket (its bytes only say that a signal came)."""
    try:
        while sock.recv(512):
            continue
    except BlockingIOError:
        return


def describe_exit(status: int) -> str:
    """A child's exit status in words: ``exit status 3``, ``killed by SIGKILL``."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"
