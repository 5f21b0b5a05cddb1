"""Tasks: registered handlers, their default options, and per-enqueue options."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from conveyor import validation
from conveyor.coordination.limits import Limit, check_limits
from conveyor.errors import InvalidOption
from conveyor.job import DependencyPolicy
from conveyor.retry import DEFAULT_POLICY, RetryPolicy
from conveyor.sizes import memory_limit

if TYPE_CHECKING:
    from conveyor.app import App, JobHandle
    from conveyor.conditions import Condition
    from conveyor.workflow import Signature

P = ParamSpec("P")
R = TypeVar("R")


def _checked_conditions(conditions: object) -> tuple[Condition, ...]:
    """Validated conditions; the module is loaded only by tasks and jobs that have some."""
    if conditions == ():
        return ()
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


def _positional_bounds(signature: inspect.Signature | None) -> tuple[int, float] | None:
    """How many positional arguments a call without keywords may pass, when that alone
    decides whether the call binds (None: a required keyword-only parameter)."""
    if signature is None:
        return None
    fewest, most = 0, 0.0
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            most += 1
            if parameter.default is parameter.empty:
                fewest += 1
        elif parameter.kind is parameter.VAR_POSITIONAL:
            most = math.inf
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            return None
    return fewest, most


def parameters_text(signature: inspect.Signature) -> str:
    """The parameter list as a user wrote it, without annotations: ``(a, b=1, *, c)``."""
    bare = [p.replace(annotation=p.empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=bare, return_annotation=signature.empty))


def explain_mismatch(
    signature: inspect.Signature, given: int, kwargs: dict[str, object], piped: bool
) -> str:
    """Why a call with ``given`` positional arguments and ``kwargs`` does not fit
    ``signature``, most telling reason first (inspect's bind reports a missing
    argument before an unexpected keyword, which hides a typo). Empty: no reason found.
    """
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    by_keyword = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        for name in kwargs:
            if name in by_keyword:
                continue
            if any(p.name == name for p in positional):
                return f"argument {name!r} is positional-only; pass it by position"
            close = difflib.get_close_matches(name, sorted(by_keyword), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"unexpected keyword argument {name!r}{hint}"
    if given > len(positional) and not any(p.kind is p.VAR_POSITIONAL for p in params):
        chained = " (one of them is the previous job's result in the chain)" if piped else ""
        return (
            f"too many positional arguments: takes at most {len(positional)}, got {given}{chained}"
        )
    for p in positional[:given]:
        if p.name in kwargs and p.kind is p.POSITIONAL_OR_KEYWORD:
            return f"got multiple values for argument {p.name!r} (by position and by keyword)"
    missing = [
        p.name
        for p in [*positional[given:], *(p for p in params if p.kind is p.KEYWORD_ONLY)]
        if p.default is p.empty and p.name not in kwargs
    ]
    if len(missing) == 1:
        return f"missing a required argument: {missing[0]!r}"
    if missing:
        return "missing required arguments: " + ", ".join(repr(m) for m in missing)
    return ""


@dataclass(frozen=True, slots=True)
class Task(Generic[P, R]):
    """A registered handler. Call it to run the function directly; ``enqueue`` to queue it."""

    app: App
    name: str
    fn: Callable[P, R]
    options: TaskOptions
    job_options: JobOptions = field(default_factory=JobOptions)
    is_async: bool = False
    signature: inspect.Signature | None = None
    positional: tuple[int, float] | None = field(default=None, init=False, compare=False)
    """(fewest, most) positional arguments when a call passes no keywords, or None."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "positional", _positional_bounds(self.signature))

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function in-process, without a job record."""
        return self.fn(*args, **kwargs)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Store a job for a worker to run; returns its handle (``.id``)."""
        return self.app.enqueue_task(self, args, kwargs, self.job_options)

    def enqueue_many(self, calls: Iterable[object]) -> list[JobHandle]:
        """Store one job per call, atomically, and return their handles in order.

        Each call is a tuple of positional arguments, ``(1, 2)``, or an ``(args,
        kwargs)`` pair, ``((1,), {"b": 2})`` (the exact rule: :mod:`conveyor.bulk`).
        One bad call refuses the whole batch; nothing is stored then.
        """
        from conveyor.bulk import enqueue_calls

        return enqueue_calls(self, calls)

    def with_options(self, **options: Any) -> Task[P, R]:
        """The same task with per-enqueue options (``delay``, ``priority``, ``queue`` …)."""
        check_option_names(options, self)
        return dataclasses.replace(self, job_options=self.job_options.merged(**options))

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature (task + arguments) for chains and batches."""
        from conveyor.workflow import Signature

        return Signature(self, args, kwargs, self.job_options)

    def run_sync(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run now, in this process, as a recorded job; returns the result or raises."""
        result: R = self.app.run_sync(self, args, kwargs, self.job_options)
        return result

    def check_arguments(
        self, args: Sequence[object], kwargs: dict[str, object], piped: bool
    ) -> None:
        """Refuse arguments the handler's signature cannot take (``piped``: one more
        positional argument comes from the previous job in a chain)."""
        if self.signature is None:
            return
        bounds = self.positional
        if not kwargs and bounds is not None and bounds[0] <= len(args) + piped <= bounds[1]:
            return  # the common call, checked without inspect's (slow) bind
        try:
            if piped:
                self.signature.bind(None, *args, **kwargs)
            else:
                self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            reason = explain_mismatch(self.signature, len(args) + piped, kwargs, piped) or str(exc)
            shown = parameters_text(self.signature)
            raise InvalidOption("arguments", f"{self.name}: {reason}; it takes {shown}") from exc
