"""The rescuer: jobs whose lease expired (worker crashed or stalled) go back to the
queue, or to the DLQ when they have no attempt left or keep killing workers."""

from __future__ import annotations

from conveyor.stores.base import RescueParams, RescueResult, Store


class Rescuer:
    """``run_once(now)`` recovers expired leases in bounded batches."""

    def __init__(
        self, store: Store, *, retry_delay: float = 1.0, max_rescues: int = 3, limit: int = 1000
    ) -> None:
        self.store = store
        self.retry_delay = retry_delay
        self.max_rescues = max_rescues
        self.limit = limit

    def run_once(self, now: float | None = None) -> RescueResult:
        """One pass; ``now=None`` uses the store's clock."""
        return self.store.rescue_expired(
            RescueParams(
                retry_delay=self.retry_delay,
                max_rescues=self.max_rescues,
                limit=self.limit,
                now=now,
            )
        )
