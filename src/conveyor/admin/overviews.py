"""Overviews of a store for operators: queues, the backlog for autoscalers, the app itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor import __version__, queue_control
from conveyor.admin.times import age
from conveyor.app import App
from conveyor.job import JobState
from conveyor.stores.base import Store, StoreInfo
from conveyor.worker.scaling import backlog, suggest_workers

STATE_ORDER: tuple[JobState, ...] = (
    JobState.PENDING,
    JobState.SCHEDULED,
    JobState.PROCESSING,
    JobState.RETRYING,
    JobState.BLOCKED,
    JobState.COMPLETED,
    JobState.FAILED,
    JobState.CANCELLED,
)
"""States in the order overviews show them."""


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue in the overview: jobs per state and how long its oldest pending job waits."""

    queue: str
    counts: dict[str, int] = field(default_factory=dict)
    """Every state of :data:`STATE_ORDER`, zeros included."""
    oldest_pending_age: float | None = None
    """Seconds since the oldest pending job became due; None when nothing is pending."""
    paused: bool = False
    """Workers do not claim from the queue (``conveyor queues pause``)."""

    @property
    def total(self) -> int:
        """All jobs in the queue."""
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, object]:
        """Plain form for JSON output."""
        return {
            "queue": self.queue,
            "counts": dict(self.counts),
            "total": self.total,
            "oldest_pending_age": self.oldest_pending_age,
            "paused": self.paused,
        }


def queue_overview(store: Store, now: float) -> list[QueueRow]:
    """One row per queue that has jobs or is paused, sorted by name."""
    paused = queue_control.paused_queues(store)
    rows: list[QueueRow] = []
    for entry in store.stats():
        counts = {state.value: int(entry.counts.get(state.value, 0)) for state in STATE_ORDER}
        pending_since = entry.oldest_pending_at
        waited = None if pending_since is None else age(now, pending_since)
        rows.append(QueueRow(entry.queue, counts, waited, entry.queue in paused))
    listed = {row.queue for row in rows}
    empty = {state.value: 0 for state in STATE_ORDER}
    rows.extend(QueueRow(q, dict(empty), None, True) for q in paused if q not in listed)
    return sorted(rows, key=lambda row: row.queue)


@dataclass(frozen=True, slots=True)
class ScalingSignal:
    """The backlog of some queues and the worker count it calls for."""

    queues: tuple[str, ...]
    pending: int
    processing: int
    oldest_wait_seconds: float
    suggested_workers: int


def scaling_signal(
    store: Store, queues: Sequence[str] | None, now: float, *, jobs_per_worker: int = 1
) -> ScalingSignal:
    """What ``--autoscale`` would aim for, for an external autoscaler (HPA, KEDA)."""
    held = backlog(store.stats(), queues)
    wait_s = held.oldest_wait(now)
    suggested = suggest_workers(
        pending=held.pending,
        busy=held.processing,
        oldest_wait=wait_s,
        jobs_per_worker=jobs_per_worker,
    )
    return ScalingSignal(held.queues, held.pending, held.processing, wait_s, suggested)


def store_info_dict(info: StoreInfo) -> dict[str, object]:
    """Plain form of :class:`StoreInfo` (its fields, in order)."""
    return dataclasses.asdict(info)


def app_overview(app: App, *, with_tasks: bool) -> dict[str, object]:
    """Version, store, codec and (optionally) registered tasks, for ``conveyor info``."""
    data: dict[str, object] = {
        "version": __version__,
        "store": store_info_dict(app.store.info()),
        "codec": app.codec.describe(),
    }
    if with_tasks:
        data["tasks"] = [
            {
                "name": task.name,
                "queue": task.options.queue,
                "priority": task.options.priority,
                "max_attempts": task.options.max_attempts,
                "timeout": task.options.timeout,
                "retry": repr(task.options.retry),
                "async": task.is_async,
            }
            for task in sorted(app.tasks.values(), key=lambda t: t.name)
        ]
    return data
