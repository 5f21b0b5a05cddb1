"""Task and job options: a task's defaults and one enqueue's overrides, checked on creation.

Below the task, the workflow and the app, which all build and merge options.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from conveyor import validation
from conveyor.coordination.limits import Limit, check_limits
from conveyor.errors import InvalidOption
from conveyor.job import DependencyPolicy
from conveyor.retry import DEFAULT_POLICY, RetryPolicy
from conveyor.sizes import memory_limit

if TYPE_CHECKING:
    from conveyor.conditions import Condition
    from conveyor.task import Task


def _checked_conditions(conditions: object) -> tuple[Condition, ...]:
    """Validated conditions (the common empty tuple is taken as is)."""
    if conditions == ():
        return ()
    # conditions cost every producer and worker ~15 ms of start-up; most tasks have none
    from conveyor.conditions import check_conditions

    return check_conditions(conditions)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskOptions:
    """Defaults every job of a task starts from."""

    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    timeout: float | None = None
    """Soft timeout in seconds: raises inside the handler; ``None``: no limit."""
    retry: RetryPolicy = DEFAULT_POLICY
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    tags: tuple[str, ...] = ()
    version: int = 1
    on_dependency_failure: DependencyPolicy = DependencyPolicy.FAIL
    limits: tuple[Limit, ...] = ()
    """Rate and concurrency limits every job of the task counts against (store-wide)."""
    conditions: tuple[Condition, ...] = ()
    """Checked before each run: run, defer or skip (see :mod:`conveyor.conditions`)."""
    max_memory: int | str | None = None
    """Stop a run whose worker process passes this much RSS: MiB (int) or a size such
    as ``"512MiB"``; ``None``: the worker's ``--max-memory-per-job``."""

    @property
    def max_memory_bytes(self) -> int | None:
        """``max_memory`` in bytes (``None``: not set)."""
        return memory_limit(self.max_memory)

    def __post_init__(self) -> None:
        memory_limit(self.max_memory)  # refused at decoration, not when a job runs
        object.__setattr__(self, "limits", check_limits(self.limits))
        object.__setattr__(self, "conditions", _checked_conditions(self.conditions))
        validation.queue_name(self.queue)
        object.__setattr__(self, "priority", validation.priority(self.priority))
        validation.max_attempts(self.max_attempts)
        validation.seconds(self.timeout, "timeout")
        object.__setattr__(self, "tags", validation.tags(self.tags))
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in self.retry_on):
            raise InvalidOption("retry_on", "must be a tuple of exception classes")
        if not hasattr(self.retry, "delay"):
            raise InvalidOption("retry", "must be a retry policy such as Exponential()")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise InvalidOption("version", f"must be a positive integer, got {self.version!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOptions:
    """Options of one enqueue; ``None`` means "the task's default"."""

    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    delay: float | None = None
    """Seconds from now; zero or negative runs now."""
    run_at: datetime | None = None
    """An aware datetime; wins over ``delay``."""
    depends_on: tuple[str, ...] = ()
    on_dependency_failure: DependencyPolicy | None = None
    idempotency_key: str | None = None
    idempotency_for: float = 86400.0
    unique_key: str | None = None
    unique_for: float | None = None
    tags: tuple[str, ...] = ()
    connection: object | None = None
    """A database connection whose transaction the enqueue joins (SQLite)."""
    conditions: tuple[Condition, ...] = ()
    """Checked before the run, on top of the task's (stored with the job)."""

    def __post_init__(self) -> None:
        if self.queue is not None:
            validation.queue_name(self.queue)
        if self.priority is not None:
            object.__setattr__(self, "priority", validation.priority(self.priority))
        if self.max_attempts is not None:
            validation.max_attempts(self.max_attempts)
        validation.seconds(self.timeout, "timeout")
        validation.seconds(self.delay, "delay", positive=False)
        if self.run_at is not None:
            if not isinstance(self.run_at, datetime):
                raise InvalidOption("run_at", "must be a datetime with a time zone")
            if self.run_at.tzinfo is None or self.run_at.utcoffset() is None:
                raise InvalidOption(
                    "run_at", "naive datetime; attach a time zone, e.g. datetime.now(timezone.utc)"
                )
        deps = self.depends_on
        if isinstance(deps, str) or not all(isinstance(d, str) and d for d in deps):
            raise InvalidOption("depends_on", "must be a list of job ids")
        object.__setattr__(self, "depends_on", tuple(dict.fromkeys(deps)))
        if self.on_dependency_failure is not None:
            try:
                object.__setattr__(
                    self, "on_dependency_failure", DependencyPolicy(self.on_dependency_failure)
                )
            except ValueError as exc:
                raise InvalidOption("on_dependency_failure", "must be 'fail' or 'cancel'") from exc
        validation.key(self.idempotency_key, "idempotency_key")
        validation.key(self.unique_key, "unique_key")
        validation.seconds(self.idempotency_for, "idempotency_for")
        validation.seconds(self.unique_for, "unique_for")
        object.__setattr__(self, "tags", validation.tags(self.tags))
        object.__setattr__(self, "conditions", _checked_conditions(self.conditions))

    def merged(self, **changes: Any) -> JobOptions:
        """A copy with ``changes`` applied (validated); unknown names are refused."""
        check_option_names(changes)
        for name in ("depends_on", "tags", "conditions"):
            value = changes.get(name)
            if value is None and name in changes:
                changes[name] = ()
            elif value is not None and not isinstance(value, str):
                changes[name] = tuple(value)
        return dataclasses.replace(self, **changes)

    def due_at(self, now: float) -> float | None:
        """The absolute due time, or None for "now"."""
        if self.run_at is not None:
            ts = self.run_at.timestamp()
            if not math.isfinite(ts):
                raise InvalidOption("run_at", "is not a valid time")
            return ts if ts > now else None
        if self.delay is not None and self.delay > 0:
            return now + self.delay
        return None


JOB_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(JobOptions))


def check_option_names(options: dict[str, Any], task: Task[Any, Any] | None = None) -> None:
    """Refuse unknown option names, suggesting the closest known one (or, when the name
    is a parameter of ``task``, saying that arguments go to ``enqueue``)."""
    for name in options:
        if name in JOB_OPTION_NAMES:
            continue
        if task is not None and task.signature is not None and name in task.signature.parameters:
            raise InvalidOption(
                name,
                f"unknown option; {name!r} is an argument of {task.name}: pass it to "
                f".enqueue({name}=...), and options to .with_options(...)",
            )
        close = difflib.get_close_matches(name, sorted(JOB_OPTION_NAMES), n=1)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else "options are " + ", ".join(sorted(JOB_OPTION_NAMES))
        )
        raise InvalidOption(name, f"unknown option; {hint}")
