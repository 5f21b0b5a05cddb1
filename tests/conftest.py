"""Shared fixtures: no CONVEYOR_* setting leaks in from the environment."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests import servers


@pytest.fixture(autouse=True)
def _clean_conveyor_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    yield


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.RedisServer]:
    """One private redis-server for the session (started on first use)."""
    with servers.redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: servers.RedisServer) -> str:
    """A Redis DSN with a key prefix of its own, so tests never share keys."""
    return f"{redis_server.url}?prefix=t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.PostgresServer]:
    """One private PostgreSQL cluster for the session (started on first use)."""
    with servers.postgres_server() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: servers.PostgresServer) -> Iterator[str]:
    """A PostgreSQL DSN whose ``schema`` parameter names a fresh schema, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{postgres_server.dsn}?schema={schema}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
