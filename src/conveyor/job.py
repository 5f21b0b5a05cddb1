"""The job record, its states and the one table of legal transitions.

Every store checks :data:`TRANSITIONS` before it changes a job's state; nothing
else in Conveyor decides what may follow what. Times are UTC epoch seconds
(floats) judged by the store's clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from conveyor.errors import DependencyCycle, IllegalTransition


class JobState(StrEnum):
    """Where a job is in its life, and which part of Conveyor moves it on."""

    SCHEDULED = "scheduled"
    """Waiting for ``run_at``; the stager (or a claim) makes it pending."""
    PENDING = "pending"
    """Ready to run; a worker's claim takes it."""
    BLOCKED = "blocked"
    """Waiting for its dependencies; completion of the last one releases it."""
    PROCESSING = "processing"
    """Held by a worker under a lease; the rescuer recovers it if the lease expires."""
    RETRYING = "retrying"
    """Failed an attempt and waits for its retry time; the stager makes it pending."""
    COMPLETED = "completed"
    """Finished successfully (terminal)."""
    FAILED = "failed"
    """In the dead-letter queue with a reason (terminal unless retried by hand)."""
    CANCELLED = "cancelled"
    """Cancelled by a user or a failed dependency (terminal unless retried by hand)."""


S = JobState

TRANSITIONS: Final[Mapping[JobState, frozenset[JobState]]] = {
    S.SCHEDULED: frozenset({S.PENDING, S.CANCELLED}),
    S.BLOCKED: frozenset({S.PENDING, S.SCHEDULED, S.CANCELLED, S.FAILED}),
    S.PENDING: frozenset({S.PROCESSING, S.CANCELLED}),
    # processing -> pending/scheduled is a release (shutdown, prefetch returned unstarted).
    S.PROCESSING: frozenset(
        {S.COMPLETED, S.RETRYING, S.FAILED, S.CANCELLED, S.PENDING, S.SCHEDULED}
    ),
    S.RETRYING: frozenset({S.PENDING, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset({S.PENDING}),
    S.CANCELLED: frozenset({S.PENDING}),
}

TERMINAL_STATES: Final = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})
ACTIVE_STATES: Final = frozenset(set(JobState) - TERMINAL_STATES)
WAITING_STATES: Final = frozenset({S.SCHEDULED, S.RETRYING})


def can_transition(current: JobState, target: JobState) -> bool:
    """Whether the state machine allows ``current -> target``."""
    return target in TRANSITIONS[current]


def check_transition(job_id: str, current: JobState, target: JobState) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is legal."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(job_id, current.value, target.value)


class FailureReason(StrEnum):
    """Why a job is in the DLQ (or cancelled)."""

    EXHAUSTED = "exhausted"
    """Every attempt failed."""
    NOT_RETRYABLE = "not_retryable"
    """The error is not one the task retries on."""
    POISON = "poison"
    """The job lost its lease (crash/stall) too many times."""
    CORRUPT = "corrupt"
    """The stored payload failed its integrity checks."""
    UNKNOWN_TASK = "unknown_task"
    """No worker knows the task, even after retries."""
    DEPENDENCY_FAILED = "dependency_failed"
    """A job it depends on failed or was cancelled."""
    CANCELLED = "cancelled"
    """Cancelled by a user."""
    CONDITION_ERROR = "condition_error"
    """Its conditions (or a limit's key function) raised too many times in a row."""


