"""``conveyor nodes`` and ``conveyor workers`` against nodes registered through the store,
plus the :func:`conveyor.admin.node_rows` / :func:`~conveyor.admin.worker_rows` helpers."""

from __future__ import annotations

import json

import pytest

from conveyor import admin
from conveyor.clock import FakeClock
from conveyor.stores.base import NodeInfo, WorkerInfo
from conveyor.stores.memory import MemoryStore

from .conftest import Project

JOB_ID = "01890a5d-ac96-774b-b9aa-0123456789ab"
MIB = 1024 * 1024


def make_node(
    node_id: str, now: float, *, workers: bool = True, clock_offset: float | None = None
) -> NodeInfo:
    """A node started a minute before ``now``: one busy and one idle worker."""
    return NodeInfo(
        clock_offset=clock_offset,
        id=node_id,
        host="box-1.example",
        pid=700,
        queues=("high", "default"),
        capabilities=("gpu",),
        concurrency=2,
        state="running",
        started_at=now - 60,
        workers=(
            WorkerInfo(
                id=f"{node_id}/0",
                pid=701,
                state="busy",
                current_job=JOB_ID,
                processed=12,
                failed=1,
                rss_bytes=64 * MIB,
                started_at=now - 59,
                heartbeat_at=now - 3,
            ),
            WorkerInfo(
                id=f"{node_id}/1",
                pid=702,
                state="idle",
                current_job=None,
                processed=7,
                failed=0,
                rss_bytes=48 * MIB + MIB // 2,
                started_at=now - 59,
                heartbeat_at=now - 4,
            ),
        )
        if workers
        else (),
    )


def cells(out: str, key: str, column: int = 0) -> list[str]:
    """The cells of the first table row whose ``column`` holds ``key``."""
    for line in out.splitlines():
        parts = [part.strip() for part in line.split("│")[1:-1]]
        if len(parts) > column and parts[column] == key:
            return parts
    raise AssertionError(f"no row with {key!r} in column {column} of:\n{out}")


@pytest.fixture
def registered(project: Project) -> float:
    """``node-a`` (live, two workers) and ``node-b`` (silent for 2 minutes, no workers)."""
    store = project.app.store
    now = store.now()
    store.register_node(make_node("node-a", now, clock_offset=2.5), now=now - 2)
    store.register_node(make_node("node-b", now - 60, workers=False), now=now - 120)
    return now


def test_nodes_table(project: Project, registered: float) -> None:
    result = project.cli("nodes")

    assert result.exit_code == 0, result.output
    header = ("id", "host", "queues", "capabilities", "concurrency", "started", "heartbeat")
    for text in (*header, "workers", "busy"):
        assert text in result.stdout
    a = cells(result.stdout, "node-a")
    assert a[1:7] == ["box-1.example", "700", "high, default", "gpu", "2", "running"]
    assert a[7].startswith("20")  # started (UTC)
    assert a[8].endswith("s ago")
    assert a[9:] == ["2", "1", "+2.500s"]  # workers, busy, clock offset (ahead)
    b = cells(result.stdout, "node-b")
    assert b[8] == "2m00s ago (stale)"
    assert b[9:] == ["0", "0", "-"]  # no offset measured (a store without a server clock)
    assert "2 nodes, 1 stale" in result.stdout


