"""Jobs as plain, JSON-ready data (``conveyor jobs show --json``, exports)."""

from __future__ import annotations

from conveyor.admin.times import iso
from conveyor.app import App
from conveyor.coordination.decisions import read_decisions
from conveyor.errors import CorruptPayload
from conveyor.job import Job, JobError


def error_to_dict(error: JobError) -> dict[str, object]:
    """One failed attempt, with ISO-8601 times."""
    return {
        **error.to_dict(),
        "started_at": iso(error.started_at),
        "failed_at": iso(error.failed_at),
    }


def job_to_dict(app: App, job: Job, *, decode: bool = True) -> dict[str, object]:
    """Everything about a job as JSON-ready data; never raises for a bad payload.

    With ``decode``, ``args``/``kwargs`` (and ``result``) are decoded; a frame that
    fails its checks shows as ``"payload": "<corrupt: …>"`` instead.
    """
    data: dict[str, object] = {
        "id": job.id,
        "queue": job.queue,
        "task": job.task,
        "state": job.state.value,
        "priority": job.priority,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "run_at": iso(job.run_at),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "heartbeat_at": iso(job.heartbeat_at),
        "lease_expires_at": iso(job.lease_expires_at),
        "worker_id": job.worker_id,
        "timeout": job.timeout,
        "tags": list(job.tags),
        "depends_on": list(job.depends_on),
        "blocked_by": job.blocked_by,
        "parent_id": job.parent_id,
        "unique_key": job.unique_key,
        "idempotency_key": job.idempotency_key,
        "cancel_requested": job.cancel_requested,
        "failure_reason": job.failure_reason,
        "errors": [error_to_dict(e) for e in job.errors],
        "attempts": [
            {
                "attempt": a.attempt,
                "worker_id": a.worker_id,
                "started_at": iso(a.started_at),
                "finished_at": iso(a.finished_at),
                "outcome": a.outcome,
                "error": f"{a.error.type}: {a.error.message}" if a.error else None,
            }
            for a in job.attempts
        ],
    }
    if decode:
        try:
            payload = app.decode_payload(job)
        except CorruptPayload as exc:
            data["payload"] = f"<corrupt: {exc}>"
        else:
            data["args"] = payload.args
            data["kwargs"] = payload.kwargs
            if payload.piped_from is not None:
                data["piped_from"] = payload.piped_from
            if payload.conditions:
                data["conditions"] = list(payload.conditions)
        try:
            data["result"] = app.decode_result(job)
        except CorruptPayload as exc:
            data["result"] = f"<corrupt: {exc}>"
        data["decisions"] = [
            {**d.to_json(), "at": iso(d.at)} for d in read_decisions(app.store, job.id)
        ]
    return data
