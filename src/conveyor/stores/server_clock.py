"""The server's clock, read cheaply: lease expiry and due times judged by one clock.

Workers on several hosts share a PostgreSQL or Redis server; if each judged leases
by its own clock, a host whose clock runs ahead would rescue jobs that are still
leased elsewhere. :class:`ServerClock` asks the server for its time now and then
(``clock_timestamp()``, ``TIME``) and keeps it on the local *monotonic* clock, so
every host reads the server's time without a round trip per operation, and a step
of this host's wall clock (NTP, an operator, a VM resume) cannot move it.

A wall-clock step is still noticed at once (the wall and monotonic clocks stop
agreeing) and triggers a new measurement, so the reported offset is current; an
offset past ``warn_above`` is logged as a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from conveyor.clock import Clock

log = logging.getLogger("conveyor.stores")

REFRESH_EVERY = 30.0
"""Seconds between offset measurements (clocks drift slowly)."""

WARN_ABOVE = 1.0
"""Default offset (seconds, either way) from the server past which a warning is logged."""

STEP_TOLERANCE = 0.1
"""Seconds the wall clock may move against the monotonic one between measurements
before it counts as a step (NTP slewing moves it at most ~0.5 ms/s)."""


class ServerClock:
    """``now()`` is the server's time: the local monotonic clock plus a measured base."""

    def __init__(
        self,
        server_time: Callable[[], float],
        *,
        refresh_every: float = REFRESH_EVERY,
        warn_above: float = WARN_ABOVE,
        wall: Callable[[], float] | None = None,
        mono: Callable[[], float] | None = None,
    ) -> None:
        if warn_above <= 0:
            raise ValueError(f"warn_above must be a positive number of seconds, not {warn_above}")
        self._server_time = server_time
        self._refresh_every = refresh_every
        self.warn_above = warn_above
        self._wall = wall or _wall_time
        self._mono = mono or _monotonic_time
        self._base: float | None = None  # server time minus monotonic time
        self._wall_ref = 0.0  # local wall minus monotonic time, at the last measurement
        self._measured_at: float | None = None
        self._warned = False
        self._lock = threading.Lock()

    def _measure(self) -> None:
        before = self._mono()
        server = self._server_time()
        after = self._mono()
        self._base = server - (before + after) / 2  # the server read midway, on average
        self._wall_ref = self._wall() - after
        self._measured_at = after
        self._report(self._base - self._wall_ref)

    def _report(self, offset: float) -> None:
        """Warn once when the offset passes the threshold (again after it came back)."""
        if abs(offset) <= self.warn_above:
            self._warned = False
            return
        if not self._warned:
            self._warned = True
            log.warning(
                "this host's clock is %+.3f s off the store server's (warning above %.3f s); "
                "leases and due times follow the server's clock — check NTP on this host",
                -offset,
                self.warn_above,
            )

    def _stale(self, mono: float) -> bool:
        """Never measured, due for a refresh, or the wall clock stepped since."""
        if self._measured_at is None or mono - self._measured_at > self._refresh_every:
            return True
        return abs(self._wall() - mono - self._wall_ref) > STEP_TOLERANCE

    def now(self) -> float:
        """The server's time (UTC epoch seconds)."""
        if self._stale(self._mono()):
            with self._lock:
                mono = self._mono()
                if self._stale(mono):
                    self._note_step(mono)
                    try:
                        self._measure()
                    except Exception as exc:  # the store call that follows will report it
                        log.debug("could not read the server's clock: %s", exc)
        base = self._base
        if base is None:
            return self._wall()
        return self._mono() + base

    def _note_step(self, mono: float) -> None:
        """Log a step of the wall clock once; the base, kept on the monotonic clock, holds."""
        if self._measured_at is None:
            return
        step = self._wall() - mono - self._wall_ref
        if abs(step) > STEP_TOLERANCE:
            self._wall_ref += step
            log.warning(
                "this host's wall clock stepped by %+.3f s; measuring the store server's "
                "clock again (leases keep following the server's clock)",
                step,
            )

    def monotonic(self) -> float:
        """The local monotonic clock (durations are measured locally)."""
        return self._mono()

    @property
    def measured(self) -> bool:
        """Whether the server's clock has been read at least once."""
        return self._base is not None

    @property
    def offset(self) -> float:
        """Server time minus this host's wall time, now (0.0 before the first measurement)."""
        if self._base is None:
            return 0.0
        mono = self._mono()
        return mono + self._base - self._wall()


def _wall_time() -> float:
    """``time.time()``, looked up on each call (a test may shim it)."""
    return time.time()


def _monotonic_time() -> float:
    return time.monotonic()


def clock_offset(clock: Clock) -> float | None:
    """This host's wall clock minus the server's (positive: this host is ahead) for a
    store judged by its server's clock; None for any other clock."""
    return -clock.offset if isinstance(clock, ServerClock) and clock.measured else None
