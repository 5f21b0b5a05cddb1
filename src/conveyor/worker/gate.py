"""The gate between claim and run: conditions first, then rate and concurrency limits.

A job that may not run now comes back as a :class:`~conveyor.conditions.Decision`
(``defer`` with a delay, or ``skip``), which the worker turns into a release to a later
time (no attempt used) or a cancel. Every objection is recorded on the job. Slots a
running job holds are renewed with the worker's heartbeat and given back when it ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.conditions import (
    Condition,
    ConditionContext,
    Decision,
    condition_from_spec,
    evaluate,
)
from conveyor.coordination.decisions import (
    CONDITION_ERROR,
    record_condition_error,
    record_decision,
    record_deferral,
)
from conveyor.coordination.limiter import Limiter
from conveyor.coordination.limits import Bucket, Concurrency, JobArguments, Limit, bucket_key
from conveyor.errors import ConveyorError, InvalidOption, StoreUnavailable
from conveyor.job import Job
from conveyor.payloads import Payload
from conveyor.runtime import Runtime

if TYPE_CHECKING:
    from conveyor.task import Task

log = logging.getLogger("conveyor.worker")


@dataclass(frozen=True, slots=True)
class Admission:
    """The gate's answer: run (holding ``slots``), the decision that stops the run, or
    the ``error`` the job's conditions kept raising (the job fails with it)."""

    decision: Decision | None = None
    slots: tuple[str, ...] = ()
    error: BaseException | None = None


RUN = Admission()

CONDITION_ERROR_DELAY = 30.0
"""Seconds a job waits after its conditions raised, before they are checked again."""
STORE_TROUBLE_DELAY = 5.0
"""Seconds a job waits when the store was unavailable while its conditions were checked."""


