"""Retry policies and the one decision: retry when, or fail with which reason.

Policies are pure: ``delay(attempt)`` returns seconds (attempt counts from 1, the
attempt that just failed). Jitter takes a ``random.Random`` so tests can fix it.
:func:`after_failure` is the decision for a job, used both by the executor (a run
that raised) and by the supervisor (a child that died, was OOM-killed or timed out).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from conveyor.errors import InvalidOption, Retry, UnknownTask
from conveyor.job import FailureReason, Job

MAX_DELAY = 365 * 86400.0


class RetryPolicy(Protocol):
    """How long to wait before the next attempt."""

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ...


def _check(name: str, value: float, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidOption(name, f"must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidOption(name, f"must not be negative, got {value!r}")
    return float(value)


def _check_fields(policy: object, *names: str) -> None:
    """:func:`_check` each named field of ``policy``, in order (the first bad one is named)."""
    for name in names:
        _check(f"retry.{name}", getattr(policy, name))


@dataclass(frozen=True, slots=True)
class Exponential:
    """``min(cap, base * factor**(attempt-1))``, spread by ``±jitter`` (a fraction)."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        _check_fields(self, "base", "factor", "cap", "jitter")
        if not 0 <= self.jitter <= 1:
            raise InvalidOption("retry.jitter", "must be between 0 and 1")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential growth, capped before it can overflow."""
        exponent = min(max(attempt - 1, 0), 64)
        raw = min(self.cap, self.base * self.factor**exponent)
        return _spread(raw, self.jitter, rng)


@dataclass(frozen=True, slots=True)
class Fixed:
    """The same delay every time (with optional jitter)."""

    seconds: float = 10.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        _check_fields(self, "seconds", "jitter")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Constant delay."""
        return _spread(self.seconds, self.jitter, rng)


@dataclass(frozen=True, slots=True)
class Linear:
    """``min(cap, step * attempt)``."""

    step: float = 10.0
    cap: float = 3600.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        _check_fields(self, "step", "cap", "jitter")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Linear growth, capped."""
        return _spread(min(self.cap, self.step * max(attempt, 1)), self.jitter, rng)


@dataclass(frozen=True, slots=True)
class Custom:
    """Any function ``attempt -> seconds``."""

    function: Callable[[int], float]

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Whatever the function says, clamped to 0..one year."""
        return min(max(float(self.function(attempt)), 0.0), MAX_DELAY)


def _spread(value: float, jitter: float, rng: random.Random) -> float:
    if jitter <= 0:
        return value
    return max(0.0, value * (1 + rng.uniform(-jitter, jitter)))


DEFAULT_POLICY = Exponential()


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """``retry_at`` set: try again then; otherwise fail with ``reason``."""

    retry_at: float | None
    reason: FailureReason | None


def decide(
    error: BaseException,
    *,
    attempt: int,
    max_attempts: int,
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...],
    now: float,
    rng: random.Random,
) -> RetryDecision:
    """Decide what follows a failed attempt.

    ``Retry`` always asks for another attempt (its own delay, else the policy's);
    other errors are retried only when they are one of ``retry_on``. Either way no
    attempt is made past ``max_attempts``.
    """
    if not isinstance(error, Retry) and not isinstance(error, retry_on):
        return RetryDecision(None, FailureReason.NOT_RETRYABLE)
    if attempt >= max_attempts:
        return RetryDecision(None, FailureReason.EXHAUSTED)
    if isinstance(error, Retry) and error.delay is not None:
        wait = min(max(float(error.delay), 0.0), MAX_DELAY)
    else:
        wait = policy.delay(attempt, rng)
    return RetryDecision(now + wait, None)


class RetrySettings(Protocol):
    """What a task says about retries (:class:`~conveyor.task.TaskOptions` has both)."""

    @property
    def retry(self) -> RetryPolicy:
        """How long to wait before the next attempt."""
        ...

    @property
    def retry_on(self) -> tuple[type[BaseException], ...]:
        """Errors worth another attempt."""
        ...


UNKNOWN_TASK_RETRY_ON: tuple[type[BaseException], ...] = (UnknownTask,)
"""What a job of a task this process does not know retries on: only that, so a worker
that has the task (after a deploy) can still run it."""


def after_failure(
    error: BaseException,
    job: Job,
    options: RetrySettings | None,
    *,
    now: float,
    rng: random.Random,
    exhausted: FailureReason = FailureReason.EXHAUSTED,
) -> RetryDecision:
    """What follows a failed attempt of ``job``: :func:`decide` under its task's options.

    ``options`` None (the task is unknown here) means the default policy, retrying only
    :class:`UnknownTask`. ``exhausted`` names the failure when attempts run out (the
    supervisor says ``poison`` for a job whose process died).
    """
    decision = decide(
        error,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        policy=options.retry if options is not None else DEFAULT_POLICY,
        retry_on=options.retry_on if options is not None else UNKNOWN_TASK_RETRY_ON,
        now=now,
        rng=rng,
    )
    if decision.reason is FailureReason.EXHAUSTED:
        return RetryDecision(None, exhausted)
    return decision