def test_nodes_json(project: Project, registered: float) -> None:
    result = project.cli("nodes", "-o", "json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["store"] == project.dsn
    rows = data["nodes"]
    assert [row["id"] for row in rows] == ["node-b", "node-a"]  # oldest start first
    a = rows[1]
    assert a["host"] == "box-1.example"
    assert a["pid"] == 700
    assert a["queues"] == ["high", "default"]
    assert a["capabilities"] == ["gpu"]
    assert a["concurrency"] == 2
    assert a["state"] == "running"
    assert a["started_at"].startswith("20")
    assert a["workers"] == 2
    assert a["busy_workers"] == 1
    assert a["clock_offset"] == 2.5
    assert rows[0]["clock_offset"] is None
    assert a["stale"] is False
    assert 2 <= a["heartbeat_age"] < 30
    assert rows[0]["stale"] is True
    assert rows[0]["workers"] == rows[0]["busy_workers"] == 0


def test_stale_after_option(project: Project, registered: float) -> None:
    result = project.cli("nodes", "--stale-after", "5m", "-o", "json")

    assert result.exit_code == 0, result.output
    assert [row["stale"] for row in json.loads(result.stdout)["nodes"]] == [False, False]
    bad = project.cli("nodes", "--stale-after", "soon")
    assert bad.exit_code == 2
    assert "is not a duration" in bad.stderr


def test_workers_table(project: Project, registered: float) -> None:
    result = project.cli("workers")

    assert result.exit_code == 0, result.output
    for text in ("node", "worker", "current job", "processed", "failed", "RSS MiB"):
        assert text in result.stdout
    busy = cells(result.stdout, "node-a/0", 1)
    assert busy[:8] == ["node-a", "node-a/0", "701", "busy", JOB_ID, "12", "1", "64.0"]
    assert busy[8].endswith("s ago")
    idle = cells(result.stdout, "node-a/1", 1)
    assert idle[:8] == ["node-a", "node-a/1", "702", "idle", "-", "7", "0", "48.5"]
    assert "node-b" not in result.stdout  # it has no workers
    assert "2 workers, 1 busy" in result.stdout


def test_workers_json(project: Project, registered: float) -> None:
    result = project.cli("workers", "-o", "json")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["workers"]
    assert [(r["node_id"], r["worker_id"]) for r in rows] == [
        ("node-a", "node-a/0"),
        ("node-a", "node-a/1"),
    ]
    busy, idle = rows
    assert busy["pid"] == 701
    assert busy["state"] == "busy"
    assert busy["current_job"] == JOB_ID
    assert busy["processed"] == 12
    assert busy["failed"] == 1
    assert busy["rss_mib"] == 64.0
    assert busy["rss_bytes"] == 64 * MIB
    assert 3 <= busy["heartbeat_age"] < 30
    assert busy["stale"] is False
    assert idle["current_job"] is None
    assert idle["rss_mib"] == 48.5


def test_empty_registry(project: Project) -> None:
    assert "no nodes registered" in project.cli("nodes").stdout
    assert "no workers registered" in project.cli("workers").stdout
    assert json.loads(project.cli("nodes", "-o", "json").stdout)["nodes"] == []
    assert json.loads(project.cli("workers", "-o", "json").stdout)["workers"] == []


def test_both_commands_are_listed_in_help(project: Project) -> None:
    result = project.cli("--help", app=False)

    assert result.exit_code == 0
    assert "nodes" in result.stdout
    assert "workers" in result.stdout


# --- admin helpers ----------------------------------------------------------------------------
def test_rows_judge_staleness_by_the_threshold() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    store.register_node(make_node("n", clock.now()))
    clock.advance(30)

    [node] = admin.node_rows(store, clock.now())
    assert node.heartbeat_age == 30
    assert node.stale is False  # not *older* than 30 s
    assert admin.node_rows(store, clock.now() + 1)[0].stale is True
    assert admin.node_rows(store, clock.now(), stale_after=10)[0].stale is True

    workers = admin.worker_rows(store, clock.now(), stale_after=31)
    assert [w.heartbeat_age for w in workers] == [33, 34]  # their own reports
    assert [w.stale for w in workers] == [True, True]
    assert [w.stale for w in admin.worker_rows(store, clock.now(), stale_after=60)] == [
        False,
        False,
    ]


def test_a_worker_without_its_own_heartbeat_takes_its_nodes() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    quiet = WorkerInfo(id="w", pid=2, state="starting")
    store.register_node(NodeInfo(id="n", host="h", pid=1, queues=("q",), workers=(quiet,)))
    clock.advance(12)

    [row] = admin.worker_rows(store, clock.now())

    assert row.heartbeat_age == 12
    assert row.stale is False
    [node] = admin.node_rows(store, clock.now())
    assert node.started_at is None
    assert node.to_dict()["started_at"] is None
