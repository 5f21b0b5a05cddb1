"""Storage drivers behind one contract; :func:`open_store` picks one from a DSN."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from conveyor.errors import ConfigurationError

if TYPE_CHECKING:
    from conveyor.clock import Clock
    from conveyor.stores.base import Store

SCHEMES = ("memory", "sqlite", "postgresql", "postgres", "redis", "rediss", "file")

DSN_FORMS = "sqlite:///path.db, memory://, postgresql://…, redis://…, file:///dir"

_DRIVERS: dict[str, tuple[str, str, str]] = {
    "postgresql": ("conveyor.stores.postgres", "PostgresStore", "postgres"),
    "postgres": ("conveyor.stores.postgres", "PostgresStore", "postgres"),
    "redis": ("conveyor.stores.redis", "RedisStore", "redis"),
    "rediss": ("conveyor.stores.redis", "RedisStore", "redis"),
    "file": ("conveyor.stores.file", "FileStore", ""),
}
"""Scheme -> (module, class, extra that installs the driver's library)."""

_SERVER_CLOCKED = frozenset({"postgresql", "postgres", "redis", "rediss"})
"""Schemes whose stores judge leases by their server's clock (see ``local_store_clock``)."""

_EXTRA_PACKAGES: dict[str, tuple[str, ...]] = {
    "postgres": ("psycopg", "psycopg_pool"),
    "redis": ("redis",),
}
"""Top-level packages each extra installs: a missing one means the extra is missing."""


def open_store(dsn: str, *, clock: Clock | None = None) -> Store:
    """Open the store named by ``dsn``; drivers are imported only when asked for.

    ``memory://``, ``sqlite:///path.db`` (``sqlite:///:memory:`` is refused: the
    store is shared across processes), ``postgresql://…``, ``redis://…`` and
    ``file:///dir``.

    Raises:
        ConfigurationError: The DSN is unknown or malformed, or the driver's library is
            not installed (the message names the ``pip install`` that fixes it).
    """
    scheme = urlsplit(dsn).scheme.lower()
    if scheme == "memory":
        from conveyor.stores.memory import MemoryStore

        return MemoryStore(clock=clock)
    if scheme == "sqlite":
        from conveyor.stores.sqlite import SQLiteStore

        return SQLiteStore.from_dsn(dsn, clock=clock)
    driver = _DRIVERS.get(scheme)
    if driver is None:
        raise ConfigurationError(f"unknown store DSN {redact(dsn)!r}: expected one of {DSN_FORMS}")
    module = _import_driver(scheme, driver[0])
    store: Store = getattr(module, driver[1]).from_dsn(dsn, clock=clock)
    return store


def local_store_clock(dsn: str, clock: Clock | None) -> Clock | None:
    """``clock`` for a single-host store (memory, SQLite, file), None for a shared one:
    PostgreSQL and Redis judge leases by their server's clock, never a process's."""
    return None if urlsplit(dsn).scheme.lower() in _SERVER_CLOCKED else clock


def _import_driver(scheme: str, module_name: str) -> ModuleType:
    """Import a driver module; a missing library becomes the ``pip install`` that fixes it."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        extra = _DRIVERS[scheme][2]
        missing = (exc.name or "").partition(".")[0]
        if extra and missing in _EXTRA_PACKAGES[extra]:
            raise ConfigurationError(
                f"the {scheme}:// store needs the {missing!r} package, which is not "
                f"installed; install it with: pip install 'conveyor[{extra}]'"
            ) from exc
        raise


def redact(dsn: str) -> str:
    """``dsn`` without a password (in the user part or a ``password`` parameter)."""
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, sep, _ = userinfo.partition(":")
        netloc = f"{user}{':***' if sep else ''}@{host}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def describe(dsn: str) -> str:
    """A printable name of the store: a SQLite path made absolute, passwords hidden."""
    scheme = urlsplit(dsn).scheme.lower()
    if scheme == "sqlite":
        from conveyor.stores.sqlite.connection import parse_dsn

        return "sqlite:///" + os.path.abspath(parse_dsn(dsn).path)
    return redact(dsn)


def require_existing(dsn: str) -> None:
    """Refuse a store that does not exist yet, instead of creating an empty one.

    Read and management commands call this so that a wrong or missing DSN is an error
    naming the path, not an empty listing from a freshly created ``./conveyor.db``.
    SQLite needs its file, File its directory, PostgreSQL the schema's migrations ledger,
    Redis the prefix's ``schema`` key (both read without writing); ``memory://`` always
    starts empty.

    Raises:
        ConfigurationError: The store does not exist.
        StoreUnavailable: A server store cannot be reached.
    """
    scheme = urlsplit(dsn).scheme.lower()
    if scheme == "sqlite":
        from conveyor.stores.sqlite.connection import parse_dsn

        path = os.path.abspath(parse_dsn(dsn).path)
        if not os.path.isfile(path):
            raise ConfigurationError(_missing(f"no SQLite store at {path} (from {dsn!r})"))
    elif scheme == "file":
        from conveyor.stores.file.layout import parse_dsn as parse_file_dsn

        directory = parse_file_dsn(dsn)
        if not os.path.isdir(directory):
            raise ConfigurationError(_missing(f"no File store at {directory}: no such directory"))
    elif scheme in ("postgresql", "postgres"):
        postgres = _import_driver(scheme, "conveyor.stores.postgres.connection")
        if not postgres.store_exists(dsn):
            where = postgres.parse_dsn(dsn)
            raise ConfigurationError(
                _missing(f"no Conveyor store in schema {where.schema!r} of {where.location}")
            )
    elif scheme in ("redis", "rediss"):
        redis_store = _import_driver(scheme, "conveyor.stores.redis.store")
        if not redis_store.store_exists(dsn):
            _, prefix = redis_store.parse_dsn(dsn)
            raise ConfigurationError(
                _missing(f"no Conveyor store under prefix {prefix!r} at {redact(dsn)}")
            )


def _missing(what: str) -> str:
    return (
        f"{what}; point at your store with --store DSN (or CONVEYOR_STORE, or store = … in "
        "conveyor.toml), or load your app with --app module:app; "
        "`conveyor migrate` creates a new, empty store"
    )
