"""Clocks: time is passed in, so timing logic can be tested with a fake one."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Source of wall time (epoch seconds, for due times) and monotonic time (durations)."""

    def now(self) -> float:
        """Wall-clock UTC epoch seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def now(self) -> float:
        """Wall-clock UTC epoch seconds."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to; both readings advance together."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """The current fake wall time."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """The current fake monotonic time."""
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds
            self._mono += seconds

    def step(self, seconds: float) -> None:
        """Step the wall clock only, either way (NTP or an operator setting the time);
        the monotonic clock does not move."""
        with self._lock:
            self._now += seconds
