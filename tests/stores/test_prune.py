"""Pruning in batches on every driver: exactly the old terminal jobs and what they own go.

The retention pass (conveyor.maintenance.pruner) calls ``prune`` with a small ``limit``
and ``sweep=False`` until a call deletes fewer than ``limit``, then once with ``sweep``.
These tests drive the store the same way and then look at the driver's own storage, so a
key hold, dependency row or payload row left behind is caught.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from conveyor.clock import FakeClock
from conveyor.job import DependencyPolicy, JobState
from conveyor.maintenance.pruner import prune
from conveyor.maintenance.retention import Retention
from conveyor.stores.base import Completion, JobQuery, PruneParams, PruneResult, Store
from conveyor.stores.job_table import KeyKind

from .support import add, claim_one, enqueue_one, error_for, new_job

BIG = b"x" * 300_000
"""Above every driver's inline payload size (SQLite keeps it in job_payloads)."""


def _complete(store: Store, job_id: str, queue: str = "default") -> None:
    assert store.complete([Completion(claim_one(store, job_id, queue=queue), b"result")]) == []


def _fail(store: Store, clock: FakeClock, job_id: str) -> None:
    lease = claim_one(store, job_id)
    store.fail(lease, error_for(lease, clock), retry_at=None, reason=None)


def _leftovers(store: Store) -> dict[str, int]:
    """Rows each driver keeps beside its jobs: key holds, dependency rows, payload rows."""
    kind = type(store).__name__
    if kind == "MemoryStore":
        m: Any = store
        return {
            "unique": len(m._table.holds(KeyKind.UNIQUE)),
            "idempotency": len(m._table.holds(KeyKind.IDEMPOTENCY)),
            "edges": sum(len(v) for v in m._table.dependents.values()),
        }
    if kind == "SQLiteStore":
        s: Any = store
        with sqlite3.connect(s.path) as conn:
            return {
                table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("unique_keys", "idempotency_keys", "job_dependencies", "job_payloads")
            }
    if kind == "PostgresStore":
        p: Any = store
        with p._pool().connection() as conn:
            return {
                table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("unique_keys", "idempotency_keys", "job_dependencies")
            }
    if kind == "RedisStore":
        r: Any = store
        client = r._redis()
        return {
            "unique": client.scard(r._key("uniques")),
            "idempotency": client.scard(r._key("idems")),
            "edges": len(list(client.scan_iter(match=r._key("dependents", "*")))),
            "steps": len(list(client.scan_iter(match=r._key("steps", "*"))))
            + client.scard(r._key("parents")),
        }
    f: Any = store
    return {
        "unique": len(f._dir.listdir("keys/unique")),
        "idempotency": len(f._dir.listdir("keys/idempotency")),
        "edges": len(f._dir.listdir("deps")),
    }


def _ids(store: Store) -> set[str]:
    return {job.id for job in store.search(JobQuery(limit=1000)).items}


def _old_history(store: Store, clock: FakeClock) -> dict[str, str]:
    """Terminal jobs of every kind, each owning what a job can own."""
    jobs: dict[str, str] = {}
    for n in range(4):
        jobs[f"done{n}"] = add(
            store, unique_key=f"u{n}", unique_for=100_000, idempotency_key=f"i{n}", payload=BIG
        )
        _complete(store, jobs[f"done{n}"])
    jobs["parent"] = add(store)
    jobs["child"] = add(store, depends_on=(jobs["parent"],))
    _complete(store, jobs["parent"])
    _complete(store, jobs["child"])
    jobs["doomed_parent"] = add(store, unique_key="dp", unique_for=None)
    jobs["doomed_child"] = add(
        store, depends_on=(jobs["doomed_parent"],), on_dependency_failure=DependencyPolicy.FAIL
    )
    _fail(store, clock, jobs["doomed_parent"])
    jobs["cancelled"] = add(store, unique_key="c", unique_for=None)
    store.cancel([jobs["cancelled"]])
    return jobs


