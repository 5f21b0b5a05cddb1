"""The running job's context, visible to its handler through :func:`current_job`.

A ``ContextVar`` is the one piece of ambient state Conveyor uses, and only inside
a running handler (STYLE.md rule 5).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from conveyor.errors import ConveyorError


@dataclass(slots=True)
class JobContext:
    """What a handler may want to know about its own run."""

    job_id: str
    task: str
    queue: str
    attempt: int
    max_attempts: int
    worker_id: str
    tags: tuple[str, ...] = ()
    cancel_requested: bool = False
    """Set from the heartbeat thread (a plain flag: cheaper than an Event per job)."""

    @property
    def cancelled(self) -> bool:
        """True once someone asked this job to stop; the handler should wrap up and
        ``raise conveyor.Cancel()`` (or just return)."""
        return self.cancel_requested


_current: ContextVar[JobContext | None] = ContextVar("conveyor_current_job", default=None)


def current_job() -> JobContext:
    """The context of the job whose handler is running now."""
    ctx = _current.get()
    if ctx is None:
        raise ConveyorError("current_job() is only available inside a running job")
    return ctx


def set_current(ctx: JobContext | None) -> object:
    """Make ``ctx`` current; returns a token for :func:`reset_current`."""
    return _current.set(ctx)


def reset_current(token: object) -> None:
    """Undo :func:`set_current`."""
    _current.reset(token)  # type: ignore[arg-type]
