"""Which app and which store a management command works on (``--app``, ``--store``)."""

from __future__ import annotations

from conveyor import loading, stores
from conveyor.app import App

load_app = loading.load_app


def use_store(app: App, dsn: str) -> None:
    """Point ``app`` at the store ``dsn`` (the CLI's ``--store``)."""
    app.use_store(dsn)


def require_store(app: App) -> None:
    """Refuse a store that does not exist yet (read commands must not create one).

    Raises:
        ConfigurationError: naming the missing path and how to point at the right store.
    """
    if app.dsn and "://" in app.dsn:
        stores.require_existing(app.dsn)


def store_label(app: App) -> str:
    """Which store ``app`` uses, printable: SQLite paths absolute, passwords hidden; an
    app built on a Store object is named by its class and where the store lives."""
    if "://" in app.dsn:
        return stores.describe(app.dsn)
    return f"{app.dsn} ({app.store.info().location})"
