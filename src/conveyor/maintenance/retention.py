"""How long finished jobs are kept: the ``retention_*`` settings, parsed once.

A retention is a duration (``45s``, ``30m``, ``12h``, ``1d``, ``2w``) or ``forever``.
``0`` is refused rather than guessed: it could mean "delete at once" or "keep".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.durations import parse_duration
from conveyor.errors import ConfigurationError
from conveyor.job import JobState

if TYPE_CHECKING:
    from conveyor.config import WorkerSettings

FOREVER = "forever"
"""The spelling that keeps a state's jobs until they are deleted by hand."""


def parse_retention(text: str, name: str = "retention") -> float | None:
    """Seconds to keep finished jobs, or None for ``forever``.

    Raises:
        ConfigurationError: ``text`` is neither a positive duration nor ``forever``.
    """
    cleaned = str(text).strip().lower()
    if cleaned == FOREVER:
        return None
    try:
        seconds = parse_duration(cleaned)
    except ValueError:
        raise ConfigurationError(
            f"{name}: {text!r} is not a retention; use a duration such as 45s, 30m, 12h, 1d, "
            f"2w, or {FOREVER!r} to keep jobs until deleted by hand"
        ) from None
    if seconds <= 0:
        raise ConfigurationError(
            f"{name}: {text!r} would delete jobs the moment they finish; use a positive "
            f"duration (e.g. 1m), or {FOREVER!r} to keep them"
        )
    return seconds


@dataclass(frozen=True, slots=True)
class Retention:
    """Seconds each terminal state is kept after it finished (None: forever)."""

    completed: float | None = 86400.0
    failed: float | None = 14 * 86400.0
    cancelled: float | None = 86400.0

    @classmethod
    def parse(
        cls, *, completed: str = "1d", failed: str = "14d", cancelled: str = "1d"
    ) -> Retention:
        """From setting texts (``1d``, ``forever``…); each error names its setting."""
        return cls(
            parse_retention(completed, "retention_completed"),
            parse_retention(failed, "retention_failed"),
            parse_retention(cancelled, "retention_cancelled"),
        )

    @classmethod
    def of(cls, settings: WorkerSettings) -> Retention:
        """The retention a worker with ``settings`` prunes by."""
        return cls.parse(
            completed=settings.retention_completed,
            failed=settings.retention_failed,
            cancelled=settings.retention_cancelled,
        )

    def as_dict(self) -> dict[str, str]:
        """Each state's retention as users write it (``1d``, ``forever``)."""
        return {state.value: describe(age) for state, age in self.ages()}

    def ages(self) -> tuple[tuple[JobState, float | None], ...]:
        """``(state, seconds)`` in the order a pass prunes them."""
        return (
            (JobState.COMPLETED, self.completed),
            (JobState.FAILED, self.failed),
            (JobState.CANCELLED, self.cancelled),
        )


def describe(seconds: float | None) -> str:
    """A retention as users write it (``1d``, ``36h``, ``forever``)."""
    if seconds is None:
        return FOREVER
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
