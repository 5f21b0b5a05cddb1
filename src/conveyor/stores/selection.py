"""Pure helpers that every driver shares: id lists, search filters.

The memory store is the reference; drivers that filter or order in Python (Redis,
File) use the same functions, so their semantics cannot drift from it.
"""

from __future__ import annotations

from collections.abc import Iterable

from conveyor.job import Job, Lease
from conveyor.stores.base import SEARCH_LIMIT_MAX, JobQuery


def unique_ids(job_ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(job_ids))


def distinct_leases(leases: Iterable[Lease]) -> list[Lease]:
    """Each (job, token) once, in first-seen order: a heartbeat reports every job at most
    once in each of its lists, however often the caller passed its lease."""
    seen: set[tuple[str, str]] = set()
    distinct: list[Lease] = []
    for lease in leases:
        key = (lease.job_id, lease.token)
        if key not in seen:
            seen.add(key)
            distinct.append(lease)
    return distinct


def page_bounds(query: JobQuery) -> tuple[int, int]:
    if query.limit < 0 or query.offset < 0:
        raise ValueError("limit and offset must not be negative")
    return min(query.limit, SEARCH_LIMIT_MAX), query.offset


def matches(job: Job, q: JobQuery) -> bool:
    if q.ids is not None and job.id not in q.ids:
        return False
    if q.states is not None and job.state not in q.states:
        return False
    if q.queues is not None and job.queue not in q.queues:
        return False
    if q.tasks is not None and job.task not in q.tasks:
        return False
    if q.tag is not None and q.tag not in job.tags:
        return False
    if q.since is not None and job.created_at < q.since:
        return False
    if q.until is not None and job.created_at >= q.until:
        return False
    if q.text:
        needle = q.text.lower()
        haystack = [job.id, job.task, job.queue, job.failure_reason or ""]
        haystack.extend(e.message for e in job.errors)
        if not any(needle in h.lower() for h in haystack):
            return False
    return True
