"""The App: task registry, store, codec, middleware and event bus, passed explicitly."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from conveyor import job_controls, queue_control, validation
from conveyor.clock import Clock
from conveyor.codec import Codec, Keyring
from conveyor.codec.size import call_data_size
from conveyor.config import AppSettings, build, read_file_settings
from conveyor.coordination.limits import Limit, check_limit_keys, check_limits
from conveyor.errors import CorruptPayload, InvalidOption, JobNotFound, UnknownTask, WaitTimeout
from conveyor.events import EventBus, JobEnqueued
from conveyor.ids import IdGenerator
from conveyor.job import EnqueueResult, Job, JobError, JobState, NewJob
from conveyor.job_controls import JobsChanged, Selection
from conveyor.middleware import EnqueueMiddleware, ExecuteMiddleware, compose_enqueue
from conveyor.retry import RetryPolicy
from conveyor.stores import local_store_clock, open_store
from conveyor.stores.base import Store
from conveyor.stores.server_clock import ServerClock
from conveyor.task import JobOptions, Task, TaskOptions
from conveyor.workflow import Chain, Signature

if TYPE_CHECKING:
    from conveyor.conditions import Condition, ConditionContext
    from conveyor.config import WorkerSettings
    from conveyor.coordination.decisions import DecisionEntry
    from conveyor.scheduler.registry import StoredSchedule
    from conveyor.scheduler.service import PeriodicEntry
    from conveyor.worker.consumer import Worker

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("conveyor.app")


@dataclass(frozen=True, slots=True)
class Payload:
    """A decoded job payload: arguments, plus the job whose result is piped in."""

    args: list[Any]
    kwargs: dict[str, Any]
    piped_from: str | None = None
    conditions: tuple[dict[str, Any], ...] = ()
    """Conditions given to this job at enqueue, as stored (see :mod:`conveyor.conditions`)."""


class JobInfo:
    """A stored job with its payload and result decoded on demand."""

    def __init__(self, app: App, job: Job) -> None:
        self.app = app
        self.job = job

    def __repr__(self) -> str:
        return f"<JobInfo {self.job.id} {self.job.task} {self.job.state.value}>"

    @property
    def id(self) -> str:
        """The job id."""
        return self.job.id

    @property
    def state(self) -> JobState:
        """Current state (as of when this object was read)."""
        return self.job.state

    @property
    def result(self) -> Any:
        """The handler's return value (None until completed)."""
        return self.app.decode_result(self.job)

    @property
    def attempts(self) -> list[Any]:
        """Attempt history (see :attr:`conveyor.job.Job.attempts`)."""
        return self.job.attempts

    @property
    def errors(self) -> tuple[JobError, ...]:
        """One entry per failed attempt."""
        return self.job.errors

    @property
    def failure_reason(self) -> str | None:
        """Why the job is in the DLQ or cancelled."""
        return self.job.failure_reason

    def payload(self) -> Payload:
        """Decoded arguments (raises CorruptPayload if the stored frame is bad)."""
        return self.app.decode_payload(self.job)

    @property
    def decisions(self) -> list[DecisionEntry]:
        """What conditions and limits decided before runs (deferred, skipped), oldest first."""
        from conveyor.coordination.decisions import read_decisions

        return read_decisions(self.app.store, self.job.id)


