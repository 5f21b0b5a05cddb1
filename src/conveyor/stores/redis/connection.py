"""Reaching Redis: the DSN, the server checks, the per-process client and the script call.

Every part of the Redis store (jobs, read model, records, wake-ups) is a mixin over
:class:`RedisConnection`, which owns the client: created lazily and again after a
fork, so a child process never shares its parent's sockets. Every write is one
``EVALSHA`` of a script in ``lua/`` through :meth:`RedisConnection._run`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.commands.core import Script

from conveyor.clock import Clock
from conveyor.errors import ConfigurationError, InvalidOption, LeaseLost, StoreUnavailable
from conveyor.stores import redact
from conveyor.stores.redis import scripts
from conveyor.stores.redis.codec import text

log = logging.getLogger("conveyor.stores.redis")

SCHEMA_VERSION = 1
DEFAULT_PREFIX = "conveyor"
_ERROR_CODES = (
    "CONVEYOR_DUPLICATE_ID",
    "CONVEYOR_LEASE_LOST",
)
_CONNECTION_PARAMETERS = (
    "username",
    "password",
    "client_name",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
)
"""Connection keywords redis-py accepts from a URL besides those it parses itself."""


def parse_dsn(dsn: str) -> tuple[str, str]:
    """Split ``redis://…?prefix=p`` into (URL for redis-py without ``prefix``, prefix)."""
    parts = urlsplit(dsn)
    if parts.scheme.lower() not in ("redis", "rediss"):
        raise ConfigurationError(f"not a Redis DSN: {parts.scheme}://…")
    query = parse_qsl(parts.query, keep_blank_values=True)
    allowed = dsn_parameters()
    for key, _ in query:
        if key not in allowed:
            raise ConfigurationError(
                f"unknown Redis DSN parameter {key!r} in {redact(dsn)!r}; "
                f"allowed: {', '.join(allowed)}"
            )
    prefixes = [value for key, value in query if key == "prefix"]
    prefix = prefixes[-1] if prefixes else DEFAULT_PREFIX
    if not prefix:
        raise ConfigurationError("the Redis DSN's prefix parameter must not be empty")
    rest = urlencode([(key, value) for key, value in query if key != "prefix"])
    url = urlunsplit(parts._replace(query=rest))
    # redis-py leaves parse_url unannotated; the cast states what it takes and returns.
    parse_url = cast("Callable[[str], dict[str, Any]]", redis.connection.parse_url)
    try:
        parse_url(url)
    except ValueError as exc:
        raise ConfigurationError(f"Redis DSN {redact(dsn)!r}: {exc}") from None
    return url, prefix


def dsn_parameters() -> list[str]:
    """Query parameters a Redis DSN may hold: Conveyor's ``prefix`` and redis-py's own."""
    parsed = redis.connection.URL_QUERY_ARGUMENT_PARSERS
    return ["prefix", *sorted({*parsed, *_CONNECTION_PARAMETERS})]


def store_exists(dsn: str) -> bool:
    """Whether a Conveyor store lives under the DSN's prefix (its ``{prefix}:schema`` key),
    read without writing; for commands that must not create a store.

    Raises:
        StoreUnavailable: Redis cannot be reached.
    """
    url, prefix = parse_dsn(dsn)
    client = redis.Redis.from_url(url)
    try:
        with guard():
            return bool(client.exists(f"{prefix}:schema"))
    finally:
        client.close()


