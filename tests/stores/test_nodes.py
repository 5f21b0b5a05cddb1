"""The node registry: register (upsert), list, remove and prune worker nodes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conveyor.clock import FakeClock
from conveyor.stores.base import NodeInfo, Store, WorkerInfo

from .support import (
    LOCAL_DRIVERS,
    REFERENCE_DRIVER,
    add,
    must_get,
    open_test_store,
)

PERSISTENT_DRIVERS = [name for name in LOCAL_DRIVERS if name != REFERENCE_DRIVER]
"""Drivers whose data outlives the store object (the memory store keeps nothing)."""


def make_node(node_id: str = "node-1", *, started_at: float = 1_699_999_990.25) -> NodeInfo:
    """A node with one idle and one busy worker, and every field away from its default."""
    return NodeInfo(
        id=node_id,
        host="host-a.example",
        pid=4242,
        queues=("high", "default"),
        capabilities=("gpu", "ffmpeg"),
        concurrency=2,
        state="running",
        started_at=started_at,
        heartbeat_at=123.0,  # ignored: the store stamps its own
        clock_offset=-0.125,  # this node's clock an eighth of a second behind the server's
        workers=(
            WorkerInfo(
                id=f"{node_id}/w1",
                pid=4243,
                state="idle",
                current_job=None,
                processed=17,
                failed=2,
                rss_bytes=52_428_800,
                started_at=started_at + 0.5,
                heartbeat_at=1_699_999_999.75,
            ),
            WorkerInfo(
                id=f"{node_id}/w2",
                pid=4244,
                state="busy",
                current_job="01890a5d-ac96-774b-b9aa-0123456789ab",
                processed=3,
                failed=0,
                rss_bytes=104_857_600,
                started_at=started_at + 0.75,
                heartbeat_at=1_699_999_999.5,
            ),
        ),
    )


def ids(store: Store) -> list[str]:
    """Ids of the registered nodes, in listing order."""
    return [node.id for node in store.list_nodes()]


def test_a_fresh_store_has_no_nodes(store: Store) -> None:
    assert store.list_nodes() == []


def test_every_field_round_trips_and_the_store_stamps_the_heartbeat(
    store: Store, clock: FakeClock
) -> None:
    node = make_node()

    store.register_node(node)

    [listed] = store.list_nodes()
    assert listed == dataclasses.replace(node, heartbeat_at=clock.now())
    assert isinstance(listed.queues, tuple)
    assert isinstance(listed.capabilities, tuple)
    assert isinstance(listed.workers, tuple)
    assert [w.current_job for w in listed.workers] == [None, node.workers[1].current_job]


def test_a_node_without_workers_or_capabilities(store: Store, clock: FakeClock) -> None:
    node = NodeInfo(id="bare", host="h", pid=1, queues=("default",))

    store.register_node(node)

    assert store.list_nodes() == [dataclasses.replace(node, heartbeat_at=clock.now())]


def test_an_explicit_now_is_the_heartbeat(store: Store, clock: FakeClock) -> None:
    store.register_node(make_node(), now=clock.now() - 90)

    [listed] = store.list_nodes()
    assert listed.heartbeat_at == clock.now() - 90


def test_registering_again_replaces_the_record(store: Store, clock: FakeClock) -> None:
    first = make_node()
    store.register_node(first)
    clock.advance(5)
    second = dataclasses.replace(
        first,
        state="paused",
        queues=("default",),
        workers=(dataclasses.replace(first.workers[1], state="idle", current_job=None),),
    )

    store.register_node(second)

    assert store.list_nodes() == [dataclasses.replace(second, heartbeat_at=clock.now())]


def test_the_heartbeat_moves_with_each_registration(store: Store, clock: FakeClock) -> None:
    node = make_node()
    store.register_node(node)
    before = store.list_nodes()[0].heartbeat_at
    clock.advance(10)

    store.register_node(node)

    [listed] = store.list_nodes()
    assert listed.heartbeat_at == before + 10 == clock.now()
    assert listed.started_at == node.started_at


def test_nodes_are_listed_oldest_started_first(store: Store) -> None:
    for node_id, started in (("b", 300.0), ("a", 100.0), ("c", 200.5)):
        store.register_node(make_node(node_id, started_at=started))

    assert ids(store) == ["a", "c", "b"]


def test_remove_node_forgets_only_that_node(store: Store) -> None:
    store.register_node(make_node("one", started_at=1.0))
    store.register_node(make_node("two", started_at=2.0))

    store.remove_node("one")

    assert ids(store) == ["two"]


def test_removing_an_unknown_node_is_ignored(store: Store) -> None:
    store.register_node(make_node("kept"))

    store.remove_node("no-such-node")
    store.remove_node("no-such-node")

    assert ids(store) == ["kept"]


def test_prune_removes_only_nodes_whose_heartbeat_is_too_old(
    store: Store, clock: FakeClock
) -> None:
    store.register_node(make_node("old", started_at=1.0))
    clock.advance(20)
    store.register_node(make_node("edge", started_at=2.0))
    clock.advance(10)
    store.register_node(make_node("fresh", started_at=3.0))
    clock.advance(30)  # old: 60 s, edge: 40 s, fresh: 30 s (not *more* than 30)

    assert store.prune_nodes(older_than=30) == 2

    assert ids(store) == ["fresh"]
    assert store.prune_nodes(older_than=30) == 0
    assert ids(store) == ["fresh"]


def test_a_renewed_heartbeat_saves_a_node_from_pruning(store: Store, clock: FakeClock) -> None:
    store.register_node(make_node("renewed", started_at=1.0))
    store.register_node(make_node("silent", started_at=2.0))
    clock.advance(45)
    store.register_node(make_node("renewed", started_at=1.0))

    assert store.prune_nodes(older_than=30) == 1

    assert ids(store) == ["renewed"]


def test_prune_judges_by_an_explicit_now(store: Store, clock: FakeClock) -> None:
    store.register_node(make_node())

    assert store.prune_nodes(older_than=30, now=clock.now() + 30) == 0
    assert store.prune_nodes(older_than=30, now=clock.now() + 31) == 1
    assert store.list_nodes() == []


def test_nodes_and_jobs_do_not_disturb_each_other(store: Store, clock: FakeClock) -> None:
    job_id = add(store)
    store.register_node(make_node())
    clock.advance(3600)

    assert store.prune_nodes(older_than=60) == 1

    assert must_get(store, job_id).id == job_id
    assert store.list_nodes() == []


@pytest.mark.parametrize("driver", PERSISTENT_DRIVERS)
def test_nodes_survive_closing_and_reopening_the_store(
    driver: str, tmp_path: Path, clock: FakeClock
) -> None:
    node = make_node()
    first = open_test_store(driver, tmp_path / "store", clock)
    first.register_node(node)
    first.close()

    second = open_test_store(driver, tmp_path / "store", clock)
    try:
        assert second.list_nodes() == [dataclasses.replace(node, heartbeat_at=clock.now())]
    finally:
        second.close()
