"""Management operations as plain functions: what the CLI calls (and any other face).

Nothing here knows about Click, Rich or HTTP. Functions take a
:class:`~conveyor.stores.base.Store` (or an :class:`~conveyor.App` when payloads must
be decoded) and return plain data; the faces only parse input and render output.

One module per purpose: :mod:`~conveyor.admin.apps` (which app and store),
:mod:`~conveyor.admin.times` (time parsing), :mod:`~conveyor.admin.bulk` (the jobs a
bulk operation selects), :mod:`~conveyor.admin.overviews` (queues, backlog, the app),
:mod:`~conveyor.admin.nodes` (nodes and workers), :mod:`~conveyor.admin.export` (jobs
as plain data). Their names are gathered here so ``admin.X`` serves every face.
"""

from __future__ import annotations

from conveyor.admin.apps import load_app, require_store, store_label, use_store
from conveyor.admin.bulk import (
    CANCELLABLE_STATES,
    RETRYABLE_STATES,
    dlq_query,
    job_query,
    select_ids,
)
from conveyor.admin.export import error_to_dict, job_to_dict
from conveyor.admin.nodes import STALE_AFTER, NodeRow, WorkerRow, node_rows, worker_rows
from conveyor.admin.overviews import (
    STATE_ORDER,
    QueueRow,
    ScalingSignal,
    app_overview,
    queue_overview,
    scaling_signal,
    store_info_dict,
)
from conveyor.admin.times import iso, parse_duration, parse_time

__all__ = [
    "CANCELLABLE_STATES",
    "RETRYABLE_STATES",
    "STALE_AFTER",
    "STATE_ORDER",
    "NodeRow",
    "QueueRow",
    "ScalingSignal",
    "WorkerRow",
    "app_overview",
    "dlq_query",
    "error_to_dict",
    "iso",
    "job_query",
    "job_to_dict",
    "load_app",
    "node_rows",
    "parse_duration",
    "parse_time",
    "queue_overview",
    "require_store",
    "scaling_signal",
    "select_ids",
    "store_info_dict",
    "store_label",
    "use_store",
    "worker_rows",
]