def safe_location(url: str, prefix: str) -> str:
    """The URL without password, with the prefix, for ``conveyor info``."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}?prefix={prefix}"


def durability_text(appendonly: str | None, appendfsync: str | None) -> tuple[str, bool]:
    """The durability level from the AOF settings, and whether it is the strongest."""
    if appendonly is None:
        return "unknown (CONFIG GET is not allowed; check appendonly/appendfsync)", False
    if appendonly != "yes":
        return (
            "not durable (no AOF): jobs since the last RDB snapshot are lost if Redis stops",
            False,
        )
    if appendfsync == "always":
        return "fully durable (AOF, appendfsync always)", True
    if appendfsync == "everysec":
        return (
            "up to 1 s of acknowledged jobs may be lost on power loss (AOF everysec)",
            False,
        )
    return (
        f"acknowledged jobs may be lost on power loss (AOF appendfsync {appendfsync}; "
        "the OS decides when to flush)",
        False,
    )


def _check_policy(policy: str | None) -> None:
    if policy is not None and policy != "noeviction":
        raise ConfigurationError(
            f"Redis maxmemory-policy is {policy!r}, which can evict keys and silently drop "
            "jobs; set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction "
            "and in redis.conf) to use Redis as a Conveyor store"
        )


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Connection problems become StoreUnavailable; script errors become Conveyor errors."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis is unreachable: {exc}") from exc
    except redis.ResponseError as exc:
        _raise_script_error(exc)
        if isinstance(exc, redis.ReadOnlyError) or str(exc).startswith("OOM"):
            raise StoreUnavailable(f"Redis refused the write: {exc}") from exc
        raise


def _raise_script_error(exc: redis.ResponseError) -> None:
    message = str(exc)
    for code in _ERROR_CODES:
        at = message.find(code)
        if at < 0:
            continue
        args = message[at + len(code) :].strip().split(" ", 1)
        if code == "CONVEYOR_DUPLICATE_ID":
            raise InvalidOption(
                "id", f"a job with id {args[0]} already exists (ids must be unique)"
            ) from exc
        raise LeaseLost(args[0]) from exc


class RedisConnection:
    """The client of this process, the scripts, the server's settings and the key prefix."""

    clock: Clock

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self._lock = threading.Lock()
        self._pid = -1
        self._client: redis.Redis | None = None
        # Clients inherited through fork: never used or closed in the child (closing could
        # disturb the parent's sockets); kept referenced so garbage collection leaves them
        # alone too.
        self._inherited: list[redis.Redis] = []
        self._scripts: dict[str, Script] = {}
        self._durability: str | None = None
        self._policy: str | None = None

    def _server_time(self) -> float:
        """Redis's clock (``TIME``), for :class:`~conveyor.stores.server_clock.ServerClock`."""
        seconds, micros = self._redis().time()
        return float(seconds) + float(micros) / 1_000_000

    def _redis(self) -> redis.Redis:
        """The client of this process, created (and checked) on first use after a fork."""
        pid = os.getpid()
        client = self._client
        if client is not None and self._pid == pid:
            return client
        with self._lock:
            if self._client is not None and self._pid == pid:
                return self._client
            if self._client is not None:
                self._inherited.append(self._client)
                self._client = None
            client = redis.Redis.from_url(self.url, decode_responses=False)
            with guard():
                self._check_server(client)
            self._scripts = {
                name: client.register_script(source)
                for name, source in scripts.all_sources().items()
            }
            self._client = client
            self._pid = pid
            return client

    def _check_server(self, client: redis.Redis) -> None:
        """Refuse eviction policies; work out (and log) the durability level."""
        settings: dict[str, str | None] = {}
        for name in ("maxmemory-policy", "appendonly", "appendfsync"):
            try:
                reply = client.config_get(name)
            except redis.ResponseError:
                settings[name] = None
                continue
            settings[name] = {text(k): text(v) for k, v in reply.items()}.get(name)
        self._policy = settings["maxmemory-policy"]
        _check_policy(self._policy)
        if self._policy is None:
            log.warning(
                "Redis store %s: CONFIG GET is not allowed, so maxmemory-policy cannot be "
                "checked; make sure it is noeviction or jobs may be evicted",
                self.prefix,
            )
        level, strongest = durability_text(settings["appendonly"], settings["appendfsync"])
        self._durability = level
        if strongest:
            log.info("Redis store %s: durability is %s", self.prefix, level)
        else:
            log.warning("Redis store %s: durability is %s", self.prefix, level)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _run(self, name: str, args: Sequence[str | bytes | int | float]) -> Any:
        client = self._redis()
        with guard():
            return self._scripts[name](keys=[], args=[self.prefix, *args], client=client)

    def migrate(self) -> int:
        """Record the layout version (``{prefix}:schema``); idempotent."""
        client = self._redis()
        with guard():
            client.set(self._key("schema"), str(SCHEMA_VERSION), nx=True)
            stored = int(client.get(self._key("schema")) or SCHEMA_VERSION)
        if stored > SCHEMA_VERSION:
            raise ConfigurationError(
                f"the Redis keys under {self.prefix!r} use layout version {stored}, newer than "
                f"this Conveyor ({SCHEMA_VERSION}); upgrade Conveyor"
            )
        return SCHEMA_VERSION

    def close(self) -> None:
        """Drop this process's connections; safe to call twice."""
        with self._lock:
            client, self._client = self._client, None
            if client is not None:
                if self._pid == os.getpid():
                    client.close()
                else:
                    self._inherited.append(client)
            self._pid = -1
