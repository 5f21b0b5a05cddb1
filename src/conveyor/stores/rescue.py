"""What becomes of a job whose lease expired: one decision for every driver."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.job import FailureReason, JobError, JobState, check_transition
from conveyor.stores.base import RescueParams


@dataclass(frozen=True, slots=True)
class RescueDecision:
    """The new state, the reason when failed, the error to append and the bumped count."""

    target: JobState
    reason: str | None
    error: JobError
    rescues: int
    retry_at: float | None
    """When the job runs again (None when it goes to the DLQ)."""


def decide_rescue(
    job_id: str,
    *,
    attempt: int,
    max_attempts: int,
    rescue_count: int,
    worker_id: str | None,
    started_at: float | None,
    params: RescueParams,
    now: float,
) -> RescueDecision:
    """``poison`` when rescues reach ``max_rescues``, ``exhausted`` with no attempt left,
    else ``retrying`` after ``retry_delay``; always a ``LeaseExpired`` error."""
    rescues = rescue_count + 1
    reason: str | None = None
    if rescues >= params.max_rescues:
        reason = FailureReason.POISON.value
    elif attempt >= max_attempts:
        reason = FailureReason.EXHAUSTED.value
    target = JobState.FAILED if reason else JobState.RETRYING
    check_transition(job_id, JobState.PROCESSING, target)
    error = JobError(
        attempt=attempt,
        type="LeaseExpired",
        message=f"lease of worker {worker_id} expired (crashed or stalled)",
        worker_id=worker_id or "",
        started_at=started_at,
        failed_at=now,
    )
    return RescueDecision(
        target, reason, error, rescues, None if reason else now + params.retry_delay
    )
