"""Stopping a running handler from outside: soft timeouts, forced cancels, hard stops.

In the main thread a ``SIGALRM`` (set by ``setitimer`` for the soft timeout, or
sent on demand) raises an :class:`~conveyor.errors.Interrupt` at the handler's
next bytecode, which also breaks out of ``time.sleep``. In other threads the
interrupt is raised asynchronously (``PyThreadState_SetAsyncExc``), which cannot
break a blocking C call; the supervisor's hard timeout covers that case.
Async handlers are stopped by cancelling their asyncio task instead.

A signal that lands just before the main thread enters a blocking call (after
Python's last check for pending signals) does not interrupt that call, so the
signal is repeated every :data:`RESEND_EVERY` seconds until the run ends.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from conveyor.errors import Interrupt, SoftTimeoutInterrupt

RESEND_EVERY = 0.02
RESEND_FOR = 10.0


class Interrupter:
    """Arms around one handler run; ``interrupt()`` may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed = False
        self._thread_id = 0
        self._pending: type[Interrupt] | None = None
        self._callback: Callable[[type[Interrupt]], None] | None = None
        self._timer: threading.Timer | None = None
        self._installed = False
        self._generation = 0
        self._deadline: float | None = None
        self.fired: type[Interrupt] | None = None

    def _install(self) -> None:
        if not self._installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGALRM, self._on_alarm)
            self._installed = True

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        with self._lock:
            if not self._armed or self._callback is not None:
                return
            timed_out = self._deadline is not None and time.monotonic() >= self._deadline
            if self._pending is None and not timed_out:
                return  # a late repeat meant for an earlier run
            exc = self._pending or SoftTimeoutInterrupt
            self._pending = None
            self._armed = False
            self.fired = exc
        raise exc(exc.__doc__ or exc.__name__)

    @contextmanager
    def guard(
        self, timeout: float | None, on_interrupt: Callable[[type[Interrupt]], None] | None = None
    ) -> Iterator[None]:
        """Allow interrupts while the block runs; fire a soft timeout after ``timeout``.

        With ``on_interrupt`` (async handlers) interrupts call it instead of raising,
        and the caller enforces the timeout itself.
        """
        main = threading.current_thread() is threading.main_thread()
        if main:
            self._install()
        with self._lock:
            self._armed = True
            self._generation += 1
            self._deadline = time.monotonic() + timeout if timeout is not None else None
            self._pending = None
            self.fired = None
            self._callback = on_interrupt
            self._thread_id = threading.get_ident()
        if timeout is not None and on_interrupt is None:
            if main:
                signal.setitimer(signal.ITIMER_REAL, timeout, RESEND_EVERY)
            else:
                self._timer = threading.Timer(timeout, self.interrupt, (SoftTimeoutInterrupt,))
                self._timer.daemon = True
                self._timer.start()
        try:
            yield
        finally:
            with self._lock:
                self._armed = False
                self._callback = None
            if main and timeout is not None and on_interrupt is None:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _resend(self, thread_id: int, generation: int) -> None:
        """Repeat the signal while the same run is still armed (see the module docstring)."""
        for _ in range(int(RESEND_FOR / RESEND_EVERY)):
            time.sleep(RESEND_EVERY)
            with self._lock:
                if not self._armed or self._generation != generation:
                    return
            signal.pthread_kill(thread_id, signal.SIGALRM)

    def interrupt(self, exc: type[Interrupt]) -> bool:
        """Stop the guarded run with ``exc``; False when nothing is running."""
        with self._lock:
            if not self._armed:
                return False
            callback = self._callback
            thread_id = self._thread_id
            generation = self._generation
            self._pending = exc
        if callback is not None:
            callback(exc)
            return True
        if self._installed and thread_id == threading.main_thread().ident:
            signal.pthread_kill(thread_id, signal.SIGALRM)
            threading.Thread(
                target=self._resend,
                args=(thread_id, generation),
                name="conveyor-interrupt",
                daemon=True,
            ).start()
            return True
        with self._lock:
            if not self._armed:
                return False
            self._armed = False
            self.fired = exc
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc))
        return True
