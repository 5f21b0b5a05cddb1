"""Middleware: ``call_next`` onions around enqueue and execution."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from conveyor.context import JobContext
    from conveyor.job import EnqueueResult, NewJob


class ExecuteMiddleware(Protocol):
    """Wraps a job's run: call ``call_next()`` to run the handler (or not, to skip it)."""

    def __call__(self, ctx: JobContext, call_next: Callable[[], object]) -> object:
        """Return the result (usually ``call_next()``'s)."""
        ...


class EnqueueMiddleware(Protocol):
    """Wraps an enqueue: may change the jobs (return new ones) or raise to refuse them."""

    def __call__(
        self, jobs: Sequence[NewJob], call_next: Callable[[Sequence[NewJob]], list[EnqueueResult]]
    ) -> list[EnqueueResult]:
        """Return one result per job (usually ``call_next(jobs)``'s)."""
        ...


def compose_execute(
    middleware: Sequence[ExecuteMiddleware], ctx: JobContext, handler: Callable[[], object]
) -> Callable[[], object]:
    """Nest ``middleware`` around ``handler``; the first listed is outermost."""
    call = handler
    for layer in reversed(middleware):
        call = _bind_execute(layer, ctx, call)
    return call


def _bind_execute(
    layer: ExecuteMiddleware, ctx: JobContext, call_next: Callable[[], object]
) -> Callable[[], object]:
    return lambda: layer(ctx, call_next)


def compose_enqueue(
    middleware: Sequence[EnqueueMiddleware],
    store_call: Callable[[Sequence[NewJob]], list[EnqueueResult]],
) -> Callable[[Sequence[NewJob]], list[EnqueueResult]]:
    """Nest ``middleware`` around the store call; the first listed is outermost."""
    call = store_call
    for layer in reversed(middleware):
        call = _bind_enqueue(layer, call)
    return call


def _bind_enqueue(
    layer: EnqueueMiddleware, call_next: Callable[[Sequence[NewJob]], list[EnqueueResult]]
) -> Callable[[Sequence[NewJob]], list[EnqueueResult]]:
    return lambda jobs: layer(jobs, call_next)
