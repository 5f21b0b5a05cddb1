"""Synchronous jobs: claim one specific job and run it here, now, recorded in the store."""

from __future__ import annotations

import os
from typing import Any

from conveyor.errors import ConveyorError, LeaseLost
from conveyor.job import FailureReason
from conveyor.runtime import Runtime
from conveyor.stores.base import ClaimParams, Completion
from conveyor.worker.executor import Executor, Kind


def run_now(app: Runtime, job_id: str) -> Any:
    """Run the pending job ``job_id`` in this process; return its result or raise.

    One attempt: a failure goes to the DLQ (reason ``not_retryable``) and the
    handler's exception is raised to the caller, who can decide to retry.
    """
    worker_id = f"sync:{os.getpid()}"
    leases = app.store.claim(
        ClaimParams(queues=(), worker_id=worker_id, limit=1, job_ids=[job_id], lease_for=3600.0)
    )
    if not leases:
        job = app.store.get(job_id)
        state = job.state.value if job else "missing"
        raise ConveyorError(f"job {job_id} is {state}, not pending; it cannot run now")
    lease = leases[0]
    executor = Executor(app, worker_id)
    try:
        outcome = executor.run(lease)
    finally:
        executor.close()
    if outcome.kind is Kind.COMPLETED:
        if app.store.complete([Completion(lease, outcome.result)]):
            raise LeaseLost(job_id)
        return outcome.value
    if outcome.kind is Kind.CANCELLED:
        app.store.finish_cancelled(lease)
        raise ConveyorError(f"job {job_id} was cancelled")
    if outcome.kind is Kind.RELEASED:
        app.store.release(lease)
        raise ConveyorError(f"job {job_id} was interrupted and released")
    assert outcome.error is not None
    reason = outcome.reason if outcome.kind is Kind.FAILED else FailureReason.NOT_RETRYABLE
    app.store.fail(lease, outcome.error, retry_at=None, reason=reason)
    assert outcome.exception is not None
    raise outcome.exception