class DependencyPolicy(StrEnum):
    """What happens to a job when one of its dependencies fails or is cancelled."""

    FAIL = "fail"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class JobError:
    """One failed attempt: what went wrong, where and when."""

    attempt: int
    type: str
    message: str
    traceback: str = ""
    worker_id: str = ""
    started_at: float | None = None
    failed_at: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain form for JSON columns and the CLI."""
        return {
            "attempt": self.attempt,
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
            "worker_id": self.worker_id,
            "started_at": self.started_at,
            "failed_at": self.failed_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> JobError:
        """Inverse of :meth:`to_dict`."""
        started = data.get("started_at")
        return cls(
            attempt=int(str(data.get("attempt", 0))),
            type=str(data.get("type", "")),
            message=str(data.get("message", "")),
            traceback=str(data.get("traceback", "")),
            worker_id=str(data.get("worker_id", "")),
            started_at=float(str(started)) if started is not None else None,
            failed_at=float(str(data.get("failed_at", 0.0))),
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One run of a job, derived from the job's columns and its error list."""

    attempt: int
    worker_id: str
    started_at: float | None
    finished_at: float | None
    outcome: str
    error: JobError | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A stored job, exactly as the store holds it (payload and result still encoded)."""

    id: str
    queue: str
    task: str
    payload: bytes
    state: JobState
    priority: int = 0
    attempt: int = 0
    max_attempts: int = 3
    run_at: float = 0.0
    timeout: float | None = None
    lease_token: str | None = None
    lease_expires_at: float | None = None
    worker_id: str | None = None
    depends_on: tuple[str, ...] = ()
    blocked_by: int = 0
    on_dependency_failure: DependencyPolicy = DependencyPolicy.FAIL
    parent_id: str | None = None
    tags: tuple[str, ...] = ()
    unique_key: str | None = None
    idempotency_key: str | None = None
    task_version: int = 1
    result: bytes | None = None
    errors: tuple[JobError, ...] = ()
    failure_reason: str | None = None
    rescue_count: int = 0
    cancel_requested: bool = False
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None

    @property
    def is_terminal(self) -> bool:
        """True for completed, failed and cancelled jobs."""
        return self.state in TERMINAL_STATES

    @property
    def attempts(self) -> list[Attempt]:
        """The attempt history: failed attempts from ``errors`` plus the current one."""
        history = [
            Attempt(e.attempt, e.worker_id, e.started_at, e.failed_at, "error", e)
            for e in self.errors
        ]
        recorded = {e.attempt for e in self.errors}
        if self.attempt and self.attempt not in recorded and self.started_at is not None:
            outcome = self.state.value if self.is_terminal else "running"
            history.append(
                Attempt(
                    self.attempt, self.worker_id or "", self.started_at, self.finished_at, outcome
                )
            )
        return history


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJob:
    """A job to insert; built and validated by the app, stored by a driver."""

    id: str
    queue: str
    task: str
    payload: bytes
    priority: int = 0
    max_attempts: int = 3
    run_at: float | None = None
    """Absolute due time; ``None`` means now."""
    timeout: float | None = None
    depends_on: tuple[str, ...] = ()
    on_dependency_failure: DependencyPolicy = DependencyPolicy.FAIL
    parent_id: str | None = None
    tags: tuple[str, ...] = ()
    unique_key: str | None = None
    unique_for: float | None = None
    """Seconds the unique key holds after enqueue; ``None``: while the job is active."""
    idempotency_key: str | None = None
    idempotency_for: float = 86400.0
    fingerprint: str = ""
    """Digest of task + arguments, compared when an idempotency key is reused."""
    task_version: int = 1


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """What became of one :class:`NewJob`: its id, and whether it was a duplicate."""

    id: str
    state: JobState
    duplicate: bool = False


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """Return one cycle (``[a, b, …, a]``) in a ``node -> dependencies`` graph, or None."""
    white, grey, black = 0, 1, 2
    colour: dict[str, int] = {}
    for root in edges:
        if colour.get(root, white) != white:
            continue
        stack: list[tuple[str, list[str]]] = [(root, list(edges.get(root, ())))]
        path = [root]
        colour[root] = grey
        while stack:
            node, todo = stack[-1]
            if not todo:
                colour[node] = black
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            state = colour.get(nxt, white)
            if state == grey:
                return [*path[path.index(nxt) :], nxt]
            if state == white and nxt in edges:
                colour[nxt] = grey
                path.append(nxt)
                stack.append((nxt, list(edges.get(nxt, ()))))
    return None


def check_no_cycle(jobs: Sequence[NewJob]) -> None:
    """Raise :class:`DependencyCycle` if the batch's dependencies form a cycle."""
    edges = {job.id: job.depends_on for job in jobs if job.depends_on}
    if not edges:
        return
    cycle = find_cycle(edges)
    if cycle:
        raise DependencyCycle(cycle)


@dataclass(frozen=True, slots=True)
class Lease:
    """A worker's claim on a processing job: valid while ``token`` still matches."""

    job: Job
    token: str
    expires_at: float

    @property
    def job_id(self) -> str:
        """The leased job's id."""
        return self.job.id


@dataclass(slots=True)
class StateCounts:
    """Jobs per state in one queue, plus the age of its oldest pending job."""

    queue: str
    counts: dict[str, int] = field(default_factory=dict)
    oldest_pending_at: float | None = None

    def total(self) -> int:
        """All jobs in the queue, whatever their state."""
        return sum(self.counts.values())
