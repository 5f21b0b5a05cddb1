"""The enqueue planner alone: a batch means its jobs enqueued one at a time, in plan order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.errors import DependencyCycle, IdempotencyConflict, InvalidOption, UnknownDependency
from conveyor.job import EnqueueResult, JobState, NewJob, find_cycle
from conveyor.stores.enqueue_plan import (
    KeyHold,
    Stored,
    dependencies_first,
    plan_enqueue,
    reads_for,
)

S = JobState
NOW = 1000.0
STORED = Stored(
    states={"done": S.COMPLETED, "dead": S.FAILED, "busy": S.PROCESSING},
    unique={"held": KeyHold("busy", None, S.PROCESSING), "gone": KeyHold("lost", 2000.0, None)},
    idempotency={"order": KeyHold("done", NOW + 60, S.COMPLETED, "fp")},
)


def job(job_id: str, *deps: str, **options: Any) -> NewJob:
    return NewJob(id=job_id, queue="q", task="t", payload=b"", depends_on=deps, **options)


def test_reads_name_outside_dependencies_and_keys_sorted() -> None:
    batch = [
        job("a", "x", "b", unique_key="k2"),
        job("b", "w", idempotency_key="i", unique_key="k1"),
    ]

    reads = reads_for(batch)

    assert (reads.job_ids, reads.unique_keys, reads.idempotency_keys) == (
        ("w", "x"),
        ("k1", "k2"),
        ("i",),
    )
    assert not reads_for([job("c")])


def test_order_is_batch_order_with_dependencies_first_in_listed_order() -> None:
    batch = [job("a", "x", "y"), job("b"), job("y"), job("x", "b")]

    assert [j.id for j in dependencies_first(batch)] == ["b", "x", "y", "a"]


@pytest.mark.parametrize(
    ("batch", "error"),
    [
        ([job("a"), job("a")], InvalidOption),
        ([job("a", "b"), job("b", "a")], DependencyCycle),
        ([job("a", "nowhere")], UnknownDependency),
        ([job("a", idempotency_key="order", fingerprint="other")], IdempotencyConflict),
    ],
    ids=["same-id", "cycle", "unknown", "conflict"],
)
def test_refusals(batch: list[NewJob], error: type[Exception]) -> None:
    with pytest.raises(error):
        plan_enqueue(batch, NOW, STORED)


def test_holds_on_stored_keys() -> None:
    plan = plan_enqueue(
        [
            job("a", unique_key="held"),
            job("b", unique_key="gone"),
            job("c", idempotency_key="order", fingerprint="fp"),
            job("d", "a", "c"),
        ],
        NOW,
        STORED,
    )

    assert plan.results == [
        EnqueueResult("busy", S.PROCESSING, True),
        EnqueueResult("b", S.PENDING, False),  # the holder is gone: the key is free
        EnqueueResult("done", S.COMPLETED, True),
        EnqueueResult("d", S.BLOCKED, False),
    ]
    [_, d] = plan.jobs
    assert (d.depends_on, d.open_deps) == (("busy", "done"), ("busy",))


# one at a time --------------------------------------------------------------------------------
KEYS = st.sampled_from([None, None, "k1", "k2"])
SPEC = st.fixed_dictionaries(
    {
        "deps": st.lists(st.integers(0, 7), max_size=2),
        "stored_deps": st.lists(st.sampled_from(sorted(STORED.states)), max_size=1),
        "unique_key": st.sampled_from([None, None, "k1", "k2", "held"]),
        "idempotency": st.sampled_from([None, None, ("i1", "a"), ("order", "fp")]),
        "delay": st.sampled_from([0.0, 5.0]),
    }
)


def _batch(specs: list[dict[str, Any]]) -> list[NewJob]:
    """Dependencies only on later batch jobs, so the batch has no cycle but must be
    reordered."""
    ids = [f"j{i}" for i in range(len(specs))]
    batch = []
    for i, spec in enumerate(specs):
        later = ids[i + 1 :]
        deps = [later[d % len(later)] for d in spec["deps"]] if later else []
        idem, fingerprint = spec["idempotency"] or (None, "")
        batch.append(
            job(
                ids[i],
                *dict.fromkeys([*deps, *spec["stored_deps"]]),
                unique_key=spec["unique_key"],
                idempotency_key=idem,
                fingerprint=fingerprint,
                run_at=NOW + spec["delay"],
            )
        )
    return batch


def _one_at_a_time(batch: list[NewJob]) -> list[EnqueueResult]:
    """A model written apart from the planner: a store taking the jobs one by one in
    plan order, each naming earlier jobs by the id they got."""
    states = dict(STORED.states)
    unique = dict(STORED.unique)
    idempotency = dict(STORED.idempotency)
    got: dict[str, EnqueueResult] = {}
    for new in dependencies_first(batch):
        holder = _model_holder(new, unique, idempotency)
        if holder is not None:
            got[new.id] = EnqueueResult(holder, states[holder], True)
            continue
        deps = [states[got[d].id] if d in got else states[d] for d in new.depends_on]
        if any(state in (S.FAILED, S.CANCELLED) for state in deps):
            state = S.FAILED  # the default policy
        elif any(state is not S.COMPLETED for state in deps):
            state = S.BLOCKED
        elif new.run_at is not None and new.run_at > NOW:
            state = S.SCHEDULED
        else:
            state = S.PENDING
        got[new.id] = EnqueueResult(new.id, state, False)
        states[new.id] = state
        if new.unique_key:
            unique[new.unique_key] = KeyHold(new.id, None, state)
        if new.idempotency_key:
            idempotency[new.idempotency_key] = KeyHold(
                new.id, NOW + new.idempotency_for, state, new.fingerprint
            )
    return [got[new.id] for new in batch]


def _model_holder(
    new: NewJob, unique: dict[str, KeyHold], idempotency: dict[str, KeyHold]
) -> str | None:
    hold = idempotency.get(new.idempotency_key or "")
    if hold is not None and hold.state is not None and (hold.expires_at or 0) > NOW:
        if hold.fingerprint != new.fingerprint:
            raise IdempotencyConflict(new.idempotency_key or "", hold.job_id)
        return hold.job_id
    hold = unique.get(new.unique_key or "")
    if hold is None or hold.state is None:
        return None
    if hold.expires_at is not None:
        return hold.job_id if hold.expires_at > NOW else None
    active = hold.state not in (S.COMPLETED, S.FAILED, S.CANCELLED)
    return hold.job_id if active else None


@settings(max_examples=300, deadline=None)
@given(st.lists(SPEC, min_size=1, max_size=8))
def test_a_batch_is_its_jobs_enqueued_one_at_a_time(specs: list[dict[str, Any]]) -> None:
    batch = _batch(specs)
    try:
        plan = plan_enqueue(batch, NOW, STORED)
    except IdempotencyConflict:
        with pytest.raises(IdempotencyConflict):
            _one_at_a_time(batch)
        return

    assert plan.results == _one_at_a_time(batch)
    planned = {p.job.id: p for p in plan.jobs}
    position = {p.job.id: i for i, p in enumerate(plan.jobs)}
    for p in plan.jobs:
        # Every stored dependency exists and was planned earlier: no cycle, nothing dangling.
        for dep in p.depends_on:
            assert dep in STORED.states or position[dep] < position[p.job.id]
        assert p.open_deps == tuple(
            d
            for d in p.depends_on
            if p.state is S.BLOCKED and _state(d, planned) is not S.COMPLETED
        )
    assert find_cycle({p.job.id: p.depends_on for p in plan.jobs}) is None


def _state(job_id: str, planned: dict[str, Any]) -> JobState:
    return planned[job_id].state if job_id in planned else STORED.states[job_id]
