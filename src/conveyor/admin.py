"""Management operations as plain functions: what the CLI calls (and any other face).

Nothing here knows about Click, Rich or HTTP. Functions take a
:class:`~conveyor.stores.base.Store` (or an :class:`~conveyor.App` when payloads must
be decoded) and return plain data; the faces only parse input and render output.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from conveyor import durations, job_controls, loading, queue_control, stores
from conveyor.app import App
from conveyor.coordination.decisions import read_decisions
from conveyor.errors import CorruptPayload
from conveyor.job import Job, JobError, JobState
from conveyor.stores.base import JobQuery, NodeInfo, Store, StoreInfo, WorkerInfo

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

RETRYABLE_STATES: tuple[JobState, ...] = (JobState.FAILED, JobState.CANCELLED)
"""States a manual retry moves back to pending."""

CANCELLABLE_STATES: tuple[JobState, ...] = (
    JobState.PENDING,
    JobState.SCHEDULED,
    JobState.PROCESSING,
    JobState.RETRYING,
    JobState.BLOCKED,
)
"""States a cancel acts on."""

STALE_AFTER = 30.0
"""Seconds without a heartbeat after which a node or worker is shown as stale."""

# --- apps -------------------------------------------------------------------------------------
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


# --- time -------------------------------------------------------------------------------------
parse_duration = durations.parse_duration
"""Seconds in ``"90"``, ``"90s"``, ``"15m"``, ``"2h"``; see :mod:`conveyor.durations`."""


def parse_time(text: str, now: float) -> float:
    """An instant as epoch seconds: ISO-8601 with an offset, or a duration meaning that long ago.

    ``"2026-01-01T00:00:00+00:00"`` and ``"2026-01-01T00:00:00Z"`` are absolute;
    ``"15m"``, ``"2h"``, ``"3d"``, ``"90s"`` mean ``now`` minus that much.

    Raises:
        ValueError: The text is neither, or an ISO time has no offset.
    """
    stripped = text.strip()
    if durations.is_duration(stripped):
        return now - parse_duration(stripped)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; use ISO-8601 with an offset "
            "(2026-01-01T09:30:00+00:00) or a duration ago (90s, 15m, 2h, 3d)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{text!r} has no time zone; add an offset such as +00:00 or Z "
            f"(e.g. {moment.isoformat()}+00:00)"
        )
    return moment.timestamp()


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string (None stays None)."""
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat()


