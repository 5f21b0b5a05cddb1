"""The App: the user's facade over tasks, a store, a codec, middleware and events.

It registers tasks and schedules and delegates the work: payloads to
:mod:`conveyor.payloads`, handles to :mod:`conveyor.handles`, building and storing
jobs to :mod:`conveyor.enqueueing`, job controls to :mod:`conveyor.job_controls`.
The services it starts (worker, scheduler, sync runner) see it as a
:class:`~conveyor.runtime.Runtime` and never import it.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from conveyor import enqueueing, job_controls, payloads, queue_control, validation
from conveyor.bulk import enqueue_signatures
from conveyor.clock import Clock
from conveyor.codec import Codec, Keyring
from conveyor.config import AppSettings, WorkerSettings, build, read_file_settings
from conveyor.coordination.limits import Limit, check_limit_keys, check_limits
from conveyor.errors import InvalidOption, UnknownTask
from conveyor.events import EventBus
from conveyor.handles import JobHandle, JobInfo, read_job
from conveyor.ids import IdGenerator
from conveyor.job import EnqueueResult, Job, NewJob
from conveyor.job_controls import JobsChanged, Selection
from conveyor.middleware import EnqueueMiddleware, ExecuteMiddleware
from conveyor.options import JobOptions, TaskOptions
from conveyor.payloads import Payload
from conveyor.retry import RetryPolicy
from conveyor.stores import local_store_clock, open_store
from conveyor.stores.base import Store
from conveyor.stores.server_clock import ServerClock
from conveyor.task import Task
from conveyor.workflow import Chain, Signature

if TYPE_CHECKING:
    from conveyor.conditions import Condition, ConditionContext
    from conveyor.scheduler.registry import StoredSchedule
    from conveyor.scheduler.service import PeriodicEntry
    from conveyor.worker.consumer import Worker

__all__ = ["App", "JobHandle", "JobInfo", "Payload"]

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("conveyor.app")


class App:
    """Tasks, a store and a codec: everything producers and workers share.

    ``store`` is a DSN (``sqlite:///jobs.db``, ``memory://``) or a Store. The store
    opens on first use. Settings follow one rule (see :mod:`conveyor.config`):
    ``CONVEYOR_*`` environment > code (``store``) > settings file > defaults, so
    ``CONVEYOR_STORE`` redirects a deployed app. A Store object is used as given, and
    ``settings=`` is taken as is (neither environment nor file is read).

    ``clock`` is the app's own clock (tests pass a FakeClock). Without one, the app
    reads the store's: on PostgreSQL and Redis that is the server's clock, so due and
    retry times come from the same clock as leases. A store the app opens from a DSN
    gets ``clock`` only when it is single-host (memory, SQLite, file); PostgreSQL and
    Redis always judge leases by their server's clock (to test them with a fake clock,
    pass a store built with ``clock=``).
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        settings: AppSettings | None = None,
        codec: Codec | None = None,
        clock: Clock | None = None,
        middleware: Sequence[ExecuteMiddleware] = (),
        enqueue_middleware: Sequence[EnqueueMiddleware] = (),
    ) -> None:
        if settings is None:
            code = {"store": store} if isinstance(store, str) else {}
            settings = build(AppSettings, env=os.environ, code=code, file=read_file_settings())
        elif isinstance(store, str) and store != settings.store:
            # explicit settings are used as given; a DSN passed beside them is explicit too
            settings = dataclasses.replace(settings, store=store)
        self.settings = settings
        self._clock = clock
        self._store: Store | None = (
            store if store is not None and not isinstance(store, str) else None
        )
        self._dsn = settings.store if self._store is None else ""
        self.codec = codec or Codec(
            keyring=Keyring.from_string(settings.encryption_keys)
            if settings.encryption_keys
            else None,
            compress_above=settings.compress_above,
            max_payload_bytes=settings.max_payload_bytes,
            max_decoded_bytes=settings.max_decoded_bytes or None,
        )
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.schedules: dict[str, PeriodicEntry] = {}
        """Periodic entries by name (see :meth:`periodic`), run by ``conveyor scheduler``."""
        self.queue_limits: dict[str, tuple[Limit, ...]] = {}
        """Limits every job of a queue counts against (see :meth:`limit_queue`)."""
        self.predicates: dict[str, Callable[[ConditionContext], object]] = {}
        """Custom conditions by name (see :meth:`condition`)."""
        self.middleware = list(middleware)
        self.enqueue_middleware = list(enqueue_middleware)
        self.events = EventBus()
        self.ids = IdGenerator()

    # store -------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The store, opened on first use."""
        if self._store is None:
            store = open_store(self._dsn, clock=local_store_clock(self._dsn, self._clock))
            if isinstance(store.clock, ServerClock):
                store.clock.warn_above = self.settings.clock_offset_warning
            self._store = store
        return self._store

    @property
    def clock(self) -> Clock:
        """The clock given to the app, else the store's (see the class docstring)."""
        return self._clock if self._clock is not None else self.store.clock

    @property
    def dsn(self) -> str:
        """Where the store lives (as configured)."""
        return self._dsn if self._store is None or self._dsn else type(self._store).__name__

    def use_store(self, dsn: str) -> None:
        """Point the app at another store (the CLI's ``--store``); call before use."""
        if self._store is not None:
            self._store.close()
        self._store = None
        self._dsn = dsn

    def close(self) -> None:
        """Close the store's connections."""
        if self._store is not None:
            self._store.close()

    # tasks -------------------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int | str = 0,
        max_attempts: int = 3,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        tags: Sequence[str] = (),
        version: int = 1,
        on_dependency_failure: str = "fail",
        limits: Sequence[Limit | str] = (),
        conditions: Sequence[Condition] = (),
        max_memory: int | str | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(  # type: ignore[misc]  # mypy cannot match **options to keyword-only overloads
        self, fn: Callable[..., Any] | None = None, /, **options: Any
    ) -> Any:
        """Register a function (sync or ``async def``) as a task.

        Use as ``@app.task`` or ``@app.task(queue="emails", max_attempts=5, timeout=30)``.
        """
        if fn is not None:
            return self._register(fn, {})
        return lambda f: self._register(f, options)

    def _register(self, fn: Callable[..., Any], options: dict[str, Any]) -> Task[Any, Any]:
        name = options.pop("name", None) or f"{fn.__module__}.{fn.__qualname__}".replace(
            "<locals>.", ""
        )
        validation.task_name(name)
        if name in self.tasks and self.tasks[name].fn is not fn:
            raise InvalidOption("name", f"a different task is already registered as {name!r}")
        if options.get("retry") is None:
            options.pop("retry", None)
        if "retry_on" in options:
            options["retry_on"] = tuple(options["retry_on"])
        if "limits" in options:
            options["limits"] = check_limits(options["limits"])
        try:
            task_options = TaskOptions(**options)
        except TypeError as exc:
            raise InvalidOption("task", str(exc)) from exc
        try:
            sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            check_limit_keys(task_options.limits, sig, name)
        task: Task[Any, Any] = Task(
            app=self,
            name=name,
            fn=fn,
            options=task_options,
            is_async=inspect.iscoroutinefunction(fn),
            signature=sig,
        )
        self.tasks[name] = task
        return task

    def limit_queue(self, queue: str, *limits: Limit | str) -> None:
        """Limit every job of ``queue``, across all workers: ``app.limit_queue("emails",
        "100/m", Concurrency(5))``. Replaces the queue's earlier limits."""
        validation.queue_name(queue)
        self.queue_limits[queue] = check_limits(limits)

    def condition(
        self, name: str | None = None
    ) -> Callable[[Callable[[ConditionContext], object]], Callable[[ConditionContext], object]]:
        """Register a custom condition for :class:`conveyor.conditions.Predicate`.

        ``@app.condition()`` (named after the function) or ``@app.condition("name")``;
        the function gets a :class:`~conveyor.conditions.ConditionContext` and returns
        true to run (or a :class:`~conveyor.conditions.Decision`)."""

        def register(
            fn: Callable[[ConditionContext], object],
        ) -> Callable[[ConditionContext], object]:
            key = name or getattr(fn, "__name__", "")
            if not key:
                raise InvalidOption("name", "give the condition a name")
            if key in self.predicates and self.predicates[key] is not fn:
                raise InvalidOption("name", f"a condition named {key!r} already exists")
            self.predicates[key] = fn
            return fn

        return register

    def periodic(
        self,
        expression: str,
        *,
        tz: str | None = None,
        name: str | None = None,
        catch_up: str = "latest",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function as a task enqueued on a schedule by ``conveyor scheduler``.

        ``@app.periodic("every weekday at 9:30", tz="Europe/Paris")``. ``expression`` is
        cron or English (see :func:`conveyor.scheduler.parse_schedule`) and is parsed
        now: a bad one raises here. ``name`` names the schedule (default: the task's
        name); ``catch_up`` is ``skip``, ``latest`` or ``all`` (see
        :mod:`conveyor.scheduler.service`); ``args``/``kwargs`` are passed to every run.
        Stacking over ``@app.task(...)`` keeps that task and its options.

        Raises:
            ScheduleError: the expression or the zone is not understood.
            InvalidOption: a bad ``catch_up``, arguments the task cannot take, or a
                schedule of that name already registered.
        """

        # lazy: the scheduler (cronsim, the recurrence maths) costs producers ~50 ms
        from conveyor.scheduler.service import PeriodicEntry

        def register(fn: Callable[P, R]) -> Task[P, R]:
            task: Task[P, R] = fn if isinstance(fn, Task) else self.task(fn)
            entry_name = name or task.name
            validation.task_name(entry_name)
            if entry_name in self.schedules:
                raise InvalidOption("name", f"a schedule named {entry_name!r} already exists")
            self.schedules[entry_name] = PeriodicEntry.build(
                entry_name,
                task,
                expression,
                tz=tz,
                catch_up=catch_up,
                args=tuple(args),
                kwargs=kwargs,
            )
            return task

        return register

    def schedule(
        self,
        task: Task[Any, Any] | str,
        expression: str,
        *,
        name: str | None = None,
        tz: str | None = None,
        catch_up: str = "latest",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> StoredSchedule:
        """Store a schedule (or update the one of that name): ``app.schedule(report,
        "every monday at 8:00", tz="Europe/Paris")``. Unlike :meth:`periodic` it lives in
        the store, so it can be added and removed at run time (``conveyor schedule``);
        every scheduler whose app has the task runs it. Checked now, like ``periodic``.
        """
        # lazy: the scheduler (cronsim, the recurrence maths) costs producers ~50 ms
        from conveyor.scheduler.manage import store_schedule

        return store_schedule(
            self, task, expression, name=name, tz=tz, catch_up=catch_up, args=args, kwargs=kwargs
        )

    def get_task(self, name: str) -> Task[Any, Any]:
        """The task registered as ``name``, or :class:`UnknownTask`."""
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownTask(name, list(self.tasks)) from None

    # enqueue -----------------------------------------------------------------------------
    def enqueue(
        self,
        task_name: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> JobHandle:
        """Enqueue a registered task by name (what the CLI uses)."""
        task = self.get_task(task_name)
        return self.enqueue_task(
            task, tuple(args), dict(kwargs or {}), task.job_options.merged(**options)
        )

    def enqueue_task(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: dict[str, Any], options: JobOptions
    ) -> JobHandle:
        """Validate, encode and store one job."""
        new = self.build_job(task, args, kwargs, options)
        result = self.submit([new], connection=options.connection)[0]
        return JobHandle(self, result.id, result.duplicate)

    def enqueue_many(self, signatures: Iterable[Signature]) -> list[JobHandle]:
        """Store many calls, ``app.enqueue_many([add.s(1, 2), mul.s(3, 4)])``, each with
        its own options, in one atomic write; handles come back in order. One bad
        signature refuses the whole batch and nothing is stored (see :mod:`conveyor.bulk`).
        """
        return enqueue_signatures(self, signatures)

    def enqueue_chain(self, signatures: Sequence[Signature]) -> list[JobHandle]:
        """Store a chain atomically: each job depends on, and receives the result of,
        the one before it."""
        jobs: list[NewJob] = []
        previous: str | None = None
        connection = None
        for sig in signatures:
            deps = sig.options.depends_on + ((previous,) if previous else ())
            options = sig.options.merged(depends_on=deps)
            jobs.append(
                self.build_job(sig.task, sig.args, sig.kwargs, options, piped_from=previous)
            )
            previous = jobs[-1].id
            connection = connection or sig.options.connection
        results = self.submit(jobs, connection=connection)
        return [JobHandle(self, r.id, r.duplicate) for r in results]

    def chain(self, *signatures: Signature) -> Chain:
        """``app.chain(a.s(1), b.s(), c.s())``: each result is the next one's first argument."""
        return Chain(self, signatures)

    def build_job(
        self,
        task: Task[Any, Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: JobOptions,
        *,
        piped_from: str | None = None,
    ) -> NewJob:
        """Turn a call into a validated, encoded :class:`NewJob` (nothing is stored)."""
        now = self.clock.now()
        call = (task, args, kwargs)
        return enqueueing.build_job(self.codec, self.ids, now, call, options, piped_from)

    def encode_arguments(
        self,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        piped_from: str | None,
        conditions: Sequence[Condition] = (),
    ) -> bytes:
        """Serialize arguments to JSON bytes (see :func:`conveyor.payloads.encode_arguments`)."""
        return payloads.encode_arguments(self.codec, args, kwargs, piped_from, conditions)

    def submit(
        self, jobs: Sequence[NewJob], *, connection: object | None = None
    ) -> list[EnqueueResult]:
        """Store built jobs through the enqueue middleware, atomically."""
        return enqueueing.submit(self.store, self.enqueue_middleware, self.events, jobs, connection)

    # reading -----------------------------------------------------------------------------
    def get_job(self, job_id: str) -> JobInfo:
        """The job with that id (:class:`JobNotFound` if there is none)."""
        return read_job(self, job_id)

    def decode_payload(self, job: Job) -> Payload:
        """Decode and check a job's payload; any problem is :class:`CorruptPayload`."""
        return payloads.decode_payload(self.codec, job)

    def encode_result(self, job_id: str, value: object) -> bytes | None:
        """Encode a handler's return value (None stays None)."""
        return payloads.encode_result(self.codec, job_id, value)

    def decode_result(self, job: Job) -> Any:
        """Decode a stored result."""
        return payloads.decode_result(self.codec, job)

    # job and queue controls --------------------------------------------------------------
    def resolve_job_id(self, id_or_prefix: str) -> str:
        """The full id of the one job ``id_or_prefix`` names (a full id or a unique prefix).

        Raises:
            JobNotFound: No job id starts with it.
            AmbiguousJobId: Several do.
        """
        return job_controls.resolve_id(self.store, id_or_prefix)

    def resolve_job_ids(self, ids: Sequence[str]) -> list[str]:
        """Full ids for ids or unique prefixes; one that names no job is kept as given.

        Raises:
            AmbiguousJobId: A prefix matches several jobs.
        """
        return job_controls.resolve_ids(self.store, ids)

    def retry_jobs(self, jobs: Selection) -> JobsChanged:
        """Move failed/cancelled jobs back to pending with fresh attempts.

        ``jobs`` is ids (or unique prefixes), or a :class:`JobQuery` whose every match
        is taken; so for every bulk method here."""
        return job_controls.retry(self.store, job_controls.selected(self.store, jobs))

    def cancel_jobs(self, jobs: Selection, *, force: bool = False) -> JobsChanged:
        """Cancel jobs: waiting ones at once, running ones at their next heartbeat (or at
        once with ``force``)."""
        ids = job_controls.selected(self.store, jobs)
        return job_controls.cancel(self.store, ids, force=force)

    def purge_jobs(self, jobs: Selection) -> JobsChanged:
        """Delete jobs for good; processing ones are skipped (cancel them first)."""
        return job_controls.purge(self.store, job_controls.selected(self.store, jobs))

    def prioritize_jobs(self, jobs: Selection, priority: int | str) -> JobsChanged:
        """Set the priority (-100..100 or critical/high/normal/low) of waiting jobs."""
        value = validation.priority(priority)  # refused before anything is selected
        return job_controls.prioritize(self.store, job_controls.selected(self.store, jobs), value)

    def move_jobs(self, jobs: Selection, queue: str) -> JobsChanged:
        """Move waiting jobs (pending, scheduled, retrying, blocked) to ``queue``."""
        target = validation.queue_name(queue)  # refused before anything is selected
        return job_controls.move(self.store, job_controls.selected(self.store, jobs), target)

    def pause_queue(self, name: str) -> bool:
        """Stop every worker on this store claiming from ``name`` (within one poll
        interval); enqueueing still works. False if it was already paused."""
        return bool(queue_control.pause_queues(self.store, [name]).changed)

    def resume_queue(self, name: str) -> bool:
        """Let workers claim from ``name`` again. False if it was not paused."""
        return bool(queue_control.resume_queues(self.store, [name]).changed)

    def paused_queues(self) -> list[str]:
        """The paused queues of this store, by name."""
        return sorted(queue_control.paused_queues(self.store))

    # running -----------------------------------------------------------------------------
    def run_sync(
        self, task: Task[Any, R], args: Sequence[Any], kwargs: dict[str, Any], options: JobOptions
    ) -> R:
        """Record a job and run it in this process now (one attempt, no background retry)."""
        # lazy: the executor and the gate are a worker's, not every producer's
        from conveyor.worker.sync import run_now

        new = self.build_job(task, args, kwargs, options)
        if new.depends_on:
            raise InvalidOption("depends_on", "run_sync cannot wait for dependencies; use enqueue")
        stored = self.submit([new], connection=options.connection)[0]
        result: R = run_now(self, stored.id)
        return result

    def worker(self, settings: WorkerSettings | None = None, **overrides: Any) -> Worker:
        """A single-process worker for this app (the CLI's ``conveyor worker`` builds one).

        ``overrides`` rank as code: ``CONVEYOR_*`` variables beat them, the file does not.
        """
        # lazy: the worker stack (maintenance, memory watch, reporting) costs ~50 ms
        from conveyor.worker.consumer import Worker

        if settings is None:
            settings = build(
                WorkerSettings, env=os.environ, code=overrides, file=read_file_settings()
            )
        return Worker(self, settings)
