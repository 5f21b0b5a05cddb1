"""What a worker says when it starts and when it stops.

The start-up banner (version, store, node, queues, concurrency, tasks) and the
warnings about set-ups that cannot work as meant are logged by the process the
operator started (the supervisor, or the worker itself with ``--solo``), never by
each prefork child. The summary at the end counts every outcome.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor import __version__
from conveyor.coordination.limits import key_names_no_parameter
from conveyor.queues import parse_queues

if TYPE_CHECKING:
    from conveyor.config import WorkerSettings
    from conveyor.runtime import Runtime
    from conveyor.worker.reporting import WorkerStats

log = logging.getLogger("conveyor.worker")


@dataclass(frozen=True, slots=True)
class StartupWarning:
    """A start-up warning: what is wrong and how to fix it."""

    message: str
    fields: dict[str, str]


def queues_text(spec: str) -> str:
    """``high=6,default=3`` for weighted queues, ``high,default (in order)`` for strict."""
    queues = parse_queues(spec)
    if queues.weighted:
        return ",".join(f"{n}={w}" for n, w in zip(queues.names, queues.weights, strict=True))
    return ",".join(queues.names) + (" (in order)" if len(queues.names) > 1 else "")


def log_banner(app: Runtime, settings: WorkerSettings, node_id: str, *, mode: str) -> None:
    """Log the start-up banner and every start-up warning."""
    info = app.store.info()
    concurrency = f"autoscale {settings.autoscale}" if settings.autoscale else settings.concurrency
    log.info(
        "conveyor %s worker starting",
        __version__,
        extra={
            "version": __version__,
            "node": node_id,
            "mode": mode,
            "store": info.driver,
            "location": info.location,
            "durability": info.durability,
            "queues": queues_text(settings.queues),
            "concurrency": 1 if mode == "solo" else concurrency,
            "tasks": ",".join(sorted(app.tasks)) or "none",
        },
    )
    for warning in startup_warnings(app, settings):
        log.warning(warning.message, extra=warning.fields)


def startup_warnings(app: Runtime, settings: WorkerSettings) -> list[StartupWarning]:
    """Set-ups that run but not as the operator meant."""
    warnings: list[StartupWarning] = []
    consumed = set(parse_queues(settings.queues).names)
    if not app.tasks:
        warnings.append(
            StartupWarning(
                "no tasks registered: this worker can run nothing; point --app at the "
                "module that defines your tasks",
                {},
            )
        )
    missed = sorted(name for name, task in app.tasks.items() if task.options.queue not in consumed)
    if missed:
        queues = sorted({app.tasks[name].options.queue for name in missed})
        warnings.append(
            StartupWarning(
                "tasks on queues this worker does not consume: their jobs wait for another "
                "worker; add the queues with -Q",
                {"tasks": ",".join(missed), "queues": ",".join(queues)},
            )
        )
    under_main = sorted(name for name in app.tasks if name.startswith("__main__."))
    if under_main:
        warnings.append(
            StartupWarning(
                "task names under __main__: code that imports the module by its name "
                "registers them under another name, so their jobs fail as unknown tasks; "
                "define tasks in an importable module or give them name=",
                {"tasks": ",".join(under_main)},
            )
        )
    warnings += _queue_limit_warnings(app, consumed)
    return warnings


def _queue_limit_warnings(app: Runtime, consumed: set[str]) -> list[StartupWarning]:
    """Queue limits (``app.limit_queue``) keyed by a name some task of the queue lacks;
    task limits are refused when the task is declared."""
    warnings: list[StartupWarning] = []
    for queue, limits in sorted(app.queue_limits.items()):
        if queue not in consumed:
            continue
        for limit in limits:
            lacking = sorted(
                name
                for name, task in app.tasks.items()
                if task.options.queue == queue
                and task.signature is not None
                and key_names_no_parameter(limit, task.signature)
            )
            if lacking:
                warnings.append(
                    StartupWarning(
                        f"limit key {limit.key!r} of queue {queue!r} names no parameter of "
                        "these tasks: all their jobs share one bucket",
                        {"queue": queue, "tasks": ",".join(lacking)},
                    )
                )
    return warnings


def summary(worker_id: str, stats: WorkerStats) -> str:
    """The closing line: every outcome counted, deferred included."""
    return (
        f"{worker_id} stopped: processed {stats.processed}, "
        f"completed {stats.completed}, failed {stats.failed}, retried {stats.retried}, "
        f"deferred {stats.deferred}, cancelled {stats.cancelled}, released {stats.released}, "
        f"lost {stats.lost}, unrecorded {stats.unrecorded}"
    )
