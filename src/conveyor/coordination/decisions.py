"""Decisions made about a job before it ran (deferred by a limit, skipped by a condition).

Kept as a record per job, next to the job rather than in it, so every driver stores
them the same way; the newest :data:`KEEP` are kept, for :data:`RETENTION` seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from conveyor.coordination.cas import update_record
from conveyor.stores.base import Store

NAMESPACE = "decision"
KEEP = 20
RETENTION = 30 * 86400.0
BACKOFF_STEPS = 5
"""A job deferred again and again by the same limit waits up to 2**5 times longer..."""
BACKOFF_CAP = 30.0
"""...but never longer than this many seconds past its first useful moment."""
BACKOFF_MEMORY = 600.0
"""Deferrals older than this many seconds no longer lengthen the wait."""


@dataclass(frozen=True, slots=True)
class DecisionEntry:
    """One decision as recorded: when, what, why, and by which condition or limit."""

    at: float
    action: str
    """``run``, ``defer`` or ``skip``."""
    reason: str
    source: str
    """The condition kind (``time_window`` …) or ``rate_limit`` / ``concurrency``."""
    delay: float | None = None

    def to_json(self) -> dict[str, object]:
        """A JSON-able dict."""
        return {
            "at": self.at,
            "action": self.action,
            "reason": self.reason,
            "source": self.source,
            "delay": self.delay,
        }


def record_decision(
    store: Store, job_id: str, action: str, reason: str, source: str, delay: float | None = None
) -> None:
    """Append a decision to the job's record (the newest :data:`KEEP` are kept)."""

    def change(value: bytes | None, now: float) -> tuple[bytes, float, None]:
        entries = _entries(value)
        entries.append(DecisionEntry(now, action, reason[:500], source, delay).to_json())
        return orjson.dumps(entries[-KEEP:]), now + RETENTION, None

    update_record(store, NAMESPACE, job_id, change)


def backoff_delay(base: float, repeats: int) -> float:
    """``base`` doubled per earlier deferral in a row, at most 2**:data:`BACKOFF_STEPS`
    times and never beyond ``max(base, BACKOFF_CAP)``."""
    return min(base * (1 << min(repeats, BACKOFF_STEPS)), max(base, BACKOFF_CAP))


def record_deferral(
    store: Store,
    job_id: str,
    reason: str,
    source: str,
    base: float,
    rng: random.Random | None = None,
) -> float:
    """Record that ``source`` (a limit) deferred the job; return how long it should wait.

    Many jobs waiting on one full limit would otherwise all come back together every
    ``base`` seconds, one of them to run and the rest to be put back again. The first
    deferral waits ``base`` (the exact time a token returns); each repeated one by the
    same source waits a random time between ``base`` and :func:`backoff_delay`, so the
    waiting jobs spread out and come back about as fast as capacity frees up."""
    draw = (rng or random).random()

    def change(value: bytes | None, now: float) -> tuple[bytes, float, float]:
        entries = _entries(value)
        repeats = 0
        for entry in reversed(entries):
            at = entry.get("at")
            recent = isinstance(at, int | float) and at >= now - BACKOFF_MEMORY
            if not recent or entry.get("action") != "defer" or entry.get("source") != source:
                break
            repeats += 1
        delay = base + draw * (backoff_delay(base, repeats) - base)
        entries.append(DecisionEntry(now, "defer", reason[:500], source, delay).to_json())
        return orjson.dumps(entries[-KEEP:]), now + RETENTION, delay

    return float(update_record(store, NAMESPACE, job_id, change))


CONDITION_ERROR = "condition_error"
"""The ``source`` of a decision made because a condition (or a key function) raised."""


def record_condition_error(store: Store, job_id: str, reason: str, delay: float) -> int:
    """Record that the job's conditions raised; return how many times in a row they have.

    Any other decision in between (a limit, a condition's objection) ends the run of
    errors, so only a predicate that keeps raising counts up to the worker's cap. The
    run's length is kept in its newest entry: only :data:`KEEP` entries are, and a cap
    above that must still be reached."""

    def change(value: bytes | None, now: float) -> tuple[bytes, float, int]:
        entries = _entries(value)
        count = _error_run(entries) + 1
        entry = DecisionEntry(now, "defer", reason[:500], CONDITION_ERROR, delay).to_json()
        entry["errors"] = count
        entries.append(entry)
        return orjson.dumps(entries[-KEEP:]), now + RETENTION, count

    return int(update_record(store, NAMESPACE, job_id, change))


def _error_run(entries: list[dict[str, object]]) -> int:
    """How many condition errors in a row end ``entries`` (a record written before the
    run was kept in its entries holds at most :data:`KEEP` of them: count those)."""
    if not entries or entries[-1].get("source") != CONDITION_ERROR:
        return 0
    kept = entries[-1].get("errors")
    if isinstance(kept, int):
        return kept
    run = 0
    for entry in reversed(entries):
        if entry.get("source") != CONDITION_ERROR:
            break
        run += 1
    return run


def read_decisions(store: Store, job_id: str) -> list[DecisionEntry]:
    """The job's recorded decisions, oldest first."""
    record = store.get_record(NAMESPACE, job_id)
    entries = _entries(None if record is None else record.value)
    decoded: list[DecisionEntry] = []
    for e in entries:
        at, delay = e.get("at"), e.get("delay")
        decoded.append(
            DecisionEntry(
                float(at) if isinstance(at, int | float) else 0.0,
                str(e.get("action", "")),
                str(e.get("reason", "")),
                str(e.get("source", "")),
                float(delay) if isinstance(delay, int | float) else None,
            )
        )
    return decoded


def _entries(value: bytes | None) -> list[dict[str, object]]:
    if value is None:
        return []
    try:
        loaded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return []
    return [e for e in loaded if isinstance(e, dict)] if isinstance(loaded, list) else []
