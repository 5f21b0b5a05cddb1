"""What the services need of an app, as protocols: the seam that keeps them below it.

The worker, the gate, the sync runner and the scheduler are given an app, but they
depend on :class:`Runtime` (and producers on :class:`Producer`), never on
:class:`conveyor.app.App`: the app imports the services, the services import this.
:class:`~conveyor.app.App` satisfies both; a test may pass anything that does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from conveyor.clock import Clock
from conveyor.codec import Codec
from conveyor.config import AppSettings
from conveyor.coordination.limits import Limit
from conveyor.events import EventBus
from conveyor.job import EnqueueResult, Job, NewJob
from conveyor.middleware import ExecuteMiddleware
from conveyor.payloads import Payload
from conveyor.stores.base import Store

if TYPE_CHECKING:
    from conveyor.conditions import ConditionContext
    from conveyor.handles import JobHandle
    from conveyor.options import JobOptions
    from conveyor.task import Task
    from conveyor.workflow import Signature

R = TypeVar("R")

PredicateFunction = Callable[["ConditionContext"], object]
"""A custom condition registered with ``@app.condition``."""


class Runtime(Protocol):
    """An app as the services that run its jobs see it: tasks, store, codec, clock, events."""

    @property
    def settings(self) -> AppSettings:
        """The app's settings."""
        ...

    @property
    def store(self) -> Store:
        """The store (opened on first use)."""
        ...

    @property
    def clock(self) -> Clock:
        """The clock due and retry times are read from."""
        ...

    @property
    def codec(self) -> Codec:
        """Seals and opens payloads and results."""
        ...

    @property
    def events(self) -> EventBus:
        """Where the services publish what happened."""
        ...

    @property
    def middleware(self) -> Sequence[ExecuteMiddleware]:
        """Wrapped around every run, first listed outermost."""
        ...

    @property
    def tasks(self) -> Mapping[str, Task[Any, Any]]:
        """Registered tasks by name."""
        ...

    @property
    def queue_limits(self) -> Mapping[str, tuple[Limit, ...]]:
        """Limits every job of a queue counts against."""
        ...

    @property
    def predicates(self) -> Mapping[str, PredicateFunction]:
        """Custom conditions by name."""
        ...

    def get_task(self, name: str) -> Task[Any, Any]:
        """The task registered as ``name``, or :class:`~conveyor.errors.UnknownTask`."""
        ...

    def decode_payload(self, job: Job) -> Payload:
        """A job's arguments (:class:`~conveyor.errors.CorruptPayload` if unreadable)."""
        ...

    def encode_result(self, job_id: str, value: object) -> bytes | None:
        """A handler's return value, sealed for the store."""
        ...

    def decode_result(self, job: Job) -> Any:
        """A stored result, opened."""
        ...

    def close(self) -> None:
        """Close the store's connections."""
        ...


class Producer(Runtime, Protocol):
    """An app as the code that enqueues sees it: tasks, signatures, bulk and schedules."""

    def build_job(
        self,
        task: Task[Any, Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: JobOptions,
        *,
        piped_from: str | None = None,
    ) -> NewJob:
        """A call turned into a validated, encoded job (nothing stored)."""
        ...

    def submit(
        self, jobs: Sequence[NewJob], *, connection: object | None = None
    ) -> list[EnqueueResult]:
        """Built jobs stored through the enqueue middleware, atomically."""
        ...

    def enqueue_task(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: dict[str, Any], options: JobOptions
    ) -> JobHandle:
        """One call validated, encoded and stored."""
        ...

    def enqueue_chain(self, signatures: Sequence[Signature]) -> list[JobHandle]:
        """A chain stored atomically, each job fed the one before it."""
        ...

    def run_sync(
        self, task: Task[Any, R], args: Sequence[Any], kwargs: dict[str, Any], options: JobOptions
    ) -> R:
        """One call recorded and run in this process now."""
        ...
