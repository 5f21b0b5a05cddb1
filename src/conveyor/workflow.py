"""Signatures and chains: jobs linked by dependencies, results flowing forward."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidOption
from conveyor.options import JobOptions, check_option_names

if TYPE_CHECKING:
    from conveyor.handles import JobHandle
    from conveyor.runtime import Producer
    from conveyor.task import Task


@dataclass(frozen=True, slots=True)
class Signature:
    """A task with its arguments and options, not yet enqueued."""

    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: JobOptions

    def with_options(self, **options: Any) -> Signature:
        """The same call with more options."""
        check_option_names(options, self.task)
        return Signature(self.task, self.args, self.kwargs, self.options.merged(**options))

    def enqueue(self) -> JobHandle:
        """Enqueue this one call."""
        return self.task.app.enqueue_task(self.task, self.args, self.kwargs, self.options)


@dataclass(frozen=True, slots=True)
class ChainHandle:
    """The jobs of an enqueued chain, first to last."""

    handles: list[JobHandle]

    @property
    def ids(self) -> list[str]:
        """Job ids, in chain order."""
        return [h.id for h in self.handles]

    @property
    def last(self) -> JobHandle:
        """The last job: its result is the chain's result."""
        return self.handles[-1]


class Chain:
    """Run signatures one after another; each result becomes the next one's first argument.

    The whole chain is stored in one atomic enqueue: job ``n+1`` depends on job
    ``n``, so it runs only after ``n`` completes, and a failure fails (or cancels,
    per option) the rest.
    """

    def __init__(self, app: Producer, signatures: Sequence[Signature]) -> None:
        if not signatures:
            raise InvalidOption("chain", "needs at least one signature")
        for sig in signatures:
            if not isinstance(sig, Signature):
                raise InvalidOption("chain", f"expected task.s(...) signatures, got {sig!r}")
        self.app = app
        self.signatures = list(signatures)

    def enqueue(self) -> ChainHandle:
        """Store every job of the chain at once."""
        return ChainHandle(self.app.enqueue_chain(self.signatures))
