"""A memory hog among normal jobs (issue 10, defect 7; RELIABILITY.md §7.1): the guard
stops the hog during its run, the child is replaced, and the jobs claimed with it are
neither lost nor blamed."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import MemoryLimitExceeded

from .checker import Report
from .harness import Cluster
from .test_crashes import STORES, _open

pytestmark = pytest.mark.faults_full


@pytest.mark.parametrize("store", STORES)
def test_a_memory_hog_among_normal_ones(
    store: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cluster_factory: list[Cluster],
    record_report: list[Report],
) -> None:
    cluster = _open(cluster_factory, store, request, tmp_path)
    hogs = cluster.enqueue_hogs(2)
    cluster.enqueue_work(60, 0.01)
    cluster.start("-c", "2", "--prefetch", "5")
    cluster.drain()
    report = cluster.report("a memory hog among normal ones (max_memory 120MiB)", store)
    record_report.append(report)
    report.assert_guarantees()
    jobs = cluster.jobs()
    for job_id in hogs:
        job = jobs[job_id]
        assert job is not None and job.failure_reason == "exhausted", job
        assert [e.type for e in job.errors] == [MemoryLimitExceeded.__name__] * 2, job.errors
