"""Redis enqueue: planned in Python from one read, written only if that read still holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

pytest.importorskip("redis")

from tests.stores.support import add, claim_one, new_job

from conveyor.clock import FakeClock
from conveyor.errors import StoreUnavailable
from conveyor.job import EnqueueResult, JobState
from conveyor.stores.base import Completion
from conveyor.stores.redis import RedisStore
from conveyor.stores.redis import enqueue as redis_enqueue

Run = Callable[[str, Sequence[Any]], Any]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stores(redis_url: str, clock: FakeClock) -> Iterator[tuple[RedisStore, RedisStore]]:
    """Two clients of one store: the one under test and a rival producer."""
    pair = (
        RedisStore.from_dsn(redis_url, clock=clock),
        RedisStore.from_dsn(redis_url, clock=clock),
    )
    pair[0].migrate()
    try:
        yield pair
    finally:
        for store in pair:
            store.close()


def _before_each_write(
    monkeypatch: pytest.MonkeyPatch, store: RedisStore, action: Callable[[], None], times: int
) -> list[str]:
    """Run ``action`` just before the next ``times`` write steps of ``store``'s enqueue."""
    original: Run = store._run
    calls: list[str] = []

    def run(name: str, args: Sequence[Any]) -> Any:
        if name == "enqueue":
            calls.append(str(args[0]))
            if args[0] == "write" and calls.count("write") <= times:
                action()
        return original(name, args)

    monkeypatch.setattr(store, "_run", run)
    return calls


def test_a_key_taken_after_the_read_is_planned_again(
    stores: tuple[RedisStore, RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, rival = stores
    theirs = new_job(unique_key="report")
    calls = _before_each_write(monkeypatch, store, lambda: rival.enqueue([theirs]), times=1)
    mine = new_job(unique_key="report")

    assert store.enqueue([mine]) == [EnqueueResult(theirs.id, JobState.PENDING, True)]

    assert calls == ["read", "write", "read", "write"]
    assert store.get(mine.id) is None


def test_a_dependency_that_completes_after_the_read_leaves_no_job_blocked(
    stores: tuple[RedisStore, RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, rival = stores
    parent = add(rival, queue="parents")

    def complete_parent() -> None:
        lease = claim_one(rival, parent, queue="parents")
        assert rival.complete([Completion(lease, None)]) == []

    _before_each_write(monkeypatch, store, complete_parent, times=1)
    child = new_job(depends_on=(parent,))

    assert store.enqueue([child]) == [EnqueueResult(child.id, JobState.PENDING, False)]

    stored = store.get(child.id)
    assert stored is not None
    assert (stored.state, stored.blocked_by) == (JobState.PENDING, 0)


def test_a_batch_whose_keys_keep_changing_is_refused_as_unavailable(
    stores: tuple[RedisStore, RedisStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, rival = stores
    monkeypatch.setattr(redis_enqueue, "ENQUEUE_TRIES", 3)
    holders = [add(rival, unique_key="report")]

    def replace_holder() -> None:
        assert rival.delete(holders[-1:]) == 1
        holders.append(add(rival, unique_key="report"))

    _before_each_write(monkeypatch, store, replace_holder, times=3)
    mine = new_job(unique_key="report")

    with pytest.raises(StoreUnavailable, match="changed 3 times"):
        store.enqueue([mine])

    assert store.get(mine.id) is None
    assert len(holders) == 4
