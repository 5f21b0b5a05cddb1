"""The node registry as operators read it: one row per node and per worker process."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.admin.times import age, iso
from conveyor.stores.base import NodeInfo, Store, WorkerInfo

STALE_AFTER = 30.0
"""Seconds without a heartbeat after which a node or worker is shown as stale."""


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One registered node as it reported itself, judged by its heartbeat's age."""

    node: NodeInfo
    heartbeat_age: float
    """Seconds since the node last registered (by the store's clock)."""
    stale: bool
    """No heartbeat for more than the threshold: the node is probably gone."""

    @property
    def started_at(self) -> float | None:
        """When the node started; None when it did not report it."""
        return self.node.started_at if self.node.started_at > 0 else None

    @property
    def busy(self) -> int:
        """Workers running a job."""
        return sum(1 for worker in self.node.workers if worker.state == "busy")

    def to_dict(self) -> dict[str, object]:
        """Plain form for JSON output."""
        node = self.node
        return {
            "id": node.id,
            "host": node.host,
            "pid": node.pid,
            "queues": list(node.queues),
            "capabilities": list(node.capabilities),
            "concurrency": node.concurrency,
            "state": node.state,
            "started_at": iso(self.started_at),
            "heartbeat_age": self.heartbeat_age,
            "stale": self.stale,
            "workers": len(node.workers),
            "busy_workers": self.busy,
            "clock_offset": node.clock_offset,
        }


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One worker process of a registered node, as its supervisor reported it."""

    node_id: str
    worker: WorkerInfo
    heartbeat_age: float
    """Seconds since the worker's own report, else since its node's heartbeat."""
    stale: bool
    """The worker's or its node's heartbeat is older than the threshold."""

    @property
    def rss_mib(self) -> float:
        """Resident memory in MiB."""
        return self.worker.rss_bytes / (1024 * 1024)

    def to_dict(self) -> dict[str, object]:
        """Plain form for JSON output."""
        worker = self.worker
        return {
            "node_id": self.node_id,
            "worker_id": worker.id,
            "pid": worker.pid,
            "state": worker.state,
            "current_job": worker.current_job,
            "processed": worker.processed,
            "failed": worker.failed,
            "rss_bytes": worker.rss_bytes,
            "rss_mib": round(self.rss_mib, 1),
            "heartbeat_age": self.heartbeat_age,
            "stale": self.stale,
        }


def _node_row(node: NodeInfo, now: float, stale_after: float) -> NodeRow:
    waited = age(now, node.heartbeat_at)
    return NodeRow(node, waited, waited > stale_after)


def node_rows(store: Store, now: float, stale_after: float = STALE_AFTER) -> list[NodeRow]:
    """One row per registered node, oldest start first; ``stale`` past ``stale_after`` s."""
    return [_node_row(node, now, stale_after) for node in store.list_nodes()]


def _worker_row(node: NodeRow, worker: WorkerInfo, now: float, stale_after: float) -> WorkerRow:
    waited = age(now, worker.heartbeat_at) if worker.heartbeat_at > 0 else node.heartbeat_age
    return WorkerRow(node.node.id, worker, waited, node.stale or waited > stale_after)


def worker_rows(store: Store, now: float, stale_after: float = STALE_AFTER) -> list[WorkerRow]:
    """One row per worker of every registered node, in node order then as reported."""
    rows: list[WorkerRow] = []
    for node in store.list_nodes():
        summary = _node_row(node, now, stale_after)
        rows.extend(_worker_row(summary, w, now, stale_after) for w in node.workers)
    return rows
