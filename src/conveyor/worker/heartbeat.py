"""Lease renewal on a background thread, so a long job keeps its lease.

If renewals keep failing for longer than the lease minus a safety margin, every
held lease is treated as lost (self-fencing, River's ``trustedUntil``): the
worker stops working on jobs that the store may already have handed to others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from conveyor.clock import Clock
from conveyor.errors import StoreError
from conveyor.job import Lease
from conveyor.stores.base import Store

log = logging.getLogger("conveyor.worker")


class LeaseKeeper:
    """Renews the leases it tracks every ``interval`` seconds."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        lease_seconds: float,
        interval: float,
        on_lost: Callable[[str], None],
        on_cancel: Callable[[str], None],
        on_round: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.on_lost = on_lost
        self.on_cancel = on_cancel
        self.on_round = on_round
        self._leases: dict[str, Lease] = {}
        self._trusted_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, lease: Lease) -> None:
        """Start renewing ``lease``."""
        with self._lock:
            self._leases[lease.job_id] = lease
            self._trusted_until[lease.job_id] = self.clock.monotonic() + self._trust_window()

    def untrack(self, job_id: str) -> None:
        """Stop renewing (the job finished or was released)."""
        with self._lock:
            self._leases.pop(job_id, None)
            self._trusted_until.pop(job_id, None)

    def held(self) -> list[Lease]:
        """Leases tracked now."""
        with self._lock:
            return list(self._leases.values())

    def _trust_window(self) -> float:
        return max(self.lease_seconds - 2 * self.interval, self.interval)

    def beat(self) -> None:
        """One renewal round (the thread calls this; tests call it directly)."""
        leases = self.held()
        if not leases:
            return
        try:
            result = self.store.heartbeat(leases, extend=self.lease_seconds)
        except StoreError as exc:
            log.warning("heartbeat failed: %s", exc, extra={"leases": len(leases)})
            self._fence_stale()
            return
        trusted = self.clock.monotonic() + self._trust_window()
        with self._lock:
            for job_id in result.renewed:
                if job_id in self._trusted_until:
                    self._trusted_until[job_id] = trusted
        for job_id in result.lost:
            self.untrack(job_id)
            self.on_lost(job_id)
        for job_id in result.cancel_requested:
            self.on_cancel(job_id)

    def _fence_stale(self) -> None:
        now = self.clock.monotonic()
        with self._lock:
            stale = [j for j, until in self._trusted_until.items() if until <= now]
        for job_id in stale:
            log.error("lease of job %s could not be renewed in time; giving it up", job_id)
            self.untrack(job_id)
            self.on_lost(job_id)

    def start(self) -> None:
        """Run :meth:`beat` every ``interval`` on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="conveyor-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
                if self.on_round is not None:
                    self.on_round()
            except Exception:
                log.exception("heartbeat round failed")

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.interval, 1.0) + 5)
