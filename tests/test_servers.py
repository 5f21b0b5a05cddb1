"""The private test servers start, answer, and can restart."""

from __future__ import annotations

from tests import servers


def test_redis_server_answers_and_restarts(
    redis_server: servers.RedisServer, redis_url: str
) -> None:
    import redis

    client = redis.Redis(port=redis_server.port)
    assert client.ping()
    client.set("k", "v")
    redis_server.restart()
    client = redis.Redis(port=redis_server.port)
    assert client.get("k") == b"v"  # appendonly yes: the key survives the restart
    assert "prefix=t" in redis_url


def test_postgres_server_answers_in_its_own_schema(
    postgres_server: servers.PostgresServer, postgres_dsn: str
) -> None:
    import psycopg

    schema = postgres_dsn.rsplit("schema=", 1)[1]
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        ).fetchone()
    assert found == (1,)