@dataclass(frozen=True, slots=True)
class JobHandle:
    """What enqueue returns: the job id, and whether an existing job was returned."""

    app: App
    id: str
    duplicate: bool = False

    def get(self) -> JobInfo:
        """Read the job now."""
        return self.app.get_job(self.id)

    @property
    def state(self) -> JobState:
        """The job's state right now."""
        return self.get().state

    def wait(self, timeout: float | None = 30.0, interval: float = 0.01) -> JobInfo:
        """Poll until the job is terminal (completed, failed or cancelled) and return it;
        ``timeout=None`` waits as long as it takes.

        Raises:
            WaitTimeout: (a ``TimeoutError``) the job is not terminal after ``timeout``
                seconds; it names the job, its state and the timeout. The job is
                unaffected.
        """
        validation.seconds(timeout, "timeout", positive=False)
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        info = self.get()
        while not info.job.is_terminal:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(self.id, info.state.value, timeout or 0.0)
            time.sleep(min(interval, left))
            interval = min(interval * 1.5, 0.25)
            info = self.get()
        return info


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

        from conveyor.scheduler.service import PeriodicEntry  # the scheduler sits above App

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
        from conveyor.scheduler.manage import store_schedule  # the scheduler sits above App

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
        from conveyor.bulk import enqueue_signatures

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
        if not isinstance(kwargs, dict):
            raise InvalidOption("kwargs", "must be a dict of keyword arguments")
        task.check_arguments(args, kwargs, piped_from is not None)
        defaults = task.options
        job_id = self.ids.new()
        data = self.encode_arguments(args, kwargs, piped_from, options.conditions)
        fingerprint = ""
        if options.idempotency_key:
            import hashlib  # only idempotent enqueues need it (it loads OpenSSL)

            fingerprint = hashlib.sha256(task.name.encode() + b"\0" + data).hexdigest()
        tags = validation.tags((*defaults.tags, *options.tags))
        return NewJob(
            id=job_id,
            queue=options.queue or defaults.queue,
            task=task.name,
            payload=self.codec.seal(data, aad=job_id.encode()),
            priority=defaults.priority if options.priority is None else options.priority,
            max_attempts=options.max_attempts or defaults.max_attempts,
            run_at=options.due_at(self.clock.now()),
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

    def encode_arguments(
        self,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        piped_from: str | None,
        conditions: Sequence[Condition] = (),
    ) -> bytes:
        """Serialize arguments to JSON bytes; errors name the path (``args[1].items[3]``).

        The user's data is checked against ``max_payload_bytes`` here, without the
        envelope (see :mod:`conveyor.codec.size`); the whole frame is capped on seal."""
        encoded_args = self.codec.dumps(list(args), what="args")
        encoded_kwargs = self.codec.dumps(kwargs, what="kwargs")
        self.codec.check_size(call_data_size(args, encoded_args, kwargs, encoded_kwargs))
        piped = b',"p":"' + piped_from.encode() + b'"' if piped_from else b""
        if conditions:
            from conveyor.conditions import check_conditions  # only jobs with conditions

            specs = [c.to_spec() for c in check_conditions(conditions)]
            piped += b',"c":' + self.codec.dumps(specs, what="conditions")
        return b'{"a":' + encoded_args + b',"k":' + encoded_kwargs + piped + b"}"

    def submit(
        self, jobs: Sequence[NewJob], *, connection: object | None = None
    ) -> list[EnqueueResult]:
        """Store built jobs through the enqueue middleware, atomically."""

        def store_call(batch: Sequence[NewJob]) -> list[EnqueueResult]:
            return self.store.enqueue(batch, connection=connection)

        call = (
            compose_enqueue(self.enqueue_middleware, store_call)
            if self.enqueue_middleware
            else store_call
        )
        results = call(jobs)
        if self.events.wants(JobEnqueued):
            for new, res in zip(jobs, results, strict=True):
                self.events.publish(JobEnqueued(res.id, new.task, new.queue, res.duplicate))
        return results

    # reading -----------------------------------------------------------------------------
    def get_job(self, job_id: str) -> JobInfo:
        """The job with that id (:class:`JobNotFound` if there is none)."""
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return JobInfo(self, job)

    def decode_payload(self, job: Job) -> Payload:
        """Decode and check a job's payload; any problem is :class:`CorruptPayload`."""
        value = self.codec.decode(job.payload, aad=job.id.encode())
        if not isinstance(value, dict) or not isinstance(value.get("a"), list):
            raise CorruptPayload(f"job {job.id}: payload is not an argument frame")
        kwargs = value.get("k", {})
        piped = value.get("p")
        conditions = value.get("c", [])
        if (
            not isinstance(kwargs, dict)
            or not (piped is None or isinstance(piped, str))
            or not isinstance(conditions, list)
            or not all(isinstance(c, dict) for c in conditions)
        ):
            raise CorruptPayload(f"job {job.id}: payload is not an argument frame")
        return Payload(value["a"], kwargs, piped, tuple(conditions))

    def encode_result(self, job_id: str, value: object) -> bytes | None:
        """Encode a handler's return value (None stays None)."""
        if value is None:
            return None
        return self.codec.encode(value, aad=job_id.encode() + b":result", what="result")

    def decode_result(self, job: Job) -> Any:
        """Decode a stored result."""
        if job.result is None:
            return None
        return self.codec.decode(job.result, aad=job.id.encode() + b":result")

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
        from conveyor.config import WorkerSettings
        from conveyor.worker.consumer import Worker

        if settings is None:
            settings = build(
                WorkerSettings, env=os.environ, code=overrides, file=read_file_settings()
            )
        return Worker(self, settings)
