"""Storage drivers behind one contract; :func:`open_store` picks one from a DSN."""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from conveyor.errors import ConfigurationError

if TYPE_CHECKING:
    from conveyor.clock import Clock
    from conveyor.stores.base import Store

SCHEMES = ("memory", "sqlite", "postgresql", "postgres", "redis", "rediss", "file")


def open_store(dsn: str, *, clock: Clock | None = None) -> Store:
    """Open the store named by ``dsn``; drivers are imported only when asked for.

    ``memory://``, ``sqlite:///path.db`` (``sqlite:///:memory:`` is refused: the
    store is shared across processes), later ``postgresql://…``, ``redis://…`` and
    ``file:///dir``.
    """
    scheme = urlsplit(dsn).scheme.lower()
    if scheme == "memory":
        from conveyor.stores.memory import MemoryStore

        return MemoryStore(clock=clock)
    if scheme == "sqlite":
        from conveyor.stores.sqlite import SQLiteStore

        return SQLiteStore.from_dsn(dsn, clock=clock)
    driver = {
        "postgresql": ("conveyor.stores.postgres", "PostgresStore", "postgres"),
        "postgres": ("conveyor.stores.postgres", "PostgresStore", "postgres"),
        "redis": ("conveyor.stores.redis", "RedisStore", "redis"),
        "rediss": ("conveyor.stores.redis", "RedisStore", "redis"),
        "file": ("conveyor.stores.file", "FileStore", ""),
    }.get(scheme)
    if driver is not None and importlib.util.find_spec(driver[0]) is not None:
        module = importlib.import_module(driver[0])
        store: Store = getattr(module, driver[1]).from_dsn(dsn, clock=clock)
        return store
    if scheme in SCHEMES:
        raise ConfigurationError(
            f"the {scheme!r} store is not available in this version; "
            "use sqlite:///path.db (the default) or memory://"
        )
    raise ConfigurationError(
        f"unknown store DSN {dsn!r}: expected one of sqlite:///path.db, memory://, "
        "postgresql://…, redis://…, file:///dir"
    )