def test_batches_delete_exactly_old_terminal_jobs_and_what_they_own(
    store: Store, clock: FakeClock
) -> None:
    empty = _leftovers(store)
    old = _old_history(store, clock)
    clock.advance(1000)
    recent = add(store, unique_key="recent", unique_for=None)
    _complete(store, recent)
    pending = add(store, unique_key="p", unique_for=None, payload=BIG)
    blocker = add(store, queue="slow")
    blocked = add(store, depends_on=(blocker,))
    running = add(store, queue="busy", idempotency_key="run")
    claim_one(store, running, queue="busy")
    scheduled = add(store, run_at=clock.now() + 5000)
    alive = {recent, pending, blocker, blocked, running, scheduled}
    assert store.get(old["doomed_child"]) is not None

    calls = []
    while True:
        result = store.prune(
            PruneParams(
                completed_after=500, failed_after=500, cancelled_after=500, limit=3, sweep=False
            )
        )
        calls.append(result.jobs)
        if result.jobs < 3:
            break

    assert calls == [3, 3, 3, 0]
    assert _ids(store) == alive
    assert store.get_many(list(old.values())) == []
    assert [j.state for j in store.get_many([blocked])] == [JobState.BLOCKED]
    # Each batch took what its jobs owned; left: the recent and live jobs' holds (recent,
    # p; run), one edge (blocked -> blocker), one big payload (pending).
    owned_by_live = _expected(empty, unique=2, idempotency=1, edges=1, payloads=1)
    assert _leftovers(store) == owned_by_live
    store.prune(PruneParams(completed_after=None, failed_after=None, cancelled_after=None))
    assert _leftovers(store) == owned_by_live
    # The pruned jobs' keys are free again (u* would hold for 100000 s); live ones hold.
    for key in ("u0", "u3", "dp", "c"):
        assert not enqueue_one(store, new_job(unique_key=key)).duplicate
    assert not enqueue_one(store, new_job(idempotency_key="i1")).duplicate
    assert enqueue_one(store, new_job(unique_key="p")).duplicate


def _expected(
    empty: dict[str, int], *, unique: int, idempotency: int, edges: int, payloads: int
) -> dict[str, int]:
    """``empty`` (the driver's counts on a fresh store) plus the given rows."""
    extra = {
        "unique": unique,
        "unique_keys": unique,
        "idempotency": idempotency,
        "idempotency_keys": idempotency,
        "edges": edges,
        "job_dependencies": edges,
        "job_payloads": payloads,
        "steps": 0,
    }
    return {name: count + extra[name] for name, count in empty.items()}


def test_dry_run_counts_every_old_job_and_deletes_nothing(store: Store, clock: FakeClock) -> None:
    old = _old_history(store, clock)
    clock.advance(1000)
    add(store)
    before = _leftovers(store)

    counted = store.prune(
        PruneParams(
            completed_after=500, failed_after=None, cancelled_after=500, limit=1, dry_run=True
        )
    )

    assert counted.jobs == 7  # 4 done + parent + child + cancelled; failed ones kept
    assert counted.orphans == 0
    assert store.get_many(list(old.values())) != []
    assert len(store.get_many(list(old.values()))) == len(old)
    assert _leftovers(store) == before


def test_a_pass_reports_per_state_and_empties_the_backlog(store: Store, clock: FakeClock) -> None:
    old = _old_history(store, clock)
    clock.advance(2 * 86400)
    keep = add(store)

    dry = prune(store, Retention(failed=86400.0), batch=2, dry_run=True)
    report = prune(store, Retention(failed=86400.0), batch=2)

    assert dry.deleted == report.deleted == {"completed": 6, "failed": 2, "cancelled": 1}
    assert report.done and dry.dry_run and not report.dry_run
    assert report.batches == 3 + 1 + 2 + 1 + 1  # full batches, the short ones, the sweep
    assert store.get_many(list(old.values())) == []
    assert _ids(store) == {keep}


def test_forever_keeps_a_state(store: Store, clock: FakeClock) -> None:
    old = _old_history(store, clock)
    clock.advance(100 * 86400)

    report = prune(store, Retention(completed=None, failed=None, cancelled=86400.0), batch=2)

    assert report.deleted == {"cancelled": 1}
    assert store.get(old["cancelled"]) is None
    assert len(store.get_many(list(old.values()))) == len(old) - 1


