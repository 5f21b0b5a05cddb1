"""Conveyor's benchmark tasks: ``conveyor --app bench.conveyor_app:app --store DSN worker``.

The store comes from ``--store`` (workers) or is passed to :func:`make_app` (the
harness's producer); names are explicit so producer and worker agree.
"""

from __future__ import annotations

import time

from bench.recorder import record
from conveyor import App
from conveyor.config import AppSettings


def make_app(store: str = "memory://", settings: AppSettings | None = None) -> App:
    """An App with the three benchmark tasks registered."""
    app = App(store, settings=settings)

    @app.task(name="bench.noop", max_attempts=1)
    def noop() -> None:
        record(time.time())

    @app.task(name="bench.stamp", max_attempts=1)
    def stamp(sent: float) -> None:
        record(time.time(), sent)

    @app.task(name="bench.payload", max_attempts=1)
    def payload(data: str) -> None:
        record(time.time(), len(data))

    return app


app = make_app("memory://")
"""For workers; ``--store`` replaces the store (the CLI's ``use_store``)."""