# --- selection --------------------------------------------------------------------------------
def job_query(
    *,
    ids: Sequence[str] | None = None,
    states: Iterable[str | JobState] | None = None,
    queues: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    tag: str | None = None,
    since: float | None = None,
    until: float | None = None,
    text: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> JobQuery:
    """A :class:`JobQuery`; empty sequences mean "no filter".

    Raises:
        ValueError: A state name is unknown.
    """
    state_list = [JobState(s) for s in states] if states else None
    return JobQuery(
        ids=list(ids) if ids else None,
        states=state_list,
        queues=list(queues) if queues else None,
        tasks=list(tasks) if tasks else None,
        tag=tag or None,
        since=since,
        until=until,
        text=text or None,
        limit=limit,
        offset=offset,
    )


def dlq_query(
    *,
    queue: str | None = None,
    task: str | None = None,
    ids: Sequence[str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> JobQuery:
    """Jobs in the dead-letter queue (state ``failed``), optionally of one queue or task."""
    return job_query(
        ids=ids,
        states=[JobState.FAILED],
        queues=[queue] if queue else None,
        tasks=[task] if task else None,
        limit=limit,
        offset=offset,
    )


select_ids = job_controls.select_ids
"""Ids of every job matching a query, oldest first (see :func:`job_controls.select_ids`)."""


# Bulk operations (retry, cancel, purge, prioritize, move) are App methods backed by
# conveyor.job_controls, which reports every skipped id with its reason.


# --- overviews --------------------------------------------------------------------------------
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
        age = None
        if entry.oldest_pending_at is not None:
            age = max(now - entry.oldest_pending_at, 0.0)
        rows.append(QueueRow(entry.queue, counts, age, entry.queue in paused))
    listed = {row.queue for row in rows}
    empty = {state.value: 0 for state in STATE_ORDER}
    rows.extend(QueueRow(q, dict(empty), None, True) for q in paused if q not in listed)
    return sorted(rows, key=lambda row: row.queue)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRow:
    """One registered node: what it reports, its worker counts and its heartbeat's age."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    capabilities: tuple[str, ...]
    concurrency: int
    state: str
    started_at: float | None
    """None when the node did not report it."""
    heartbeat_age: float
    """Seconds since the node last registered (by the store's clock)."""
    stale: bool
    """No heartbeat for more than the threshold: the node is probably gone."""
    workers: int
    busy: int
    clock_offset: float | None = None
    """The node's clock minus the store server's, in seconds (None: not measured)."""

    def to_dict(self) -> dict[str, object]:
        """Plain form for JSON output."""
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "queues": list(self.queues),
            "capabilities": list(self.capabilities),
            "concurrency": self.concurrency,
            "state": self.state,
            "started_at": iso(self.started_at),
            "heartbeat_age": self.heartbeat_age,
            "stale": self.stale,
            "workers": self.workers,
            "busy_workers": self.busy,
            "clock_offset": self.clock_offset,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerRow:
    """One worker process of a registered node."""

    node_id: str
    worker_id: str
    pid: int
    state: str
    current_job: str | None
    processed: int
    failed: int
    rss_bytes: int
    heartbeat_age: float
    """Seconds since the worker's own report, else since its node's heartbeat."""
    stale: bool
    """The worker's or its node's heartbeat is older than the threshold."""

    @property
    def rss_mib(self) -> float:
        """Resident memory in MiB."""
        return self.rss_bytes / (1024 * 1024)

    def to_dict(self) -> dict[str, object]:
        """Plain form for JSON output."""
        return {
            "node_id": self.node_id,
            "worker_id": self.worker_id,
            "pid": self.pid,
            "state": self.state,
            "current_job": self.current_job,
            "processed": self.processed,
            "failed": self.failed,
            "rss_bytes": self.rss_bytes,
            "rss_mib": round(self.rss_mib, 1),
            "heartbeat_age": self.heartbeat_age,
            "stale": self.stale,
        }


def _age(now: float, ts: float) -> float:
    return max(now - ts, 0.0)


def _node_row(node: NodeInfo, now: float, stale_after: float) -> NodeRow:
    age = _age(now, node.heartbeat_at)
    return NodeRow(
        id=node.id,
        host=node.host,
        pid=node.pid,
        queues=node.queues,
        capabilities=node.capabilities,
        concurrency=node.concurrency,
        state=node.state,
        started_at=node.started_at if node.started_at > 0 else None,
        heartbeat_age=age,
        stale=age > stale_after,
        workers=len(node.workers),
        busy=sum(1 for w in node.workers if w.state == "busy"),
        clock_offset=node.clock_offset,
    )


def node_rows(store: Store, now: float, stale_after: float = STALE_AFTER) -> list[NodeRow]:
    """One row per registered node, oldest start first; ``stale`` past ``stale_after`` s."""
    return [_node_row(node, now, stale_after) for node in store.list_nodes()]


def _worker_row(node: NodeRow, worker: WorkerInfo, now: float, stale_after: float) -> WorkerRow:
    age = _age(now, worker.heartbeat_at) if worker.heartbeat_at > 0 else node.heartbeat_age
    return WorkerRow(
        node_id=node.id,
        worker_id=worker.id,
        pid=worker.pid,
        state=worker.state,
        current_job=worker.current_job,
        processed=worker.processed,
        failed=worker.failed,
        rss_bytes=worker.rss_bytes,
        heartbeat_age=age,
        stale=node.stale or age > stale_after,
    )


def worker_rows(store: Store, now: float, stale_after: float = STALE_AFTER) -> list[WorkerRow]:
    """One row per worker of every registered node, in node order then as reported."""
    rows: list[WorkerRow] = []
    for node in store.list_nodes():
        summary = _node_row(node, now, stale_after)
        rows.extend(_worker_row(summary, w, now, stale_after) for w in node.workers)
    return rows


def store_info_dict(info: StoreInfo) -> dict[str, object]:
    """Plain form of :class:`StoreInfo`."""
    return {
        "driver": info.driver,
        "location": info.location,
        "durability": info.durability,
        "schema_version": info.schema_version,
        "details": dict(info.details),
    }


def app_overview(app: App, *, with_tasks: bool) -> dict[str, object]:
    """Version, store, codec and (optionally) registered tasks, for ``conveyor info``."""
    from conveyor import __version__

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


# --- jobs as plain data -----------------------------------------------------------------------
def error_to_dict(error: JobError) -> dict[str, object]:
    """One failed attempt, with ISO-8601 times."""
    return {
        "attempt": error.attempt,
        "type": error.type,
        "message": error.message,
        "traceback": error.traceback,
        "worker_id": error.worker_id,
        "started_at": iso(error.started_at),
        "failed_at": iso(error.failed_at),
    }


def job_to_dict(app: App, job: Job, *, decode: bool = True) -> dict[str, object]:
    """Everything about a job as JSON-ready data; never raises for a bad payload.

    With ``decode``, ``args``/``kwargs`` (and ``result``) are decoded; a frame that
    fails its checks shows as ``"payload": "<corrupt: …>"`` instead.
    """
    data: dict[str, object] = {
        "id": job.id,
        "queue": job.queue,
        "task": job.task,
        "state": job.state.value,
        "priority": job.priority,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "run_at": iso(job.run_at),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "heartbeat_at": iso(job.heartbeat_at),
        "lease_expires_at": iso(job.lease_expires_at),
        "worker_id": job.worker_id,
        "timeout": job.timeout,
        "tags": list(job.tags),
        "depends_on": list(job.depends_on),
        "blocked_by": job.blocked_by,
        "parent_id": job.parent_id,
        "unique_key": job.unique_key,
        "idempotency_key": job.idempotency_key,
        "cancel_requested": job.cancel_requested,
        "failure_reason": job.failure_reason,
        "errors": [error_to_dict(e) for e in job.errors],
        "attempts": [
            {
                "attempt": a.attempt,
                "worker_id": a.worker_id,
                "started_at": iso(a.started_at),
                "finished_at": iso(a.finished_at),
                "outcome": a.outcome,
                "error": f"{a.error.type}: {a.error.message}" if a.error else None,
            }
            for a in job.attempts
        ],
    }
    if decode:
        try:
            payload = app.decode_payload(job)
        except CorruptPayload as exc:
            data["payload"] = f"<corrupt: {exc}>"
        else:
            data["args"] = payload.args
            data["kwargs"] = payload.kwargs
            if payload.piped_from is not None:
                data["piped_from"] = payload.piped_from
            if payload.conditions:
                data["conditions"] = list(payload.conditions)
        try:
            data["result"] = app.decode_result(job)
        except CorruptPayload as exc:
            data["result"] = f"<corrupt: {exc}>"
        data["decisions"] = [
            {**d.to_json(), "at": iso(d.at)} for d in read_decisions(app.store, job.id)
        ]
    return data


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
    from conveyor.worker.scaling import suggest_workers

    pending = processing = 0
    oldest: float | None = None
    chosen: list[str] = []
    for counts in store.stats():
        if queues and counts.queue not in queues:
            continue
        chosen.append(counts.queue)
        pending += counts.counts.get(JobState.PENDING.value, 0)
        processing += counts.counts.get(JobState.PROCESSING.value, 0)
        if counts.oldest_pending_at is not None:
            oldest = (
                counts.oldest_pending_at
                if oldest is None
                else min(oldest, counts.oldest_pending_at)
            )
    wait_s = max(now - oldest, 0.0) if oldest is not None else 0.0
    suggested = suggest_workers(
        pending=pending, busy=processing, oldest_wait=wait_s, jobs_per_worker=jobs_per_worker
    )
    return ScalingSignal(tuple(queues or chosen), pending, processing, wait_s, suggested)