def test_a_pruned_jobs_records_go_with_it(store: Store, clock: FakeClock) -> None:
    done = add(store)
    _complete(store, done)
    kept = add(store)
    for job_id in (done, kept):
        store.put_record("decision", job_id, b"[]", expect_version=None)
        store.put_record("other", job_id, b"x", expect_version=None)
    clock.advance(100)
    _complete(store, kept)

    result = store.prune(
        PruneParams(completed_after=50, sweep=False, job_records=("decision", "absent"))
    )

    assert (result.jobs, result.orphans) == (1, 1)
    assert store.get_record("decision", done) is None
    assert store.get_record("decision", kept) is not None  # its job is recent
    assert store.get_record("other", done) is not None  # a namespace not named


def test_the_sweep_runs_only_when_asked(store: Store, clock: FakeClock) -> None:
    store.put_record("lease", "gone", b"x", expect_version=None, expires_at=clock.now() + 1)
    clock.advance(10)
    quiet = PruneParams(completed_after=1, failed_after=1, cancelled_after=1, sweep=False)

    assert store.prune(quiet).orphans == 0
    assert store.prune(PruneParams(completed_after=1)).orphans == 1
    assert store.prune(PruneParams(completed_after=1)).orphans == 0


def _chain_step(store: Store, parent: str, *also: str, **overrides: Any) -> str:
    """A chain step: waits on ``parent`` (and ``also``) and reads the parent's result
    (``parent_id``) when it runs."""
    return add(store, depends_on=(*also, parent), parent_id=parent, **overrides)


def _prune_all(store: Store, **ages: float | None) -> PruneResult:
    params = PruneParams(
        completed_after=ages.get("completed", 500),
        failed_after=ages.get("failed", 500),
        cancelled_after=ages.get("cancelled", 500),
        limit=2,
        sweep=False,
    )
    total = 0
    while True:
        result = store.prune(params)
        total += result.jobs
        if result.jobs < params.limit:
            return PruneResult(total, 0)


def test_a_piped_parent_is_kept_while_its_step_waits(store: Store, clock: FakeClock) -> None:
    # Old completed parents ahead of ordinary old jobs in finish order, so a batch that
    # stopped at a kept parent would leave the others (and a pass would end early).
    scheduled_parent = add(store)
    _complete(store, scheduled_parent)
    scheduled = _chain_step(store, scheduled_parent, run_at=clock.now() + 86400)
    blocked_parent = add(store)
    _complete(store, blocked_parent)
    slow = add(store, queue="slow")
    blocked = _chain_step(store, blocked_parent, slow)
    running_parent = add(store)
    _complete(store, running_parent)
    running = _chain_step(store, running_parent, queue="busy")
    claim_one(store, running, queue="busy")
    finished_parent = add(store)
    _complete(store, finished_parent)
    finished = _chain_step(store, finished_parent)
    _complete(store, finished)
    plain = [add(store) for _ in range(3)]
    for job_id in plain:
        _complete(store, job_id)
    clock.advance(1000)
    kept = {scheduled_parent, scheduled, blocked_parent, slow, blocked, running_parent, running}
    assert [j.state for j in store.get_many([scheduled, blocked])] == [
        JobState.SCHEDULED,
        JobState.BLOCKED,
    ]

    dry = store.prune(PruneParams(completed_after=500, limit=1, dry_run=True))
    pruned = _prune_all(store)

    assert (dry.jobs, pruned.jobs) == (5, 5)  # the finished step, its parent, the plain ones
    assert _ids(store) == kept

    # Once its step is terminal too, a parent goes at the next pass.
    clock.advance(86400)
    assert store.stage_due().promoted == 1
    _complete(store, scheduled)
    _complete(store, slow, queue="slow")
    _complete(store, blocked)
    clock.advance(1000)

    assert _prune_all(store).jobs == 5
    assert _ids(store) == {running_parent, running}
    # Redis: the step sets of the deleted parents went with them (one set and one entry
    # in the parents set left, for the running step's parent).
    assert _leftovers(store).get("steps", 2) == 2
