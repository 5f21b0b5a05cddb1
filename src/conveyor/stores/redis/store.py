"""The Redis store: one Lua script per state change, sorted sets for order and due times.

Every write is one ``EVALSHA`` of a script in ``lua/`` (atomic on the server and fenced
by the lease token); reads are plain commands. All keys start with the DSN's ``prefix``
(default ``conveyor``). Semantics follow :mod:`conveyor.stores.base`; the checks, the
clock reading and the node registry (on records) come from
:class:`~conveyor.stores.front.StoreFront`, and each part of the driver lives in its own
module: :mod:`.connection`, :mod:`.enqueue`, :mod:`.jobs`, :mod:`.maintenance`,
:mod:`.manage`, :mod:`.reads`, :mod:`.records` and :mod:`.wakeups`.
"""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.stores.base import Capabilities, StoreInfo
from conveyor.stores.front import StoreFront
from conveyor.stores.redis.codec import text
from conveyor.stores.redis.connection import (
    DEFAULT_PREFIX,
    SCHEMA_VERSION,
    dsn_parameters,
    durability_text,
    guard,
    parse_dsn,
    safe_location,
    store_exists,
)
from conveyor.stores.redis.enqueue import RedisEnqueue
from conveyor.stores.redis.jobs import RedisJobs
from conveyor.stores.redis.maintenance import RedisMaintenance
from conveyor.stores.redis.manage import RedisManage
from conveyor.stores.redis.reads import RedisReads
from conveyor.stores.redis.records import RedisRecords
from conveyor.stores.redis.wakeups import RedisWakeups
from conveyor.stores.server_clock import ServerClock

__all__ = [
    "DEFAULT_PREFIX",
    "SCHEMA_VERSION",
    "RedisStore",
    "dsn_parameters",
    "durability_text",
    "parse_dsn",
    "safe_location",
    "store_exists",
]


class RedisStore(
    RedisEnqueue,
    RedisJobs,
    RedisMaintenance,
    RedisManage,
    RedisReads,
    RedisRecords,
    RedisWakeups,
    StoreFront,
):
    """A Store in one Redis database, under a key prefix; shared by many processes."""

    name = "redis"
    capabilities = Capabilities(transactional_enqueue=False, blocking_wait=True, shared=True)

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, clock: Clock | None = None):
        super().__init__(url, prefix)
        self.clock = clock or ServerClock(self._server_time)

    @classmethod
    def from_dsn(cls, dsn: str, clock: Clock | None = None) -> RedisStore:
        """Open ``redis://[:password@]host:port/db?prefix=name`` (also ``rediss://``)."""
        url, prefix = parse_dsn(dsn)
        return cls(url, prefix=prefix, clock=clock)

    def info(self) -> StoreInfo:
        """Driver, location (no password), durability from the AOF settings, and how many
        bad entries claims have repaired (stale index entries, corrupt jobs quarantined)."""
        client = self._redis()
        with guard():
            repairs = {text(k): text(v) for k, v in client.hgetall(self._key("repairs")).items()}
        return StoreInfo(
            "redis",
            safe_location(self.url, self.prefix),
            self._durability or "unknown",
            SCHEMA_VERSION,
            {
                "maxmemory-policy": self._policy or "unknown",
                "prefix": self.prefix,
                "repaired index entries": str(
                    int(repairs.get("index", "0")) + int(repairs.get("missing", "0"))
                ),
                "quarantined corrupt jobs": repairs.get("corrupt", "0"),
            },
        )
