"""Job controls on every driver: reprioritize, move between queues, find ids by prefix."""

from __future__ import annotations

import threading
import time

import pytest

from conveyor.clock import FakeClock
from conveyor.errors import InvalidOption
from conveyor.job import JobState
from conveyor.stores.base import Completion, Store

from .support import add, claim, claim_one, error_for, must_get, state_of

S = JobState


def _waiting_jobs(store: Store, clock: FakeClock, queue: str = "default") -> dict[S, str]:
    """One job in each waiting state, and a processing and a completed one, in ``queue``."""
    done = add(store, queue=queue)
    finished = claim_one(store, done, queue=queue)
    store.complete([Completion(finished, b"ok")])
    retrying = add(store, queue=queue)
    lease = claim_one(store, retrying, queue=queue)
    store.fail(lease, error_for(lease, clock), retry_at=clock.now() + 60)
    running = add(store, queue=queue)
    claim_one(store, running, queue=queue)
    parent = add(store, queue="elsewhere")
    return {
        S.COMPLETED: done,
        S.RETRYING: retrying,
        S.PROCESSING: running,
        S.PENDING: add(store, queue=queue),
        S.SCHEDULED: add(store, queue=queue, run_at=clock.now() + 60),
        S.BLOCKED: add(store, queue=queue, depends_on=(parent,)),
    }


# reprioritize ----------------------------------------------------------------------------


def test_reprioritize_puts_a_pending_job_first_in_its_queue(store: Store) -> None:
    first, second, third = (add(store) for _ in range(3))

    assert store.reprioritize([third], 10) == [third]

    assert must_get(store, third).priority == 10
    assert [lease.job_id for lease in claim(store, limit=3)] == [third, first, second]


def test_lowering_a_priority_moves_the_job_behind_the_others(store: Store) -> None:
    first, second, third = (add(store, priority=5) for _ in range(3))

    assert store.reprioritize([first], -5) == [first]

    assert [lease.job_id for lease in claim(store, limit=3)] == [second, third, first]


def test_reprioritize_changes_waiting_jobs_only(store: Store, clock: FakeClock) -> None:
    jobs = _waiting_jobs(store, clock)
    unknown = "00000000-0000-7000-8000-000000000000"

    changed = store.reprioritize([*jobs.values(), unknown], 7)

    waiting = [jobs[s] for s in (S.RETRYING, S.PENDING, S.SCHEDULED, S.BLOCKED)]
    assert sorted(changed) == sorted(waiting)
    for state, job_id in jobs.items():
        job = must_get(store, job_id)
        assert job.state is state
        assert job.priority == (7 if job_id in waiting else 0)


def test_a_reprioritized_scheduled_job_keeps_its_priority_when_due(
    store: Store, clock: FakeClock
) -> None:
    early = add(store)
    later = add(store, run_at=clock.now() + 10)
    store.reprioritize([later], 50)
    clock.advance(11)
    store.stage_due()

    assert [lease.job_id for lease in claim(store, limit=2)] == [later, early]


def test_reprioritize_refuses_an_out_of_range_priority(store: Store) -> None:
    job_id = add(store)

    with pytest.raises(InvalidOption, match="priority"):
        store.reprioritize([job_id], 1000)

    assert must_get(store, job_id).priority == 0


def test_controls_of_no_ids_change_nothing(store: Store) -> None:
    job_id = add(store)

    assert store.reprioritize([], 3) == []
    assert store.move([], "other") == []
    assert must_get(store, job_id).queue == "default"


def test_an_id_given_twice_is_reported_once(store: Store) -> None:
    job_id = add(store)

    assert store.reprioritize([job_id, job_id], 3) == [job_id]
    assert store.move([job_id, job_id], "other") == [job_id]


# move ------------------------------------------------------------------------------------


def test_a_moved_pending_job_is_claimed_from_its_new_queue_only(store: Store) -> None:
    stays = add(store)
    moves = add(store)

    assert store.move([moves], "urgent") == [moves]

    assert must_get(store, moves).queue == "urgent"
    assert state_of(store, moves) is S.PENDING
    assert [lease.job_id for lease in claim(store, ["default"], limit=5)] == [stays]
    assert [lease.job_id for lease in claim(store, ["urgent"], limit=5)] == [moves]


def test_a_moved_job_takes_its_place_in_the_new_queues_claim_order(
    store: Store, clock: FakeClock
) -> None:
    low = add(store, queue="urgent", priority=-1)
    clock.advance(1)
    high = add(store, queue="urgent", priority=5)
    clock.advance(1)
    moved = add(store, priority=1)

    store.move([moved], "urgent")

    assert [lease.job_id for lease in claim(store, ["urgent"], limit=3)] == [high, moved, low]


def test_move_changes_waiting_jobs_only(store: Store, clock: FakeClock) -> None:
    jobs = _waiting_jobs(store, clock)

    changed = store.move(list(jobs.values()), "other")

    waiting = [jobs[s] for s in (S.RETRYING, S.PENDING, S.SCHEDULED, S.BLOCKED)]
    assert sorted(changed) == sorted(waiting)
    for state, job_id in jobs.items():
        job = must_get(store, job_id)
        assert job.state is state
        assert job.queue == ("other" if job_id in waiting else "default")


