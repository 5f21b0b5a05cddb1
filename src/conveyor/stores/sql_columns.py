"""The columns of a job row, in the order the SQL drivers (SQLite, PostgreSQL) use."""

from __future__ import annotations

from typing import Final

JOB_COLUMNS: Final = (
    "id",
    "queue",
    "task",
    "payload",
    "state",
    "priority",
    "attempt",
    "max_attempts",
    "run_at",
    "timeout",
    "lease_token",
    "lease_expires_at",
    "worker_id",
    "depends_on",
    "blocked_by",
    "on_dependency_failure",
    "parent_id",
    "tags",
    "unique_key",
    "idempotency_key",
    "task_version",
    "result",
    "errors",
    "failure_reason",
    "rescue_count",
    "cancel_requested",
    "created_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
)
