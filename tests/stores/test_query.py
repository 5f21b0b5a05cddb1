"""The read model: get, get_many, search (filters, text, paging), stats and prune."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from conveyor.clock import FakeClock
from conveyor.job import FailureReason, JobState
from conveyor.stores.base import Completion, JobQuery, Page, PruneParams, PruneResult, Store

from .support import add, claim_one, count_jobs, error_for, must_get, new_id, state_of


def _ids(page: Page) -> list[str]:
    return [job.id for job in page.items]


def _search(store: Store, **fields: object) -> set[str]:
    page = store.search(JobQuery(**fields))  # type: ignore[arg-type]
    assert page.total == len(page.items)
    return set(_ids(page))


def _dead(store: Store, clock: FakeClock, message: str, queue: str = "dead") -> str:
    job_id = add(store, queue=queue)
    lease = claim_one(store, job_id, queue=queue)
    store.fail(
        lease,
        error_for(lease, clock, message=message),
        retry_at=None,
        reason=FailureReason.EXHAUSTED,
    )
    return job_id


# get / get_many --------------------------------------------------------------------------


def test_get_returns_none_for_an_unknown_id(store: Store) -> None:
    add(store)
    assert store.get(new_id()) is None


def test_get_many_keeps_the_given_order_and_skips_unknown(store: Store) -> None:
    a, b, c = add(store), add(store), add(store)

    jobs = store.get_many([c, new_id(), a, b])

    assert [job.id for job in jobs] == [c, a, b]
    assert store.get_many([]) == []


# search filters --------------------------------------------------------------------------


def test_search_by_ids_states_queues_and_tasks(store: Store, clock: FakeClock) -> None:
    mail_done = add(store, queue="mail", task="tests.send")
    store.complete([Completion(claim_one(store, mail_done, queue="mail"), None)])
    mail = add(store, queue="mail", task="tests.send")
    report = add(store, queue="reports", task="tests.build")
    later = add(store, queue="reports", task="tests.send", run_at=clock.now() + 60)

    assert _search(store) == {mail, mail_done, report, later}
    assert _search(store, ids=[mail, report, new_id()]) == {mail, report}
    assert _search(store, ids=[]) == set()
    assert _search(store, states=[JobState.PENDING]) == {mail, report}
    assert _search(store, states=[JobState.COMPLETED, JobState.SCHEDULED]) == {mail_done, later}
    assert _search(store, queues=["mail"]) == {mail, mail_done}
    assert _search(store, queues=["nothing"]) == set()
    assert _search(store, tasks=["tests.send"]) == {mail, mail_done, later}
    assert _search(store, tasks=["tests.build", "tests.send"], queues=["reports"]) == {
        report,
        later,
    }
    assert _search(store, queues=["mail"], states=[JobState.PENDING], ids=[mail, report]) == {mail}


def test_search_by_tag_is_an_exact_match(store: Store) -> None:
    only_a = add(store, tags=("a",))
    ab = add(store, tags=("ab",))
    both = add(store, tags=("b", "a"))
    dotted = add(store, tags=("a.b",))
    add(store)

    assert _search(store, tag="a") == {only_a, both}
    assert _search(store, tag="ab") == {ab}
    assert _search(store, tag="b") == {both}
    assert _search(store, tag="a.b") == {dotted}
    assert _search(store, tag="A") == set()
    assert _search(store, tag="%") == set()


def test_search_by_creation_time(store: Store, clock: FakeClock) -> None:
    start = clock.now()
    first = add(store)
    clock.advance(10)
    second = add(store)
    clock.advance(10)
    third = add(store)

    assert _search(store, since=start + 10) == {second, third}
    assert _search(store, until=start + 10) == {first}
    assert _search(store, since=start, until=start + 20) == {first, second}
    assert _search(store, since=start + 20.5) == set()


def test_search_text_matches_id_task_queue_reason_and_error_case_insensitively(
    store: Store, clock: FakeClock
) -> None:
    by_task = add(store, task="tests.Alpha")
    by_queue = add(store, queue="payments")
    dead = _dead(store, clock, "Connection RESET by peer")
    blocker = add(store, queue="parents")
    dependent = add(store, depends_on=(blocker,))
    store.cancel([blocker])

    assert _search(store, text="ALPHA") == {by_task}
    assert _search(store, text="aymen") == {by_queue}
    assert _search(store, text="connection reset") == {dead}
    assert _search(store, text=by_queue[-12:].upper()) == {by_queue}
    assert _search(store, text="dependency_failed") == {dependent}
    assert _search(store, text="no such text anywhere") == set()


def test_search_text_is_taken_literally(store: Store, clock: FakeClock) -> None:
    percent = _dead(store, clock, "50% done")
    underscore = _dead(store, clock, "snake_case name")
    backslash = _dead(store, clock, r"path C:\temp\x")
    injection_text = "'; DROP TABLE jobs;--"
    injection = _dead(store, clock, f"bad input {injection_text}")
    plain = add(store, task="tests.plain")

    assert _search(store, text="%") == {percent}
    assert _search(store, text="_") == {underscore}
    assert _search(store, text="e_c") == {underscore}
    assert _search(store, text="50%") == {percent}
    assert _search(store, text="\\") == {backslash}
    assert _search(store, text="'") == {injection}
    assert _search(store, text=injection_text) == {injection}
    assert _search(store, text='"; DROP TABLE jobs;--') == set()
    assert _search(store, queues=[injection_text]) == set()
    assert _search(store, tag=injection_text) == set()
    assert _search(store, tasks=[injection_text]) == set()
    # The store still works.
    assert count_jobs(store) == 5
    assert state_of(store, plain) is JobState.PENDING
    after = add(store)
    assert claim_one(store, plain, queue="default").job_id == plain
    assert must_get(store, after).state is JobState.PENDING
    assert count_jobs(store) == 6


# paging and order ------------------------------------------------------------------------


def test_search_pages_newest_first_by_default(store: Store, clock: FakeClock) -> None:
    ids = []
    for _ in range(5):
        ids.append(add(store))
        clock.advance(1)

    first = store.search(JobQuery(limit=2))
    second = store.search(JobQuery(limit=2, offset=2))
    third = store.search(JobQuery(limit=2, offset=4))
    beyond = store.search(JobQuery(limit=2, offset=10))

    assert _ids(first) == [ids[4], ids[3]]
    assert _ids(second) == [ids[2], ids[1]]
    assert _ids(third) == [ids[0]]
    assert _ids(beyond) == []
    assert [p.total for p in (first, second, third, beyond)] == [5, 5, 5, 5]
    assert (second.limit, second.offset) == (2, 2)


def test_search_oldest_first(store: Store, clock: FakeClock) -> None:
    ids = []
    for _ in range(4):
        ids.append(add(store))
        clock.advance(1)

    page = store.search(JobQuery(newest_first=False, limit=3, offset=1))

    assert _ids(page) == ids[1:4]
    assert page.total == 4


def test_search_orders_equal_creation_times_by_id(store: Store) -> None:
    ids = sorted(new_id() for _ in range(4))
    for job_id in (ids[2], ids[0], ids[3], ids[1]):
        add(store, id=job_id)

    assert _ids(store.search(JobQuery(newest_first=False))) == ids
    assert _ids(store.search(JobQuery(newest_first=True))) == ids[::-1]


def test_search_total_counts_every_match_beyond_the_page(store: Store) -> None:
    for _ in range(30):
        add(store, queue="bulk")
    add(store, queue="other")

    page = store.search(JobQuery(queues=["bulk"], limit=7, offset=3))

    assert len(page.items) == 7
    assert page.total == 30


# stats -----------------------------------------------------------------------------------


def _counts(store: Store) -> dict[str, dict[str, int]]:
    return {
        entry.queue: {state: n for state, n in entry.counts.items() if n} for entry in store.stats()
    }


def test_stats_counts_per_queue_and_state(store: Store, clock: FakeClock) -> None:
    start = clock.now()
    add(store, queue="mail")
    clock.advance(5)
    add(store, queue="mail")
    add(store, queue="mail", run_at=clock.now() + 100)
    running = add(store, queue="reports")
    claim_one(store, running, queue="reports")
    _dead(store, clock, "x", queue="reports")
    add(store, queue="reports", depends_on=(running,))

    assert _counts(store) == {
        "mail": {"pending": 2, "scheduled": 1},
        "reports": {"processing": 1, "failed": 1, "blocked": 1},
    }
    by_queue = {entry.queue: entry for entry in store.stats()}
    assert by_queue["mail"].oldest_pending_at == start
    assert by_queue["mail"].total() == 3
    assert by_queue["reports"].oldest_pending_at is None
    assert by_queue["reports"].total() == 3


def test_stats_of_an_empty_store(store: Store) -> None:
    assert [entry for entry in store.stats() if entry.total()] == []


# prune -----------------------------------------------------------------------------------


def _finished(store: Store, clock: FakeClock, how: str) -> str:
    if how == "cancelled":
        job_id = add(store)
        store.cancel([job_id])
        return job_id
    if how == "failed":
        return _dead(store, clock, "gone")
    job_id = add(store)
    store.complete([Completion(claim_one(store, job_id), b"r")])
    return job_id


def test_prune_deletes_only_old_terminal_jobs_per_state(store: Store, clock: FakeClock) -> None:
    old = {how: _finished(store, clock, how) for how in ("completed", "failed", "cancelled")}
    old_pending = add(store, queue="idle")
    clock.advance(1000)
    new = {how: _finished(store, clock, how) for how in ("completed", "failed", "cancelled")}
    clock.advance(10)

    result = store.prune(PruneParams(completed_after=500, failed_after=None, cancelled_after=5000))

    assert result.jobs == 1
    assert store.get(old["completed"]) is None
    for job_id in (old["failed"], old["cancelled"], old_pending, *new.values()):
        assert store.get(job_id) is not None

    result = store.prune(PruneParams(completed_after=None, failed_after=500, cancelled_after=500))

    assert result.jobs == 2
    assert store.get(old["failed"]) is None
    assert store.get(old["cancelled"]) is None
    remaining = {old_pending, *new.values()}
    assert {job.id for job in store.search(JobQuery()).items} == remaining

    clock.advance(10_000_000)
    final = store.prune(PruneParams(completed_after=1, failed_after=1, cancelled_after=1))
    assert final.jobs == 3
    assert {job.id for job in store.search(JobQuery()).items} == {old_pending}


def test_prune_never_touches_active_jobs(store: Store, clock: FakeClock) -> None:
    pending = add(store)
    scheduled = add(store, run_at=clock.now() + 10)
    running = add(store, queue="busy")
    claim_one(store, running, queue="busy")
    clock.advance(10_000_000)

    result = store.prune(PruneParams(completed_after=0, failed_after=0, cancelled_after=0))

    assert result.jobs == 0
    assert len(store.get_many([pending, scheduled, running])) == 3


def test_prune_respects_its_limit(store: Store, clock: FakeClock) -> None:
    ids = [_finished(store, clock, "completed") for _ in range(5)]
    clock.advance(100)

    first = store.prune(PruneParams(completed_after=10, limit=3))
    second = store.prune(PruneParams(completed_after=10, limit=3))

    assert (first.jobs, second.jobs) == (3, 2)
    assert store.get_many(ids) == []


def test_prune_frees_the_keys_of_pruned_jobs(store: Store, clock: FakeClock) -> None:
    holder = add(store, unique_key="k", unique_for=None)
    store.complete([Completion(claim_one(store, holder), None)])
    clock.advance(100)

    assert isinstance(store.prune(PruneParams(completed_after=10)), PruneResult)

    assert store.get(holder) is None
    fresh = add(store, unique_key="k")
    assert must_get(store, fresh).unique_key == "k"


@pytest.mark.parametrize("bad", [[], ["x"]])
def test_search_with_no_match_is_an_empty_page(store: Store, bad: Sequence[str]) -> None:
    add(store)

    page = store.search(JobQuery(queues=bad))

    assert page.items == []
    assert page.total == 0
