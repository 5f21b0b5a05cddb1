"""The SQLite store: ``sqlite:///path.db`` (WAL, shared by every process on the host)."""

from conveyor.stores.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
