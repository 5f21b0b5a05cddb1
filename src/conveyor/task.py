"""Tasks: registered handlers, their default options, and per-enqueue options."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from conveyor.bulk import enqueue_calls
from conveyor.errors import InvalidOption
from conveyor.options import (
    JOB_OPTION_NAMES,
    JobOptions,
    TaskOptions,
    check_option_names,
)
from conveyor.workflow import Signature

if TYPE_CHECKING:
    from conveyor.handles import JobHandle
    from conveyor.runtime import Producer

__all__ = [
    "JOB_OPTION_NAMES",
    "JobOptions",
    "Task",
    "TaskOptions",
    "check_option_names",
    "explain_mismatch",
    "parameters_text",
]

P = ParamSpec("P")
R = TypeVar("R")


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

    app: Producer
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
        return enqueue_calls(self, calls)

    def with_options(self, **options: Any) -> Task[P, R]:
        """The same task with per-enqueue options (``delay``, ``priority``, ``queue`` …)."""
        check_option_names(options, self)
        return dataclasses.replace(self, job_options=self.job_options.merged(**options))

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature (task + arguments) for chains and batches."""
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
