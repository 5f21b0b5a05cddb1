"""Typed events on an in-process bus: logging, metrics and alerts subscribe to them
without knowing each other. A failing subscriber is logged, never breaks a job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

log = logging.getLogger("conveyor.events")


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all events; ``name`` is the dotted event name."""

    name: ClassVar[str] = "event"


@dataclass(frozen=True, slots=True)
class JobEnqueued(Event):
    """A job was stored."""

    name: ClassVar[str] = "job.enqueued"
    job_id: str
    task: str
    queue: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class JobStarted(Event):
    """A worker began running a job."""

    name: ClassVar[str] = "job.started"
    job_id: str
    task: str
    queue: str
    attempt: int
    worker_id: str


@dataclass(frozen=True, slots=True)
class JobFinished(Event):
    """A run ended: ``outcome`` is completed, retrying, failed, cancelled, skipped,
    deferred, released, lost, or unrecorded (the store refused the acknowledgement)."""

    name: ClassVar[str] = "job.finished"
    job_id: str
    task: str
    queue: str
    attempt: int
    worker_id: str
    outcome: str
    runtime: float
    error: str = ""
    """``Type: message`` of the exception, for retrying and failed runs."""
    retry_in: float | None = None
    """Seconds until the job runs again (retrying, deferred, released to a later time)."""
    reason: str = ""
    """Why a failed job is in the DLQ (a :class:`~conveyor.job.FailureReason`)."""
    detail: str = ""
    """Why a job was deferred, skipped or released."""
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class WorkerStateChanged(Event):
    """A worker started, is stopping, or stopped."""

    name: ClassVar[str] = "worker.state"
    worker_id: str
    state: str


Subscriber = Callable[[Event], None]


class EventBus:
    """Publish events to subscribers registered for a type (or for every event)."""

    def __init__(self) -> None:
        self._subscribers: dict[type[Event], list[Subscriber]] = {}

    def subscribe(self, event_type: type[Event], subscriber: Subscriber) -> None:
        """Call ``subscriber`` for every event of ``event_type`` (``Event``: all events)."""
        self._subscribers.setdefault(event_type, []).append(subscriber)

    def unsubscribe(self, event_type: type[Event], subscriber: Subscriber) -> None:
        """Stop calling ``subscriber`` for ``event_type`` (no error if it was not there)."""
        subscribers = self._subscribers.get(event_type, [])
        if subscriber in subscribers:
            subscribers.remove(subscriber)

    def wants(self, event_type: type[Event]) -> bool:
        """Whether anyone listens, so publishers can skip building the event."""
        return bool(self._subscribers.get(event_type) or self._subscribers.get(Event))

    def publish(self, event: Event) -> None:
        """Deliver ``event``; a subscriber's exception is logged and swallowed."""
        for subscriber in (
            *self._subscribers.get(type(event), ()),
            *self._subscribers.get(Event, ()),
        ):
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", subscriber, event.name)
