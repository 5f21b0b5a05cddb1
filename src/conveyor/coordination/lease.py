"""A named lease held by one process at a time (leader election by expiry).

The holder renews it well before it expires; if the holder dies, another process
takes it over once ``ttl`` has passed. Leadership is advisory: the work a leader does
must still be safe when two leaders briefly overlap (the scheduler's unique keys are).
"""

from __future__ import annotations

import logging

from conveyor.errors import InvalidOption
from conveyor.stores.base import Store

log = logging.getLogger("conveyor.coordination")

NAMESPACE = "lease"


class LeaderLease:
    """The lease ``name`` as seen by ``holder``."""

    def __init__(self, store: Store, name: str, holder: str, *, ttl: float = 15.0) -> None:
        if not ttl > 0:
            raise InvalidOption("ttl", f"must be a positive number of seconds, not {ttl!r}")
        self.store = store
        self.name = name
        self.holder = holder
        self.ttl = float(ttl)
        self.held = False

    def acquire(self) -> bool:
        """Take the lease if it is free or expired, or renew it if held; True if held now."""
        now = self.store.now()
        current = self.store.get_record(NAMESPACE, self.name, now=now)
        owner = None if current is None else current.value.decode("utf-8", "replace")
        if current is not None and owner != self.holder:
            self._set(held=False, owner=owner)
            return False
        written = self.store.put_record(
            NAMESPACE,
            self.name,
            self.holder.encode(),
            expect_version=None if current is None else current.version,
            expires_at=now + self.ttl,
            now=now,
        )
        self._set(held=written is not None, owner=self.holder if written else None)
        return self.held

    def release(self) -> None:
        """Give the lease up at once (clean shutdown), if this holder has it."""
        current = self.store.get_record(NAMESPACE, self.name)
        if current is not None and current.value.decode("utf-8", "replace") == self.holder:
            self.store.delete_record(NAMESPACE, self.name, expect_version=current.version)
        self.held = False

    def owner(self) -> str | None:
        """Who holds the lease now, if anyone."""
        current = self.store.get_record(NAMESPACE, self.name)
        return None if current is None else current.value.decode("utf-8", "replace")

    def _set(self, *, held: bool, owner: str | None) -> None:
        if held != self.held:
            if held:
                log.info("%s: lease %s acquired", self.holder, self.name)
            else:
                log.info("%s: lease %s lost (held by %s)", self.holder, self.name, owner)
        self.held = held
