"""One log line per job event, driven by the app's event bus.

The consumer publishes :class:`~conveyor.events.JobStarted` and
:class:`~conveyor.events.JobFinished`; :class:`JobLog` turns them into structured
lines on the ``conveyor.jobs`` logger, so logging stays out of the executor.
Nothing is formatted for a level that is off: each event costs one level check.
"""

from __future__ import annotations

import logging
from typing import Any

from conveyor.events import Event, EventBus, JobFinished, JobStarted

log = logging.getLogger("conveyor.jobs")

TRACEBACK_TAIL = 2000
"""Characters of a traceback kept in a log line (its end: where it was raised); short
enough that a line stays below the 4 KiB an atomic pipe write can carry."""

LINES: dict[str, tuple[int, str]] = {
    "completed": (logging.INFO, "job succeeded"),
    "retrying": (logging.WARNING, "job failed, will retry"),
    "failed": (logging.ERROR, "job failed, moved to the DLQ"),
    "cancelled": (logging.INFO, "job cancelled"),
    "skipped": (logging.INFO, "job skipped by a condition"),
    "deferred": (logging.INFO, "job deferred"),
    "released": (logging.INFO, "job released to the queue"),
    "lost": (logging.WARNING, "job lease lost, outcome dropped"),
    "unrecorded": (logging.ERROR, "job outcome not recorded by the store"),
}
"""Level and message of each outcome of :class:`JobFinished`."""


class JobLog:
    """Subscribes to a bus for the lifetime of one worker run (:meth:`detach` ends it).

    Workers of one App share its bus; with ``worker_id`` only that worker's events are
    logged, so each job gets its lines once however many workers the process runs."""

    def __init__(
        self, bus: EventBus, logger: logging.Logger = log, *, worker_id: str | None = None
    ) -> None:
        self.bus = bus
        self.log = logger
        self.worker_id = worker_id
        self._started = logger.isEnabledFor(logging.INFO)
        if self._started:  # no JobStarted is even built when its line is off
            bus.subscribe(JobStarted, self.on_event)
        bus.subscribe(JobFinished, self.on_event)

    def detach(self) -> None:
        """Stop logging this bus's job events."""
        if self._started:
            self.bus.unsubscribe(JobStarted, self.on_event)
        self.bus.unsubscribe(JobFinished, self.on_event)

    def on_event(self, event: Event) -> None:
        """Log ``event`` if its level is on (and it is this worker's)."""
        if not isinstance(event, JobStarted | JobFinished):
            return
        if self.worker_id is not None and event.worker_id != self.worker_id:
            return  # another worker's job: its own JobLog writes the line
        if isinstance(event, JobFinished):
            self.finished(event)
        elif self.log.isEnabledFor(logging.INFO):
            self.log.info("job received", extra=_job_fields(event))

    def finished(self, event: JobFinished) -> None:
        """The outcome's line, with what the operator needs for that outcome."""
        level, message = LINES.get(event.outcome, (logging.INFO, f"job {event.outcome}"))
        if not self.log.isEnabledFor(level):
            return
        fields = _job_fields(event)
        if event.outcome == "completed":
            fields["runtime"] = round(event.runtime, 6)
        if event.error:
            fields["error"] = event.error
        if event.reason:
            fields["reason"] = event.reason
        if event.detail:
            fields["detail"] = event.detail
        if event.retry_in is not None:
            fields["retry_in"] = round(event.retry_in, 3)
        if event.traceback:
            fields["traceback"] = event.traceback[-TRACEBACK_TAIL:]
        self.log.log(level, message, extra=fields)


def _job_fields(event: JobStarted | JobFinished) -> dict[str, Any]:
    return {
        "job_id": event.job_id,
        "task": event.task,
        "queue": event.queue,
        "attempt": event.attempt,
    }
