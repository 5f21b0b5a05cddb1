"""A corrupt row among normal jobs, on every driver where it can be written (issue 10,
defect 5): the worker keeps running, the innocent jobs all complete, the bad one ends
``failed/corrupt``, and the read commands show it instead of crashing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from conveyor.job import FailureReason, JobState
from conveyor.stores.redis.store import parse_dsn

from ..stores.test_corrupt import CASES, _file_damage, _postgres_damage, _sqlite_damage
from .checker import Report
from .harness import CHAOS, Cluster

Corrupt = Callable[[Cluster, str], None]
"""corrupt(cluster, job id): damage that stored job as a bad migration or disk would."""


def _field(case: str, driver: str) -> Corrupt:
    """One case of tests/stores/test_corrupt.py, written with its raw writer."""
    field, values = CASES[case]

    def corrupt(cluster: Cluster, job_id: str) -> None:
        if driver == "sqlite":
            _sqlite_damage(cluster.app.store)(job_id, field, values[driver])
        elif driver == "postgresql":
            _postgres_damage(cluster.dsn)(job_id, field, values[driver])
        else:
            _file_damage(Path(cluster.dsn.removeprefix("file://")))(job_id, field, values[driver])

    return corrupt


def _state(driver: str) -> Corrupt:
    """A state string no code knows (SQLite and File; PostgreSQL's CHECK refuses one)."""

    def corrupt(cluster: Cluster, job_id: str) -> None:
        if driver == "sqlite":
            _sqlite_damage(cluster.app.store)(job_id, "state", "exploded")
        else:
            _file_damage(Path(cluster.dsn.removeprefix("file://")))(job_id, "state", "exploded")

    return corrupt


def _file_not_json(cluster: Cluster, job_id: str) -> None:
    _file_damage(Path(cluster.dsn.removeprefix("file://")))(job_id, "*", b"\x00\xffnot json")


def _raw_redis(cluster: Cluster) -> tuple[redis.Redis, str]:
    url, prefix = parse_dsn(cluster.dsn)
    return redis.Redis.from_url(url), prefix


def _redis(edit: Callable[[redis.Redis, str, str], object]) -> Corrupt:
    """A raw edit of the job's hash (the writes of tests/stores/test_redis_corrupt.py)."""

    def corrupt(cluster: Cluster, job_id: str) -> None:
        client, prefix = _raw_redis(cluster)
        try:
            edit(client, prefix, job_id)
        finally:
            client.close()

    return corrupt


def _redis_unknown_state(client: redis.Redis, prefix: str, job_id: str) -> None:
    client.hset(f"{prefix}:job:{job_id}", "state", "exploded")
    client.smove(f"{prefix}:state:pending", f"{prefix}:state:exploded", job_id)
    client.hincrby(f"{prefix}:counts:default", "pending", -1)
    client.hincrby(f"{prefix}:counts:default", "exploded", 1)


SQL_CASES = ["errors-not-json", "errors-garbage-items", "unknown-dependency-policy"]
SCENARIOS: list[tuple[str, str, Corrupt]] = [
    *((d, c, _field(c, d)) for d in ("sqlite", "postgresql", "file") for c in SQL_CASES),
    ("sqlite", "text-priority", _field("text-priority", "sqlite")),
    ("file", "text-priority", _field("text-priority", "file")),
    ("sqlite", "unknown-state", _state("sqlite")),
    ("file", "unknown-state", _state("file")),
    ("file", "file-not-json", _file_not_json),
    ("redis", "missing-payload", _redis(lambda c, p, j: c.hdel(f"{p}:job:{j}", "payload"))),
    (
        "redis",
        "errors-garbage-items",
        _redis(lambda c, p, j: c.rpush(f"{p}:errors:{j}", b"\xffnot an error entry")),
    ),
    ("redis", "text-priority", _redis(lambda c, p, j: c.hset(f"{p}:job:{j}", "priority", "x"))),
    ("redis", "unknown-state", _redis(_redis_unknown_state)),
    ("redis", "deleted-hash", _redis(lambda c, p, j: c.delete(f"{p}:job:{j}"))),
]
GONE = {"deleted-hash"}
"""Cases that delete the job: it is no longer acknowledged; the queue must go on."""
QUICK = ("sqlite", "errors-not-json")


def _params() -> list[object]:
    return [
        pytest.param(
            driver,
            corrupt,
            id=f"{driver}-{case}",
            marks=() if (driver, case) == QUICK else pytest.mark.faults_full,
        )
        for driver, case, corrupt in SCENARIOS
    ]


def _dsn(driver: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if driver == "sqlite":
        return f"sqlite:///{tmp_path / 'faults.db'}"
    if driver == "file":
        return f"file://{tmp_path / 'files'}"
    if driver == "redis":
        return str(request.getfixturevalue("redis_url"))
    return str(request.getfixturevalue("postgres_dsn"))


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONVEYOR_STORE": cluster.dsn}
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("driver", "corrupt"), _params())
def test_a_corrupt_row_among_normal_jobs(
    driver: str,
    corrupt: Corrupt,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cluster_factory: list[Cluster],
    record_report: list[Report],
) -> None:
    cluster = Cluster(
        _dsn(driver, request, tmp_path), tmp_path / "cluster", dataclasses.replace(CHAOS)
    )
    cluster_factory.append(cluster)
    [bad] = cluster.enqueue_work(1, priority=10)  # first in the first claimed batch
    cluster.enqueue_work(30)
    corrupt(cluster, bad)
    cluster.corrupted.add(bad)
    case = request.node.callspec.id.removeprefix(f"{driver}-")
    if case in GONE:
        cluster.acknowledged.remove(bad)
    proc = cluster.start("-c", "1", "--prefetch", "10")
    cluster.drain(60)
    report = cluster.report(f"a corrupt row ({case}) among 30 jobs", driver)
    record_report.append(report)
    report.assert_guarantees()
    assert proc.poll() is None, cluster.log_tail()
    if case in GONE:
        assert cluster.app.store.get(bad) is None
        return
    job = cluster.jobs()[bad]
    assert job is not None
    assert (job.state, job.failure_reason) == (JobState.FAILED, FailureReason.CORRUPT)
    for command in (["dlq", "list"], ["jobs", "show", bad]):
        shown = _cli(cluster, *command)
        assert shown.returncode == 0 and bad[:8] in shown.stdout, (command, shown)
