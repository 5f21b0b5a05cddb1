"""Lease time on SQLite: a clock that a step of the wall clock cannot move.

SQLite is single-host, so every process that leases jobs shares the kernel's boot
clock (``CLOCK_BOOTTIME``: it never steps, and counts a suspend). Lease deadlines are
written as ``base + boot clock``, where ``base`` is the wall time minus the boot clock
taken once per boot by the first process and kept in the database (a record keyed by
the kernel's boot id), so every process of that boot reads the same lease time. Right
after the base is taken, lease time equals wall time; if the wall clock later steps
(NTP, an operator), lease time does not follow, so an expired lease is recovered on
schedule and a healthy one is not cut short. Due times (``run_at``) stay on the wall
clock: a schedule is a wall-clock promise.

After a reboot the boot id changes and a new base is taken; a lease from before the
reboot (its worker is gone) expires when its wall-clock deadline passes. Without a
boot id (not Linux) lease time is the wall clock, as before.

An injected clock (tests: :class:`~conveyor.clock.FakeClock`) stands in for both:
its ``monotonic()`` is the boot clock and its ``now()`` the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from conveyor.clock import Clock, SystemClock
from conveyor.stores.sql.dialect import Cursor

NAMESPACE = "conveyor.lease_clock"
"""Records namespace of the per-boot bases (key: boot id)."""

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")

_INSERT = """
INSERT INTO records (namespace, key, value, version, expires_at) VALUES (?, ?, ?, 1, NULL)
ON CONFLICT (namespace, key) DO NOTHING
"""
_SELECT = "SELECT value FROM records WHERE namespace = ? AND key = ?"


def read_boot_id(path: Path = BOOT_ID_PATH) -> str | None:
    """This boot's id (Linux), or None where the kernel does not publish one."""
    try:
        return path.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def boot_seconds() -> float:
    """Seconds since boot, suspend included; shared by every process of the host."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def establish_base(cur: Cursor, key: str, candidate: float) -> float:
    """The base recorded for ``key``; ``candidate`` becomes it if this process is first.

    Runs inside the store's write transaction, so two first processes agree."""
    cur.execute(_INSERT, (NAMESPACE, key, repr(candidate).encode()))
    row = cur.execute(_SELECT, (NAMESPACE, key)).fetchone()
    return float(bytes(row[0]).decode())


class LeaseClock:
    """``now()`` is lease time: the per-boot base plus the boot clock."""

    def __init__(
        self,
        clock: Clock,
        establish: Callable[[str, float], float],
        *,
        boot_id: str | None = None,
    ) -> None:
        self._clock = clock
        self._establish = establish
        self._system = type(clock) is SystemClock
        boot = boot_id if boot_id is not None else read_boot_id()
        if self._system:
            self._key = boot
        else:  # a fake clock's monotonic time is its own, never the boot clock
            self._key = f"{boot or 'no-boot-id'}:{type(clock).__qualname__}"
        self._base: float | None = None

    def _boot_clock(self) -> float:
        return boot_seconds() if self._system else self._clock.monotonic()

    def now(self) -> float:
        """Lease time (epoch-like seconds); immune to steps of the wall clock."""
        if self._key is None:
            return self._clock.now()
        base = self._base
        if base is None:
            base = self._base = self._establish(self._key, self._clock.now() - self._boot_clock())
        return base + self._boot_clock()
