"""Fault scenarios on worker processes: kill -9 of a child and of a whole tree, SIGSTOP
past the lease, and a crashing task among normal ones (RELIABILITY.md §7.1 F1, F4, F5)."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest

from .checker import Report
from .harness import CHAOS, Cluster, children, is_worker_child

STORES = ["sqlite", "redis", "postgresql"]
QUICK = pytest.param("sqlite", 1, id="sqlite-prefetch1")


def dsn_for(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of that driver (real servers for Redis, with AOF, and PostgreSQL)."""
    if store == "sqlite":
        return f"sqlite:///{tmp_path / 'faults.db'}"
    if store == "redis":
        return str(request.getfixturevalue("redis_url"))
    return str(request.getfixturevalue("postgres_dsn"))


def store_and_prefetch() -> list[object]:
    """The quick subset first; every other combination only in ``make faults``."""
    full = [
        pytest.param(
            store, prefetch, id=f"{store}-prefetch{prefetch}", marks=pytest.mark.faults_full
        )
        for store in STORES
        for prefetch in (1, 100)
        if (store, prefetch) != ("sqlite", 1)
    ]
    return [QUICK, *full]


def _workload(prefetch: int) -> tuple[int, float]:
    """(jobs, seconds each): enough in flight for a kill to interrupt claimed batches."""
    return (60, 0.05) if prefetch == 1 else (400, 0.01)


def _open(
    clusters: list[Cluster],
    store: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    handler: float = 0.0,
) -> Cluster:
    timing = dataclasses.replace(CHAOS, handler=handler)
    cluster = Cluster(dsn_for(store, request, tmp_path), tmp_path / "cluster", timing)
    clusters.append(cluster)
    return cluster


@pytest.mark.parametrize(("store", "prefetch"), store_and_prefetch())
def test_kill_9_of_a_child(
    store: str,
    prefetch: int,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cluster_factory: list[Cluster],
    record_report: list[Report],
) -> None:
    count, seconds = _workload(prefetch)
    cluster = _open(cluster_factory, store, request, tmp_path, seconds)
    cluster.enqueue_work(count, seconds)
    proc = cluster.start("-c", "2", "--prefetch", str(prefetch))
    cluster.wait_for(lambda: cluster.runs() >= count // 4, 60, "the first runs")
    [child, *_] = [pid for pid in children(proc.pid) if is_worker_child(pid)]
    cluster.fault(lambda: os.kill(child, signal.SIGKILL))
    cluster.drain()
    report = cluster.report(f"kill -9 of a child, prefetch {prefetch}", store)
    record_report.append(report)
    report.assert_guarantees()
    assert proc.poll() is None, cluster.log_tail()


@pytest.mark.parametrize(("store", "prefetch"), store_and_prefetch())
def test_kill_9_of_a_whole_tree(
    store: str,
    prefetch: int,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cluster_factory: list[Cluster],
    record_report: list[Report],
) -> None:
    count, seconds = _workload(prefetch)
    cluster = _open(cluster_factory, store, request, tmp_path, seconds)
    cluster.enqueue_work(count, seconds)
    first = cluster.start("-c", "2", "--prefetch", str(prefetch))
    cluster.wait_for(lambda: cluster.runs() >= count // 4, 60, "the first runs")

    def kill_and_replace() -> None:
        cluster.kill_tree(first)
        cluster.start("-c", "2", "--prefetch", str(prefetch))

    cluster.fault(kill_and_replace)
    cluster.drain()
    report = cluster.report(f"kill -9 of a whole tree, prefetch {prefetch}", store)
    record_report.append(report)
    report.assert_guarantees()


@pytest.mark.faults_full
@pytest.mark.parametrize("store", STORES)
def test_sigstop_past_the_lease_with_a_second_worker(
    store: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cluster_factory: list[Cluster],
    record_report: list[Report],
) -> None:
    cluster = _open(cluster_factory, store, request, tmp_path, 0.2)
    cluster.enqueue_work(30, 0.2)
    paused = cluster.start("-c", "1")
    cluster.wait_for(lambda: cluster.runs() >= 3, 60, "the first runs")

    def stop_and_start_another() -> None:
        os.killpg(paused.pid, signal.SIGSTOP)
        cluster.start("-c", "1")

    cluster.fault(stop_and_start_another)
    time.sleep(cluster.timing.lease + cluster.timing.rescue_interval + 1.0)
    os.killpg(paused.pid, signal.SIGCONT)
    cluster.drain()
    report = cluster.report("SIGSTOP past the lease, SIGCONT, second worker", store)
    record_report.append(report)
    report.assert_guarantees()


@pytest.mark.parametrize(
    "store", ["sqlite", *(pytest.param(s, marks=pytest.mark.faults_full) for s in STORES[1:])]
)
def test_a_crashing_task_among_normal_ones(
    store: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cluster_factory: list[Cluster],
    record_report: list[Report],
) -> None:
    cluster = _open(cluster_factory, store, request, tmp_path)
    crashers = cluster.enqueue_crashers(1)
    cluster.enqueue_work(4)  # one claimed batch: every death hits all of them
    cluster.start("-c", "1", "--prefetch", "5")
    cluster.drain()
    report = cluster.report("a crashing task among normal ones (prefetch 5)", store)
    record_report.append(report)
    report.assert_guarantees()
    assert report.duplicate_runs == 0, report.row()
    jobs = cluster.jobs()
    assert [jobs[job_id].failure_reason for job_id in crashers] == ["poison"]  # type: ignore[union-attr]
