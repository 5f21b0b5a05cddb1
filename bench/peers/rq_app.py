"""RQ's job functions (referenced by import path): ``rq worker -u URL default``."""

from __future__ import annotations

import time

from bench.recorder import record


def noop() -> None:
    record(time.time())


def stamp(sent: float) -> None:
    record(time.time(), sent)


def payload(data: str) -> None:
    record(time.time(), len(data))
