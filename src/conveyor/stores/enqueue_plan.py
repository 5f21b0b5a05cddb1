"""The driver-independent part of an SQL driver's enqueue: what each job of a batch becomes.

SQLite and PostgreSQL look duplicates and dependency states up with their own SQL, then
share these decisions, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from conveyor.errors import DependencyCycle, UnknownDependency
from conveyor.job import DependencyPolicy, JobState, NewJob, find_cycle

S = JobState

ENDED_BADLY: Final = (S.FAILED, S.CANCELLED)
"""Dependency states that apply the dependent's failure policy."""


class EnqueuePlan:
    """Decisions for one batch: duplicates, known job states and the new jobs' states."""

    def __init__(self, jobs: Sequence[NewJob]) -> None:
        self.batch_ids = {job.id for job in jobs}
        self.duplicate_of: dict[int, str] = {}
        self.duplicate_ids: dict[str, str] = {}
        self.known: dict[str, JobState | None] = {}
        self.planned: dict[str, JobState] = {}
        self.seen_unique: dict[str, str] = {}
        self.seen_idempotency: dict[str, tuple[str, str]] = {}

    def resolve(self, dep: str) -> str:
        """A dependency on a batch job that turned out a duplicate means its holder."""
        return self.duplicate_ids.get(dep, dep)

    def state(self, job_id: str) -> JobState | None:
        """Planned state of a new job, else the stored state (None: gone)."""
        planned = self.planned.get(job_id)
        return planned if planned is not None else self.known.get(job_id)


def has_keys(job: NewJob) -> bool:
    return bool(job.unique_key or job.idempotency_key)


def dependency_order(fresh: list[NewJob], plan: EnqueuePlan) -> list[NewJob]:
    """New jobs ordered so that each comes after the new jobs it depends on.

    The batch may name later jobs; redirecting duplicates to their holders can close a
    cycle that ``check_no_cycle`` could not see, so it is checked again here.
    """
    by_id = {job.id: job for job in fresh}
    edges = {
        job.id: [d for d in map(plan.resolve, job.depends_on) if d in by_id]
        for job in fresh
        if job.depends_on
    }
    if not edges:
        return fresh
    cycle = find_cycle(edges)
    if cycle:
        raise DependencyCycle(cycle)
    order: list[NewJob] = []
    visited: set[str] = set()
    for root in by_id:
        if root in visited:
            continue
        visited.add(root)
        stack = [(root, iter(edges.get(root, ())))]
        while stack:
            node, pending = stack[-1]
            nxt = next((d for d in pending if d not in visited), None)
            if nxt is None:
                order.append(by_id[node])
                stack.pop()
            else:
                visited.add(nxt)
                stack.append((nxt, iter(edges.get(nxt, ()))))
    return order


def initial_state(job: NewJob, now: float, plan: EnqueuePlan) -> JobState:
    """blocked / scheduled / pending, or the dependency policy if a dependency ended badly."""
    if job.depends_on:
        states = [plan.state(plan.resolve(d)) for d in job.depends_on]
        for dep, state in zip(job.depends_on, states, strict=True):
            if state is None:
                raise UnknownDependency(dep)
        if any(state in ENDED_BADLY for state in states):
            if job.on_dependency_failure is DependencyPolicy.FAIL:
                return S.FAILED
            return S.CANCELLED
        if any(state is not S.COMPLETED for state in states):
            return S.BLOCKED
    if job.run_at is not None and job.run_at > now:
        return S.SCHEDULED
    return S.PENDING
