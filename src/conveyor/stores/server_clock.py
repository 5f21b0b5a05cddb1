"""The server's clock, read cheaply: lease expiry and due times judged by one clock.

Workers on several hosts share a PostgreSQL or Redis server; if each judged leases
by its own clock, a host whose clock runs ahead would rescue jobs that are still
leased elsewhere. :class:`ServerClock` asks the server for its time now and then
(``clock_timestamp()``, ``TIME``) and adds the measured offset to the local clock,
so every host reads the server's time without a round trip per operation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("conveyor.stores")

REFRESH_EVERY = 30.0
"""Seconds between offset measurements (clocks drift slowly)."""


class ServerClock:
    """``now()`` is the server's time: the local clock plus a periodically measured offset."""

    def __init__(
        self, server_time: Callable[[], float], *, refresh_every: float = REFRESH_EVERY
    ) -> None:
        self._server_time = server_time
        self._refresh_every = refresh_every
        self._offset = 0.0
        self._measured_at: float | None = None
        self._lock = threading.Lock()

    def _measure(self) -> None:
        before = time.time()
        server = self._server_time()
        after = time.time()
        self._offset = server - (before + after) / 2  # the server read midway, on average
        self._measured_at = time.monotonic()
        if abs(self._offset) > 1.0:
            log.warning(
                "this host's clock is %.3f s off the store server's; leases and due times "
                "follow the server's clock",
                -self._offset,
            )

    def now(self) -> float:
        """The server's time (UTC epoch seconds)."""
        measured = self._measured_at
        if measured is None or time.monotonic() - measured > self._refresh_every:
            with self._lock:
                if (
                    self._measured_at is None
                    or time.monotonic() - self._measured_at > self._refresh_every
                ):
                    try:
                        self._measure()
                    except Exception as exc:  # the store call that follows will report it
                        log.debug("could not read the server's clock: %s", exc)
                        if self._measured_at is None:
                            return time.time()
        return time.time() + self._offset

    def monotonic(self) -> float:
        """The local monotonic clock (durations are measured locally)."""
        return time.monotonic()

    @property
    def offset(self) -> float:
        """Server time minus local time, as last measured."""
        return self._offset
