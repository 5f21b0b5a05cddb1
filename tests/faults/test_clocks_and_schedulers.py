"""Clock faults (a ``time.time`` shim in the workers' app) and two supervisors that both
run the scheduler (RELIABILITY.md §7.1; issue 10, defects 2 and 3)."""

from __future__ import annotations

import dataclasses
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from conveyor.stores.base import JobQuery

from .checker import Report
from .harness import CHAOS, Cluster
from .test_crashes import STORES, dsn_for

pytestmark = pytest.mark.faults_full

HOUR = 3600.0


def _open(
    clusters: list[Cluster], store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Cluster:
    timing = dataclasses.replace(CHAOS, handler=0.05)
    cluster = Cluster(dsn_for(store, request, tmp_path), tmp_path / "cluster", timing)
    clusters.append(cluster)
    return cluster


@pytest.mark.parametrize("step", [-HOUR, HOUR], ids=["back", "forward"])
@pytest.mark.parametrize("store", STORES)
def test_clock_step_then_kill_9_of_the_tree(
    store: str,
    step: float,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cluster_factory: list[Cluster],
    record_report: list[Report],
) -> None:
    """The host's wall clock steps by an hour under a running tree, which then dies: its
    jobs are recovered within the bound (a step must not stretch the lease)."""
    cluster = _open(cluster_factory, store, request, tmp_path)
    cluster.enqueue_work(200, 0.05)
    started = time.monotonic()
    first = cluster.start("-c", "2", clock_step=f"1:{step}")
    cluster.wait_for(lambda: cluster.runs() >= 15, 60, "the first runs")
    time.sleep(max(0.0, started + 2.0 - time.monotonic()))  # past the step

    def kill_and_replace() -> None:
        cluster.kill_tree(first)
        cluster.start("-c", "2", clock_skew=step)  # the same host, after its step

    cluster.fault(kill_and_replace)
    cluster.drain()
    direction = "back" if step < 0 else "forward"
    report = cluster.report(f"clock step {direction} 1 h, then kill -9 of the tree", store)
    record_report.append(report)
    report.assert_guarantees()


@pytest.mark.parametrize("store", STORES)
def test_a_host_an_hour_ahead_next_to_a_healthy_one(
    store: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cluster_factory: list[Cluster],
    record_report: list[Report],
) -> None:
    """A skewed worker shares the queue with a healthy one: it rescues none of the
    healthy worker's jobs, so nothing runs twice."""
    cluster = _open(cluster_factory, store, request, tmp_path)
    cluster.timing = dataclasses.replace(cluster.timing, handler=0.3)
    cluster.enqueue_work(30, 0.3)
    cluster.start("-c", "1")
    cluster.start("-c", "1", clock_skew=HOUR)
    cluster.drain()
    report = cluster.report("a host 1 h ahead next to a healthy one", store)
    record_report.append(report)
    report.assert_guarantees()
    assert report.duplicate_runs == 0, report.row()


def _beat_ids(cluster: Cluster) -> list[str]:
    page = cluster.app.store.search(JobQuery(limit=10_000))
    return [job.id for job in page.items if job.task == "beat"]


@pytest.mark.parametrize("store", STORES)
def test_two_supervisors_with_schedulers(
    store: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cluster_factory: list[Cluster],
    record_report: list[Report],
) -> None:
    """Two trees both run the scheduler; one dies by kill -9: every fire time is
    enqueued once and every job completes."""
    cluster = _open(cluster_factory, store, request, tmp_path)
    cluster.enqueue_work(40, 0.05)
    first = cluster.start("-c", "1", "--with-scheduler")
    second = cluster.start("-c", "1", "--with-scheduler")
    cluster.wait_for(lambda: len(_beat_ids(cluster)) >= 4, 60, "the first fire times")
    cluster.fault(lambda: cluster.kill_tree(first))
    fired = len(_beat_ids(cluster))
    cluster.wait_for(lambda: len(_beat_ids(cluster)) >= fired + 4, 60, "fire times after the kill")
    second.send_signal(signal.SIGTERM)  # no more fire times; its unstarted jobs go back
    second.wait(60)
    cluster.start("-c", "1")
    cluster.acknowledged += _beat_ids(cluster)
    cluster.drain()
    report = cluster.report("two supervisors with schedulers, one killed", store)
    record_report.append(report)
    report.assert_guarantees()
    jobs = cluster.jobs()
    beats = [job for job in jobs.values() if job is not None and job.task == "beat"]
    keys = Counter(job.unique_key for job in beats)
    assert keys and set(keys.values()) == {1}, keys
