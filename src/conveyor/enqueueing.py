"""Building jobs from calls and storing them: the producer's path, without the app.

:func:`build_job` checks a call against its task and options and seals its payload;
:func:`submit` stores built jobs through the enqueue middleware and publishes
:class:`~conveyor.events.JobEnqueued`. :class:`~conveyor.app.App` passes its codec,
ids, clock, store and middleware in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor import validation
from conveyor.codec import Codec
from conveyor.errors import InvalidOption
from conveyor.events import EventBus, JobEnqueued
from conveyor.ids import IdGenerator
from conveyor.job import EnqueueResult, NewJob
from conveyor.middleware import EnqueueMiddleware, compose_enqueue
from conveyor.options import JobOptions
from conveyor.payloads import encode_arguments
from conveyor.stores.base import Store

if TYPE_CHECKING:
    from conveyor.task import Task


def build_job(
    codec: Codec,
    ids: IdGenerator,
    now: float,
    call: tuple[Task[Any, Any], Sequence[Any], dict[str, Any]],
    options: JobOptions,
    piped_from: str | None = None,
) -> NewJob:
    """Turn ``call`` (task, args, kwargs) into a validated, encoded :class:`NewJob` due
    relative to ``now`` (nothing is stored)."""
    task, args, kwargs = call
    if not isinstance(kwargs, dict):
        raise InvalidOption("kwargs", "must be a dict of keyword arguments")
    task.check_arguments(args, kwargs, piped_from is not None)
    defaults = task.options
    job_id = ids.new()
    data = encode_arguments(codec, args, kwargs, piped_from, options.conditions)
    fingerprint = ""
    if options.idempotency_key:
        import hashlib  # only idempotent enqueues need it (it loads OpenSSL)

        fingerprint = hashlib.sha256(task.name.encode() + b"\0" + data).hexdigest()
    tags = validation.tags((*defaults.tags, *options.tags))
    return NewJob(
        id=job_id,
        queue=options.queue or defaults.queue,
        task=task.name,
        payload=codec.seal(data, aad=job_id.encode()),
        priority=defaults.priority if options.priority is None else options.priority,
        max_attempts=options.max_attempts or defaults.max_attempts,
        run_at=options.due_at(now),
        timeout=options.timeout or defaults.timeout,
        depends_on=options.depends_on,
        on_dependency_failure=options.on_dependency_failure or defaults.on_dependency_failure,
        parent_id=piped_from,
        tags=tags,
        unique_key=options.unique_key,
        unique_for=options.unique_for,
        idempotency_key=options.idempotency_key,
        idempotency_for=options.idempotency_for,
        fingerprint=fingerprint,
        task_version=defaults.version,
    )


def submit(
    store: Store,
    middleware: Sequence[EnqueueMiddleware],
    events: EventBus,
    jobs: Sequence[NewJob],
    connection: object | None = None,
) -> list[EnqueueResult]:
    """Store built jobs through the enqueue ``middleware``, atomically."""

    def store_call(batch: Sequence[NewJob]) -> list[EnqueueResult]:
        return store.enqueue(batch, connection=connection)

    call = compose_enqueue(middleware, store_call) if middleware else store_call
    results = call(jobs)
    if events.wants(JobEnqueued):
        for new, res in zip(jobs, results, strict=True):
            events.publish(JobEnqueued(res.id, new.task, new.queue, res.duplicate))
    return results
