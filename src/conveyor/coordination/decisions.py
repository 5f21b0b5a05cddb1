"""Decisions made about a job before it ran (deferred by a limit, skipped by a condition).

Kept as a record per job, next to the job rather than in it, so every driver stores
them the same way; the newest :data:`KEEP` are kept, for :data:`RETENTION` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from conveyor.coordination.cas import update_record
from conveyor.stores.base import Store

NAMESPACE = "decision"
KEEP = 20
RETENTION = 30 * 86400.0


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
