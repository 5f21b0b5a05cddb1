"""Coordination held in the store: leader leases, rate limits, concurrency slots, decisions.

Everything here is built on the store's versioned records (compare-and-set, see
:class:`conveyor.stores.base.Record`), so it holds across processes and nodes on every
driver, and is judged by the store's clock.
"""

from __future__ import annotations

from conveyor.coordination.cas import update_record
from conveyor.coordination.lease import LeaderLease
from conveyor.coordination.limiter import Grant, Limiter
from conveyor.coordination.limits import Concurrency, Limit, RateLimit, parse_rate

__all__ = [
    "Concurrency",
    "Grant",
    "LeaderLease",
    "Limit",
    "Limiter",
    "RateLimit",
    "parse_rate",
    "update_record",
]
