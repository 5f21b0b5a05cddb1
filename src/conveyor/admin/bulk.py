"""Selecting the jobs a bulk operation (retry, cancel, purge, prioritize, move) acts on.

The operations themselves are App methods backed by :mod:`conveyor.job_controls`,
which reports every skipped id with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from conveyor import job_controls
from conveyor.job import JobState
from conveyor.stores.base import JobQuery

RETRYABLE_STATES: tuple[JobState, ...] = (JobState.FAILED, JobState.CANCELLED)
"""States a manual retry moves back to pending."""

CANCELLABLE_STATES: tuple[JobState, ...] = (
    JobState.PENDING,
    JobState.SCHEDULED,
    JobState.PROCESSING,
    JobState.RETRYING,
    JobState.BLOCKED,
)
"""States a cancel acts on."""


def job_query(
    *,
    ids: Sequence[str] | None = None,
    states: Iterable[str | JobState] | None = None,
    queues: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    tag: str | None = None,
    since: float | None = None,
    until: float | None = None,
    text: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> JobQuery:
    """A :class:`JobQuery`; empty sequences mean "no filter".

    Raises:
        ValueError: A state name is unknown.
    """
    state_list = [JobState(s) for s in states] if states else None
    return JobQuery(
        ids=list(ids) if ids else None,
        states=state_list,
        queues=list(queues) if queues else None,
        tasks=list(tasks) if tasks else None,
        tag=tag or None,
        since=since,
        until=until,
        text=text or None,
        limit=limit,
        offset=offset,
    )


def dlq_query(
    *,
    queue: str | None = None,
    task: str | None = None,
    ids: Sequence[str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> JobQuery:
    """Jobs in the dead-letter queue (state ``failed``), optionally of one queue or task."""
    return job_query(
        ids=ids,
        states=[JobState.FAILED],
        queues=[queue] if queue else None,
        tasks=[task] if task else None,
        limit=limit,
        offset=offset,
    )


select_ids = job_controls.select_ids
"""Ids of every job matching a query, oldest first (see :func:`job_controls.select_ids`)."""
