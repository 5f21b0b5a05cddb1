"""The Redis store: every state change is one Lua script (see ``docs/stores/redis.md``)."""

from conveyor.stores.redis.store import RedisStore

__all__ = ["RedisStore"]
