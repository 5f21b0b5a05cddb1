"""Forked children and the SQL stores' connections, in one place for both drivers.

After a fork the child must never use its parent's connections (a SQLite handle shares
the parent's locks; a PostgreSQL socket carries the parent's session), and must never
close them either (closing would disturb the parent's locks or send a Terminate message
on the parent's socket). Each store registers here; in a child every registered store
is told to start afresh, and the handles it sets aside stay referenced for the life of
the process so garbage collection cannot close them.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class ForkAware(Protocol):
    """A store that re-opens its connections in a forked child."""

    def _after_fork(self) -> None: ...


_INHERITED: list[object] = []
_STORES: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def track(store: ForkAware) -> None:
    """Tell ``store`` (weakly held) when this process forks a child."""
    _STORES.add(store)


def retire(*handles: object) -> None:
    """Keep connections or pools inherited from a parent, unused and unclosed."""
    _INHERITED.extend(handles)


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
