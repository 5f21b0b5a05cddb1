"""Queue pause/resume, kept in the store so that every worker on it obeys.

A paused queue is one record ``(queue.paused, <queue>)`` written with the store's
records primitive (the same on all five drivers): pausing creates it, resuming deletes
it. Jobs can still be enqueued to a paused queue; workers only stop claiming from it.

Workers read the paused set through :class:`PausedQueues`, a small cache refreshed
every half poll interval, so a pause or a resume reaches every worker within one poll
interval and the claim path costs no extra store call in between.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.clock import Clock
from conveyor.errors import StoreError
from conveyor.stores.base import Store
from conveyor.validation import queue_name

log = logging.getLogger("conveyor.queues")

NAMESPACE = "queue.paused"
"""Records namespace of the paused queues; the key is the queue name."""


@dataclass(frozen=True, slots=True)
class QueueChange:
    """Outcome of a pause or resume of several queues."""

    changed: list[str]
    """Queues whose state changed."""
    unchanged: list[str]
    """Queues that already were in the requested state."""

    def to_dict(self) -> dict[str, object]:
        """Plain form for JSON output."""
        return {"changed": list(self.changed), "unchanged": list(self.unchanged)}


def pause_queues(store: Store, queues: Sequence[str]) -> QueueChange:
    """Pause ``queues``: every worker stops claiming from them within one poll interval.

    Raises:
        InvalidOption: A name is not a valid queue name (nothing is paused).
    """
    names = _checked(queues)
    changed: list[str] = []
    for name in names:
        value = json.dumps({"paused_at": store.now()}).encode()
        if store.put_record(NAMESPACE, name, value, expect_version=None) is not None:
            changed.append(name)
    return QueueChange(changed, [n for n in names if n not in changed])


def resume_queues(store: Store, queues: Sequence[str]) -> QueueChange:
    """Resume ``queues``: workers claim from them again within one poll interval.

    Raises:
        InvalidOption: A name is not a valid queue name (nothing is resumed).
    """
    names = _checked(queues)
    changed = [name for name in names if store.delete_record(NAMESPACE, name)]
    return QueueChange(changed, [n for n in names if n not in changed])


def paused_queues(store: Store) -> dict[str, float | None]:
    """Paused queue -> when it was paused (store clock; None if unreadable), by name."""
    paused: dict[str, float | None] = {}
    for record in store.list_records(NAMESPACE):
        paused[record.key] = _paused_at(record.value)
    return paused


def _paused_at(value: bytes) -> float | None:
    try:
        data = json.loads(value)
        return float(data["paused_at"])
    except (ValueError, TypeError, KeyError):
        return None


def _checked(queues: Sequence[str]) -> list[str]:
    return [queue_name(name, "queue") for name in dict.fromkeys(queues)]


class PausedQueues:
    """The paused set as one worker sees it: re-read at most every ``interval / 2``.

    Half the poll interval: an idle worker re-checks after each wait (one poll
    interval), so a resume is seen by its next claim; a busy worker reads the set at
    most twice per interval. A failed read keeps the last known set (the claim that
    follows meets the same store trouble and backs off)."""

    def __init__(self, store: Store, clock: Clock, interval: float) -> None:
        self._store = store
        self._clock = clock
        self._ttl = max(interval / 2, 0.0)
        self._paused: frozenset[str] = frozenset()
        self._next_read: float | None = None

    def current(self) -> frozenset[str]:
        """The paused queues, re-read from the store when the cached set is old."""
        now = self._clock.monotonic()
        if self._next_read is None or now >= self._next_read:
            try:
                paused = frozenset(paused_queues(self._store))
            except StoreError as exc:
                log.debug("could not read paused queues (%s); keeping the last known set", exc)
                return self._paused
            if paused != self._paused:
                log.info("paused queues: %s", ", ".join(sorted(paused)) or "none")
            self._paused = paused
            self._next_read = now + self._ttl
        return self._paused

    def filter(self, queues: Sequence[str]) -> Sequence[str]:
        """``queues`` without the paused ones, order kept."""
        paused = self.current()
        if not paused:
            return queues
        return [queue for queue in queues if queue not in paused]
