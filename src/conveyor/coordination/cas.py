"""The compare-and-set loop every coordination value is written with."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from conveyor.errors import StoreError
from conveyor.stores.base import Record, Store

T = TypeVar("T")

MAX_ATTEMPTS = 64
"""Conflicts tolerated before giving up (only reached under pathological contention)."""

Change = Callable[[bytes | None, float], tuple[bytes | None, float | None, T]]
"""change(current value or None, now) -> (new value or None for "no write", expiry, outcome)."""


def update_record(store: Store, namespace: str, key: str, change: Change[T]) -> T:
    """Apply ``change`` to the record atomically and return its outcome.

    ``change`` may run several times (once per conflicting writer); it must be a pure
    function of its arguments. ``now`` is the store's clock, read once per attempt.

    Raises:
        StoreError: more than :data:`MAX_ATTEMPTS` conflicts in a row.
    """
    for _ in range(MAX_ATTEMPTS):
        now = store.now()
        current: Record | None = store.get_record(namespace, key, now=now)
        value, expires_at, outcome = change(None if current is None else current.value, now)
        if value is None:
            return outcome
        written = store.put_record(
            namespace,
            key,
            value,
            expect_version=None if current is None else current.version,
            expires_at=expires_at,
            now=now,
        )
        if written is not None:
            return outcome
    raise StoreError(f"record {namespace}/{key}: too many concurrent writers, gave up")
