"""Coordination held in the store: leader leases, rate limits, concurrency slots, decisions.

Everything here is built on the store's versioned records (compare-and-set, see
:class:`conveyor.stores.base.Record`), so it holds across processes and nodes on every
driver, and is judged by the store's clock.
"""

from __future__ import annotations

# The submodules are imported where they are used, so that a worker without limits or
# schedules does not load them: conveyor.coordination.limits (RateLimit, Concurrency),
# .limiter (Limiter), .lease (LeaderLease), .decisions, .cas (update_record).
