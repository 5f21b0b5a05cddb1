"""DSN parsing and error translation of the PostgreSQL store.

The ``schema`` query parameter is Conveyor's: it is removed from the DSN handed to
libpq, and every connection of the store runs with ``search_path`` set to it. Every
other libpq parameter passes through unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from conveyor.errors import ConfigurationError, StoreUnavailable
from conveyor.stores import redact

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
DEFAULT_SCHEMA = "public"


@dataclass(frozen=True, slots=True)
class Settings:
    """What ``from_dsn`` understood: the libpq DSN, the schema and a printable location."""

    conninfo: str
    schema: str
    location: str


def parse_dsn(dsn: str) -> Settings:
    """Split ``postgresql://user:pw@host:port/db?schema=name&…`` into libpq DSN and schema."""
    parts = urlsplit(dsn)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ConfigurationError(f"not a PostgreSQL DSN: {redact(dsn)!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    if len(schemas) > 1:
        raise ConfigurationError("the PostgreSQL DSN names more than one schema")
    schema = schemas[0] if schemas else DEFAULT_SCHEMA
    check_identifier(schema)
    rest = [(key, value) for key, value in query if key != "schema"]
    check_parameters(dsn, [key for key, _ in rest])
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), parts.fragment))
    location = redact(conninfo)
    location += ("&" if rest else "?") + f"schema={schema}"
    return Settings(conninfo, schema, location)


def libpq_parameters() -> list[str]:
    """The connection parameters the installed libpq knows (``sslmode``, ``connect_timeout``…)."""
    return sorted(d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults())


def check_parameters(dsn: str, names: list[str]) -> None:
    """Refuse a parameter libpq does not know, naming the allowed ones (a typo such as
    ``sslmod=require`` must not be dropped, nor surface later as a connection error).

    Raises:
        ConfigurationError: A parameter is unknown.
    """
    known = set(libpq_parameters())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigurationError(
            f"unknown PostgreSQL DSN parameter {unknown[0]!r} in {redact(dsn)!r}; allowed: "
            f"schema, {', '.join(sorted(known))}"
        )


def store_exists(dsn: str) -> bool:
    """Whether the DSN's schema holds a Conveyor store (its migrations ledger), read
    without creating anything; for commands that must not create a store.

    Raises:
        StoreUnavailable: The server cannot be reached.
    """
    settings = parse_dsn(dsn)
    try:
        with psycopg.connect(settings.conninfo, autocommit=True) as conn:
            row = conn.execute(
                "SELECT to_regclass(format('%%I.schema_migrations', %s::text))",
                (settings.schema,),
            ).fetchone()
    except psycopg.Error as exc:
        if is_connection_error(exc):
            raise unavailable(exc, settings.location) from exc
        raise
    return row is not None and row[0] is not None


def check_identifier(name: str) -> str:
    """``name`` if it is a plain SQL identifier (letters, digits, ``_``; at most 63)."""
    if not _IDENTIFIER.match(name):
        raise ConfigurationError(
            f"invalid PostgreSQL schema name {name!r}: use letters, digits and _ "
            "(not starting with a digit, at most 63 characters)"
        )
    return name


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the server or the connection is gone (retry later)."""
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def unavailable(exc: BaseException, location: str) -> StoreUnavailable:
    """A StoreUnavailable naming the store (never its password) and the cause."""
    return StoreUnavailable(f"postgresql store {location}: {type(exc).__name__}: {exc}")