def test_moved_scheduled_and_retrying_jobs_become_due_in_the_new_queue(
    store: Store, clock: FakeClock
) -> None:
    jobs = _waiting_jobs(store, clock)
    store.move([jobs[S.SCHEDULED], jobs[S.RETRYING]], "other")
    clock.advance(61)
    store.stage_due()

    assert [lease.job_id for lease in claim(store, ["default"], limit=5)] == [jobs[S.PENDING]]
    leased = {lease.job_id for lease in claim(store, ["other"], limit=5)}
    assert leased == {jobs[S.SCHEDULED], jobs[S.RETRYING]}


def test_a_moved_blocked_job_runs_in_the_new_queue_once_released(store: Store) -> None:
    parent = add(store, queue="first")
    child = add(store, depends_on=(parent,))
    store.move([child], "other")

    lease = claim_one(store, parent, queue="first")
    store.complete([Completion(lease, None)])

    assert claim(store, ["default"], limit=5) == []
    assert [lease.job_id for lease in claim(store, ["other"], limit=5)] == [child]


def test_move_to_the_same_queue_keeps_the_job_claimable(store: Store) -> None:
    job_id = add(store)

    assert store.move([job_id], "default") == [job_id]

    assert [lease.job_id for lease in claim(store, limit=5)] == [job_id]


def test_stats_follow_a_move(store: Store) -> None:
    ids = [add(store) for _ in range(3)]

    store.move(ids[:2], "other")

    counts = {entry.queue: entry.counts for entry in store.stats()}
    assert counts["other"].get("pending") == 2
    assert counts["default"].get("pending") == 1
    store.move(ids[2:], "other")
    counts = {entry.queue: entry.counts for entry in store.stats()}
    assert counts["other"].get("pending") == 3
    assert sum(counts.get("default", {}).values()) == 0


def test_move_refuses_an_invalid_queue_name(store: Store) -> None:
    job_id = add(store)

    with pytest.raises(InvalidOption, match="queue"):
        store.move([job_id], "Not A Queue!")

    assert must_get(store, job_id).queue == "default"


def test_moving_a_pending_job_wakes_waiting_workers(store: Store) -> None:
    job_id = add(store)
    waiting = threading.Event()
    done = threading.Event()
    outcome: list[object] = []

    def waiter() -> None:
        try:
            waiting.set()
            outcome.append(store.wait_for_work(["other"], timeout=5.0))
        except BaseException as exc:  # pragma: no cover - reported below
            outcome.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=waiter, daemon=True)
    started = time.monotonic()
    thread.start()
    assert waiting.wait(timeout=5.0)
    # The waiter may not be blocked yet when the first move lands: move the job back and
    # forth until it returns (each move of a pending job notifies).
    moves = 0
    while not done.is_set() and moves < 50:
        store.move([job_id], "other" if moves % 2 == 0 else "default")
        moves += 1
        done.wait(timeout=0.05)
    thread.join(timeout=10.0)

    assert not thread.is_alive()
    assert outcome == [True]
    assert time.monotonic() - started < 4.5


# find_ids --------------------------------------------------------------------------------


def test_find_ids_resolves_a_unique_prefix(store: Store) -> None:
    ids = [add(store) for _ in range(3)]
    target = ids[1]

    assert store.find_ids(target) == [target]
    assert store.find_ids(target[:-1]) == [target]
    assert store.find_ids(target[:30].upper()) == [target]
    assert store.find_ids(target.replace("-", "")[:25]) == [target]


def test_find_ids_lists_every_match_of_a_shared_prefix_in_order(store: Store) -> None:
    ids = sorted(add(store) for _ in range(4))
    common = _common_prefix(ids)

    assert store.find_ids(common, limit=10) == ids
    assert len(store.find_ids(common, limit=2)) == 2
    assert set(store.find_ids(common, limit=2)) <= set(ids)


def test_find_ids_of_a_prefix_nothing_has_is_empty(store: Store) -> None:
    job_id = add(store)
    other = "0" if job_id[0] != "0" else "f"

    assert store.find_ids(other) == []
    assert store.find_ids(f"{job_id[:8]}-{'f' if job_id[9] != 'f' else '0'}") == []


def test_find_ids_after_a_delete_no_longer_sees_the_job(store: Store) -> None:
    job_id = add(store)
    store.delete([job_id])

    assert store.find_ids(job_id[:13]) == []


@pytest.mark.parametrize("prefix", ["", "xyz", "0190*", "%", "0" * 33])
def test_find_ids_refuses_what_cannot_start_an_id(store: Store, prefix: str) -> None:
    with pytest.raises(InvalidOption, match="id prefix"):
        store.find_ids(prefix)


def test_find_ids_refuses_a_bad_limit(store: Store) -> None:
    with pytest.raises(InvalidOption, match="limit"):
        store.find_ids("0", limit=0)


def _common_prefix(ids: list[str]) -> str:
    first, last = ids[0], ids[-1]
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]
