"""What enqueue returns and what reading a job gives: a handle, and the job decoded.

Both need only a :class:`~conveyor.runtime.Runtime` (the store and the codec), so the
task, the bulk enqueue and the app all build them without importing one another.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from conveyor import validation
from conveyor.coordination.decisions import DecisionEntry, read_decisions
from conveyor.errors import JobNotFound, WaitTimeout
from conveyor.job import Job, JobError, JobState
from conveyor.payloads import Payload
from conveyor.runtime import Runtime

__all__ = ["JobHandle", "JobInfo", "read_job"]


class JobInfo:
    """A stored job with its payload and result decoded on demand."""

    def __init__(self, app: Runtime, job: Job) -> None:
        self.app = app
        self.job = job

    def __repr__(self) -> str:
        return f"<JobInfo {self.job.id} {self.job.task} {self.job.state.value}>"

    @property
    def id(self) -> str:
        """The job id."""
        return self.job.id

    @property
    def state(self) -> JobState:
        """Current state (as of when this object was read)."""
        return self.job.state

    @property
    def result(self) -> Any:
        """The handler's return value (None until completed)."""
        return self.app.decode_result(self.job)

    @property
    def attempts(self) -> list[Any]:
        """Attempt history (see :attr:`conveyor.job.Job.attempts`)."""
        return self.job.attempts

    @property
    def errors(self) -> tuple[JobError, ...]:
        """One entry per failed attempt."""
        return self.job.errors

    @property
    def failure_reason(self) -> str | None:
        """Why the job is in the DLQ or cancelled."""
        return self.job.failure_reason

    def payload(self) -> Payload:
        """Decoded arguments (raises CorruptPayload if the stored frame is bad)."""
        return self.app.decode_payload(self.job)

    @property
    def decisions(self) -> list[DecisionEntry]:
        """What conditions and limits decided before runs (deferred, skipped), oldest first."""
        return read_decisions(self.app.store, self.job.id)


def read_job(app: Runtime, job_id: str) -> JobInfo:
    """The job with that id (:class:`JobNotFound` if there is none)."""
    job = app.store.get(job_id)
    if job is None:
        raise JobNotFound(job_id)
    return JobInfo(app, job)


@dataclass(frozen=True, slots=True)
class JobHandle:
    """What enqueue returns: the job id, and whether an existing job was returned."""

    app: Runtime
    id: str
    duplicate: bool = False

    def get(self) -> JobInfo:
        """Read the job now."""
        return read_job(self.app, self.id)

    @property
    def state(self) -> JobState:
        """The job's state right now."""
        return self.get().state

    def wait(self, timeout: float | None = 30.0, interval: float = 0.01) -> JobInfo:
        """Poll until the job is terminal (completed, failed or cancelled) and return it;
        ``timeout=None`` waits as long as it takes.

        Raises:
            WaitTimeout: (a ``TimeoutError``) the job is not terminal after ``timeout``
                seconds; it names the job, its state and the timeout. The job is
                unaffected.
        """
        validation.seconds(timeout, "timeout", positive=False)
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        info = self.get()
        while not info.job.is_terminal:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(self.id, info.state.value, timeout or 0.0)
            time.sleep(min(interval, left))
            interval = min(interval * 1.5, 0.25)
            info = self.get()
        return info
