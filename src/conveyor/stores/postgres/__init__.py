"""The PostgreSQL store (``postgresql://…``): psycopg 3 and psycopg_pool."""

from conveyor.stores.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
