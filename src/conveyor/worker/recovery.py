"""What becomes of the job a worker child was running when its process died.

The supervisor knows the job's lease token from the child's shared slot, so it
settles the job at once instead of waiting for the lease to expire: the attempt is
recorded as failed, then retried or dead-lettered by :func:`conveyor.retry.after_failure`
(``poison`` when a job keeps killing its process; ``exhausted`` when the supervisor
itself stopped it for a hard timeout or its memory). Fencing makes this safe even if
the child managed to finish first: the late transition is refused.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

from conveyor.clock import Clock
from conveyor.errors import LeaseLost, Retry, StoreError
from conveyor.job import FailureReason, Job, JobError, JobState, Lease
from conveyor.retry import after_failure
from conveyor.stores.base import Store
from conveyor.task import Task
from conveyor.worker.slot import CurrentJob

log = logging.getLogger("conveyor.supervisor")

HARD_TIMEOUT = "hard timeout"
"""How the reason starts when the supervisor killed a child past its job's hard timeout."""

MEMORY_KILL = "memory limit: "
"""How the reason starts when the supervisor killed a child for its job's memory."""


def lost_error_type(killed: str) -> str:
    """The error type recorded for a job whose process was lost or killed for ``killed``."""
    if killed.startswith(HARD_TIMEOUT):
        return "HardTimeout"
    return "MemoryLimitExceeded" if killed.startswith(MEMORY_KILL) else "WorkerLost"


class Recovery:
    """Settles the running job of dead children (one per supervisor)."""

    def __init__(self, store: Store, tasks: Mapping[str, Task[Any, Any]], clock: Clock) -> None:
        self.store = store
        self.tasks = tasks
        self.clock = clock
        self.rng = random.Random()

    def recover(self, current: CurrentJob, *, worker_id: str, killed: str, why: str) -> bool:
        """Fail the dead child's attempt at ``current`` and retry or dead-letter the job.

        ``killed`` is why the supervisor killed the child (empty: it died on its own);
        ``why`` is the message recorded. False when the job was already settled
        elsewhere, or when the store cannot be reached (its lease will expire).
        """
        try:
            job = self.store.get(current.job_id)
            if job is None or job.state is not JobState.PROCESSING:
                return False
            if job.lease_token != current.token:
                return False
            self._fail(job, current.token, worker_id, killed, why)
        except LeaseLost:
            return False
        except StoreError as exc:
            log.warning(
                "could not recover job %s now (%s); its lease will expire", current.job_id, exc
            )
            return False
        log.warning("job %s recovered from worker %s: %s", job.id, worker_id, why)
        return True

    def _fail(self, job: Job, token: str, worker_id: str, killed: str, why: str) -> None:
        error = JobError(
            attempt=job.attempt,
            type=lost_error_type(killed),
            message=why,
            worker_id=worker_id,
            started_at=job.started_at,
            failed_at=self.clock.now(),
        )
        task = self.tasks.get(job.task)
        # a limit the supervisor enforces stopped the job, not a crash: that is no poison
        stopped = killed.startswith((HARD_TIMEOUT, MEMORY_KILL))
        decision = after_failure(
            Retry(),
            job,
            task.options if task else None,
            now=self.clock.now(),
            rng=self.rng,
            exhausted=FailureReason.EXHAUSTED if stopped else FailureReason.POISON,
        )
        lease = Lease(job, token, job.lease_expires_at or 0.0)
        self.store.fail(lease, error, retry_at=decision.retry_at, reason=decision.reason)
