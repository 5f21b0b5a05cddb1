"""Rate windows and concurrency slots kept in store records, shared by every worker.

* A rate bucket is the list of ``[start time, job id]`` of the starts inside the last
  ``per`` seconds. A start is granted while fewer than ``limit`` are listed; otherwise
  the job waits until the oldest one leaves the window.
* A slot bucket maps each running job id to the time its slot expires. A slot is
  renewed with the worker's heartbeat and released when the job finishes, so a crashed
  worker's slot frees itself one lease later.

Slots are taken before rate tokens and everything taken is given back when a later
bucket says no, so a refused job holds nothing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from conveyor.coordination.cas import update_record
from conveyor.coordination.limits import Bucket, Concurrency, RateLimit
from conveyor.stores.base import Store

RATE_NAMESPACE = "rate"
SLOT_NAMESPACE = "slots"
JITTER = 0.1
"""A refused job waits up to this fraction longer, so waiters do not all wake at once."""


@dataclass(frozen=True, slots=True)
class Grant:
    """Outcome of :meth:`Limiter.acquire`."""

    granted: bool
    retry_after: float = 0.0
    """Seconds until trying again makes sense (refused only)."""
    bucket: str = ""
    """The bucket that refused (refused only)."""
    slots: tuple[str, ...] = ()
    """Slot buckets now held by the job (granted only); release them when it ends."""


def _load(value: bytes | None) -> object:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None  # a damaged bucket is rebuilt empty rather than blocking a queue forever


class Limiter:
    """Takes and gives back rate tokens and concurrency slots for jobs."""

    def __init__(self, store: Store, *, slot_ttl: float, rng: random.Random | None = None):
        self.store = store
        self.slot_ttl = slot_ttl
        self.rng = rng or random.Random()

    # whole jobs --------------------------------------------------------------------------
    def acquire(self, job_id: str, buckets: Sequence[Bucket]) -> Grant:
        """Take every bucket for ``job_id`` or none of them."""
        held_slots: list[str] = []
        held_rates: list[tuple[str, float]] = []
        ordered = sorted(buckets, key=lambda b: b.kind != "slots")
        for bucket in ordered:
            limit = bucket.limit
            if isinstance(limit, Concurrency):
                wait = self.take_slot(bucket.key, job_id, limit.limit, limit.retry_after)
                if wait is None:
                    held_slots.append(bucket.key)
                    continue
            else:
                wait = self.take_rate(bucket.key, job_id, limit.limit, limit.per)
                if wait is None:
                    held_rates.append((bucket.key, limit.per))
                    continue
            for key, per in held_rates:
                self.give_back_rate(key, job_id, per)
            self.release(job_id, held_slots)
            return Grant(False, wait * (1.0 + self.rng.random() * JITTER), bucket.key)
        return Grant(True, slots=tuple(held_slots))

    def release(self, job_id: str, slots: Sequence[str]) -> None:
        """Give back the job's slots (it finished, failed or was put back)."""
        for key in slots:
            self.give_back_slot(key, job_id)

    def renew(self, job_id: str, slots: Sequence[str]) -> None:
        """Push the expiry of the job's slots one ``slot_ttl`` ahead (heartbeat)."""
        for key in slots:
            self.take_slot(key, job_id, None)

    # rate windows ------------------------------------------------------------------------
    def take_rate(self, key: str, job_id: str, limit: int, per: float) -> float | None:
        """Record a start; None if granted, else seconds until a token comes back."""

        def change(
            value: bytes | None, now: float
        ) -> tuple[bytes | None, float | None, float | None]:
            starts = _window(_load(value), now - per)
            if len(starts) >= limit:
                oldest = starts[-limit][0]
                return None, None, max(oldest + per - now, 0.001)
            starts.append((now, job_id))
            return orjson.dumps(starts), now + per, None

        return update_record(self.store, RATE_NAMESPACE, key, change)

    def give_back_rate(self, key: str, job_id: str, per: float) -> None:
        """Undo a start that did not happen (a later bucket refused the job); the other
        starts keep counting for their whole ``per``."""

        def change(value: bytes | None, now: float) -> tuple[bytes | None, float | None, None]:
            starts = _window(_load(value), float("-inf"))
            mine = [i for i, s in enumerate(starts) if s[1] == job_id]
            if not mine:
                return None, None, None
            del starts[mine[-1]]  # the newest: an earlier run of the same job did start
            return orjson.dumps(starts), max((s[0] for s in starts), default=now) + per, None

        update_record(self.store, RATE_NAMESPACE, key, change)

    # concurrency slots -------------------------------------------------------------------
    def take_slot(
        self, key: str, job_id: str, limit: int | None, retry_after: float = 1.0
    ) -> float | None:
        """Hold a slot (``limit=None``: only renew one already held); None if held, else
        ``retry_after`` (when a slot frees is not known in advance)."""
        ttl = self.slot_ttl

        def change(
            value: bytes | None, now: float
        ) -> tuple[bytes | None, float | None, float | None]:
            holders = _holders(_load(value), now)
            if job_id not in holders and (limit is None or len(holders) >= limit):
                return None, None, retry_after
            holders[job_id] = now + ttl
            return orjson.dumps(holders), max(holders.values()), None

        return update_record(self.store, SLOT_NAMESPACE, key, change)

    def give_back_slot(self, key: str, job_id: str) -> None:
        """Free the job's slot."""

        def change(value: bytes | None, now: float) -> tuple[bytes | None, float | None, None]:
            holders = _holders(_load(value), now)
            if holders.pop(job_id, None) is None:
                return None, None, None
            return orjson.dumps(holders), max(holders.values(), default=now + 1.0), None

        update_record(self.store, SLOT_NAMESPACE, key, change)

    # reading -----------------------------------------------------------------------------
    def usage(self, bucket: Bucket) -> int:
        """Starts in the current window (rate) or slots held (concurrency)."""
        now = self.store.now()
        namespace = SLOT_NAMESPACE if bucket.kind == "slots" else RATE_NAMESPACE
        record = self.store.get_record(namespace, bucket.key, now=now)
        value = None if record is None else _load(record.value)
        if isinstance(bucket.limit, RateLimit):
            return len(_window(value, now - bucket.limit.per))
        return len(_holders(value, now))


def _window(value: object, since: float) -> list[tuple[float, str]]:
    """Starts after ``since``, oldest first, dropping malformed entries."""
    if not isinstance(value, list):
        return []
    starts = [
        (float(s[0]), str(s[1]))
        for s in value
        if isinstance(s, list) and len(s) == 2 and isinstance(s[0], int | float) and s[0] > since
    ]
    starts.sort()
    return starts


def _holders(value: object, now: float) -> dict[str, float]:
    """Slots still held at ``now``."""
    if not isinstance(value, dict):
        return {}
    return {str(k): float(v) for k, v in value.items() if isinstance(v, int | float) and v > now}
