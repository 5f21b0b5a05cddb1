"""Runs one leased job through the middleware and decides its outcome.

The outcome is a closed set (completed, retrying, failed, cancelled, released);
the consumer turns it into exactly one fenced store call.
"""

from __future__ import annotations

import enum
import random
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.context import JobContext, reset_current, set_current
from conveyor.errors import (
    Cancel,
    CancelInterrupt,
    CorruptPayload,
    Interrupt,
    InvalidJob,
    MemoryLimitExceeded,
    MemoryLimitInterrupt,
    SoftTimeoutInterrupt,
    StoreError,
    StoreUnavailable,
    TaskTimeout,
    UnknownTask,
)
from conveyor.job import FailureReason, JobError, Lease
from conveyor.middleware import compose_execute
from conveyor.retry import after_failure
from conveyor.runtime import Runtime
from conveyor.worker.gate import Gate
from conveyor.worker.interrupt import Interrupter

if TYPE_CHECKING:
    import asyncio

    from conveyor.task import Task
    from conveyor.worker.memory import MemoryWatch


class ShutdownInterrupt(Interrupt):
    """The worker is stopping at once; the job goes back to the queue."""


class Kind(enum.Enum):
    """What became of a run."""

    COMPLETED = "completed"
    RETRYING = "retrying"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RELEASED = "released"
    DEFERRED = "deferred"
    """A condition or limit put the job back until ``retry_at`` (no attempt used)."""
    SKIPPED = "skipped"
    """A condition decided the job does not run; it ends cancelled."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one run, ready to be acknowledged."""

    kind: Kind
    result: bytes | None = None
    error: JobError | None = None
    retry_at: float | None = None
    reason: FailureReason | None = None
    exception: BaseException | None = None
    value: Any = None
    """The handler's return value (for run_sync)."""
    detail: str = ""
    """Why a job was deferred, skipped or released (for the job's log line)."""


STORE_RETRY_DELAY = 1.0
"""Seconds a job released after a store outage waits before it is claimed again."""