class Gate:
    """Checks one worker's jobs against their conditions and limits."""

    def __init__(self, app: Runtime, *, slot_ttl: float, error_limit: int = 5) -> None:
        self.app = app
        self.slot_ttl = slot_ttl
        self.error_limit = error_limit
        """Consecutive condition errors after which the job fails (``condition_error``)."""
        self._limiter: Limiter | None = None
        self._held: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def applies(self, task: Task[Any, Any], job: Job, payload: Payload) -> bool:
        """Whether the job has anything to check (the common case has nothing)."""
        options = task.options
        return bool(
            options.limits
            or options.conditions
            or payload.conditions
            or self.app.queue_limits.get(job.queue)
        )

    @property
    def limiter(self) -> Limiter:
        """The limiter, made on first use (a worker without limits never needs one)."""
        if self._limiter is None:
            self._limiter = Limiter(self.app.store, slot_ttl=self.slot_ttl)
        return self._limiter

    def admit(
        self,
        task: Task[Any, Any],
        job: Job,
        payload: Payload,
        args: Sequence[Any] | None = None,
    ) -> Admission:
        """Decide whether ``job`` runs now; take its limits' tokens and slots if so.

        ``args`` are the arguments the handler will get (a chained job's include the
        piped result); default: the payload's."""
        if not self.applies(task, job, payload):
            return RUN
        cached: list[JobArguments] = []

        def arguments() -> JobArguments:
            if not cached:
                call_args = payload.args if args is None else args
                cached.append(JobArguments.bind(task.fn, call_args, payload.kwargs))
            return cached[0]

        try:
            decision = self._conditions(task, job, payload, arguments)
            if decision is not None:
                self._record(job, decision)
                return Admission(decision)
            buckets = self._buckets(task, job, arguments)
        except StoreUnavailable as exc:  # an outage, not the condition: try again soon
            reason = f"store unavailable while checking conditions: {exc}"
            return Admission(Decision("defer", reason, "store", STORE_TROUBLE_DELAY))
        except Exception as exc:  # a broken condition, key function or store read: capped
            return self._condition_error(job, exc)
        if not buckets:
            return RUN
        try:
            grant = self.limiter.acquire(job.id, buckets)
        except ConveyorError as exc:
            decision = Decision("defer", f"could not check limits: {exc}", "error", 5.0)
            self._record(job, decision)
            return Admission(decision)
        if not grant.granted:
            source = "concurrency" if grant.bucket.startswith("slots:") else "rate_limit"
            reason = f"over the limit of {grant.bucket}"
            return Admission(self._defer(job, reason, source, grant.retry_after))
        if grant.slots:
            with self._lock:
                self._held[job.id] = grant.slots
        return Admission(None, grant.slots)

    def release(self, job_id: str) -> None:
        """Give back the slots the job held (it ended, however it ended)."""
        with self._lock:
            slots = self._held.pop(job_id, ())
        if slots:
            try:
                self.limiter.release(job_id, slots)
            except ConveyorError as exc:
                log.warning("job %s: could not free its slots (%s); they expire", job_id, exc)

    def renew(self) -> None:
        """Keep the running jobs' slots (called on every heartbeat round)."""
        with self._lock:
            held = list(self._held.items())
        for job_id, slots in held:
            try:
                self.limiter.renew(job_id, slots)
            except ConveyorError as exc:
                log.warning("job %s: could not renew its slots (%s)", job_id, exc)

    # pieces ------------------------------------------------------------------------------
    def _conditions(
        self,
        task: Task[Any, Any],
        job: Job,
        payload: Payload,
        arguments: Callable[[], JobArguments],
    ) -> Decision | None:
        conditions: list[Condition] = list(task.options.conditions)
        for spec in payload.conditions:
            try:
                conditions.append(condition_from_spec(spec))
            except (InvalidOption, TypeError) as exc:
                return Decision("skip", f"stored condition {spec!r} is invalid: {exc}", "error")
        if not conditions:
            return None
        store = self.app.store
        ctx = ConditionContext(job, store, store.now(), arguments, self.app.predicates)
        return evaluate(conditions, ctx)

    def _buckets(
        self, task: Task[Any, Any], job: Job, arguments: Callable[[], JobArguments]
    ) -> list[Bucket]:
        owned: list[tuple[Limit, str]] = [
            (limit, f"task:{task.name}") for limit in task.options.limits
        ]
        owned += [
            (limit, f"queue:{job.queue}") for limit in self.app.queue_limits.get(job.queue, ())
        ]
        buckets: list[Bucket] = []
        for limit, owner in owned:
            kind = "slots" if isinstance(limit, Concurrency) else "rate"
            key = bucket_key(limit, owner, arguments)
            buckets.append(Bucket(kind, f"{kind}:{key}", limit))
        return buckets

    def _defer(self, job: Job, reason: str, source: str, base: float) -> Decision:
        """Record a limit's deferral; the wait grows when the same limit keeps refusing."""
        try:
            delay = record_deferral(self.app.store, job.id, reason, source, base)
        except ConveyorError as exc:
            log.warning("job %s: could not record the decision (%s)", job.id, exc)
            delay = base
        log.debug(
            "job %s: defer %.2fs (%s)",
            job.id,
            delay,
            reason,
            extra={"job_id": job.id, "task": job.task, "decision": "defer"},
        )
        return Decision("defer", reason, source, delay)

    def _condition_error(self, job: Job, exc: Exception) -> Admission:
        """Defer a job whose conditions raised; fail it once they raised ``error_limit``
        times in a row (a bug in a predicate would otherwise defer it forever)."""
        reason = f"could not check conditions: {type(exc).__name__}: {exc}"
        try:
            count = record_condition_error(self.app.store, job.id, reason, CONDITION_ERROR_DELAY)
        except ConveyorError as store_exc:
            log.warning("job %s: could not record the decision (%s)", job.id, store_exc)
            count = 1
        if count >= self.error_limit:
            return Admission(error=exc)
        return Admission(Decision("defer", reason, CONDITION_ERROR, CONDITION_ERROR_DELAY))

    def _record(self, job: Job, decision: Decision) -> None:
        log.debug(
            "job %s: %s (%s)",
            job.id,
            decision.action,
            decision.reason,
            extra={"job_id": job.id, "task": job.task, "decision": decision.action},
        )
        try:
            record_decision(
                self.app.store,
                job.id,
                decision.action,
                decision.reason,
                decision.condition,
                decision.delay,
            )
        except ConveyorError as exc:
            log.warning("job %s: could not record the decision (%s)", job.id, exc)