class Executor:
    """Runs jobs for one worker; owns the event loop used by ``async def`` tasks."""

    def __init__(
        self,
        app: Runtime,
        worker_id: str,
        interrupter: Interrupter | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.app = app
        self.gate = gate
        self.worker_id = worker_id
        self.interrupter = interrupter or Interrupter()
        self.rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self.current: JobContext | None = None
        self.memory: MemoryWatch | None = None
        """Set by the worker: tells a memory-limit stop from a cancel."""

    def close(self) -> None:
        """Close the event loop, if one was made."""
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def run(self, lease: Lease) -> Outcome:
        """Decode, run and classify one job. Never raises for the job's own errors."""
        job = lease.job
        started = self.app.clock.now()
        try:
            payload = self.app.decode_payload(job)
            task = self.app.get_task(job.task)
            args = payload.args
            if payload.piped_from is not None:
                source = self.app.store.get(payload.piped_from)
                if source is None:
                    raise CorruptPayload(f"job {job.id}: piped job {payload.piped_from} is gone")
                args = [self.app.decode_result(source), *args]
        except CorruptPayload as exc:
            return self._failed(lease, exc, started, FailureReason.CORRUPT)
        except UnknownTask as exc:
            return self._after_error(lease, exc, started, FailureReason.UNKNOWN_TASK)
        except StoreUnavailable as exc:  # an outage, not the job: give it back, no attempt
            detail = f"store unavailable while reading the piped result: {exc}"
            return Outcome(
                Kind.RELEASED, retry_at=started + STORE_RETRY_DELAY, exception=exc, detail=detail
            )
        except StoreError as exc:  # a store bug would repeat forever: spend an attempt
            return self._after_error(lease, exc, started, None)
        if self.gate is not None:
            admission = self.gate.admit(task, job, payload, args)
            if admission.error is not None:
                return self._failed(lease, admission.error, started, FailureReason.CONDITION_ERROR)
            decision = admission.decision
            if decision is not None:
                detail = f"{decision.condition}: {decision.reason}"
                if decision.action == "skip":
                    return Outcome(Kind.SKIPPED, detail=detail)
                return Outcome(
                    Kind.DEFERRED, retry_at=started + (decision.delay or 1.0), detail=detail
                )
            try:
                return self._run(lease, task, args, payload.kwargs, started)
            finally:
                if admission.slots:
                    self.gate.release(job.id)
        return self._run(lease, task, args, payload.kwargs, started)

    def _run(
        self,
        lease: Lease,
        task: Task[Any, Any],
        args: list[Any],
        kwargs: dict[str, Any],
        started: float,
    ) -> Outcome:
        job = lease.job

        ctx = JobContext(
            job_id=job.id,
            task=job.task,
            queue=job.queue,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            worker_id=self.worker_id,
            tags=job.tags,
        )
        self.current = ctx
        token = set_current(ctx)
        timeout = job.timeout if job.timeout is not None else task.options.timeout
        try:
            if task.is_async:
                call = self._async_call(task.fn, args, kwargs, timeout)
                handler: Callable[[], object] = call
                on_interrupt: Callable[[type[Interrupt]], None] | None = self._cancel_async
            else:
                fn, kw = task.fn, kwargs

                def handler() -> object:
                    return fn(*args, **kw)

                on_interrupt = None
            wrapped = (
                compose_execute(self.app.middleware, ctx, handler)
                if self.app.middleware
                else handler
            )
            with self.interrupter.guard(timeout, on_interrupt):
                value = wrapped()
        except Cancel:
            return Outcome(Kind.CANCELLED)
        except (CancelInterrupt, MemoryLimitInterrupt):
            # an async handler past its memory limit is stopped by cancelling it too
            breach = self.memory.breach_of(job.id) if self.memory is not None else None
            if breach is None:
                return Outcome(Kind.CANCELLED)
            error = MemoryLimitExceeded(breach.message(job.task))
            return self._after_error(lease, error, started, None)
        except ShutdownInterrupt:
            return Outcome(Kind.RELEASED)
        except (SoftTimeoutInterrupt, TimeoutError) as exc:
            if isinstance(exc, TimeoutError) and not task.is_async:
                return self._after_error(lease, exc, started, None)
            timeout_error = TaskTimeout(f"{job.task} ran longer than its timeout of {timeout}s")
            return self._after_error(lease, timeout_error, started, None)
        except Exception as exc:
            return self._after_error(lease, exc, started, None)
        finally:
            reset_current(token)
            self.current = None
        try:
            encoded = self.app.encode_result(job.id, value)
        except InvalidJob as exc:
            return self._failed(lease, exc, started, FailureReason.NOT_RETRYABLE)
        return Outcome(Kind.COMPLETED, result=encoded, value=value)

    # async handlers --------------------------------------------------------------------------
    def _async_call(
        self,
        fn: Callable[..., Coroutine[Any, Any, Any]],
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Callable[[], object]:
        def call() -> object:
            import asyncio  # only workers that run async tasks pay for it

            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.new_event_loop()
            self._task = loop.create_task(asyncio.wait_for(fn(*args, **kwargs), timeout))
            try:
                return loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                raise CancelInterrupt("cancelled") from None

        return call

    def _cancel_async(self, exc: type[Interrupt]) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)

    # classification ----------------------------------------------------------------------------
    def _error(self, lease: Lease, exc: BaseException, started: float) -> JobError:
        return JobError(
            attempt=lease.job.attempt,
            type=type(exc).__qualname__,
            message=str(exc)[:2000],
            traceback="".join(traceback.format_exception(exc))[-8000:],
            worker_id=self.worker_id,
            started_at=started,
            failed_at=self.app.clock.now(),
        )

    def _failed(
        self, lease: Lease, exc: BaseException, started: float, reason: FailureReason
    ) -> Outcome:
        return Outcome(
            Kind.FAILED, error=self._error(lease, exc, started), reason=reason, exception=exc
        )

    def _after_error(
        self, lease: Lease, exc: BaseException, started: float, reason: FailureReason | None
    ) -> Outcome:
        task = self.app.tasks.get(lease.job.task)
        decision = after_failure(
            exc,
            lease.job,
            task.options if task else None,
            now=self.app.clock.now(),
            rng=self.rng,
            exhausted=reason or FailureReason.EXHAUSTED,
        )
        error = self._error(lease, exc, started)
        if decision.retry_at is not None:
            return Outcome(Kind.RETRYING, error=error, retry_at=decision.retry_at, exception=exc)
        return Outcome(Kind.FAILED, error=error, reason=decision.reason, exception=exc)
