"""Issue 10, defects 4 and 5 on Redis, end to end: a corrupt job hash, or an index entry
that disagrees with its job, never crashes ``conveyor jobs list``, ``jobs show`` or ``dlq
list``, and a worker runs every innocent job while the bad one is dropped or quarantined.

Each corruption is written with a raw client into a real Redis store (the app is pointed at
it with ``CONVEYOR_STORE``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import redis

from conveyor.job import FailureReason, JobState
from conveyor.stores.base import ClaimParams, Completion
from conveyor.stores.redis.store import parse_dsn

from .conftest import MODULE, Project, subprocess_env

S = JobState


class Raw:
    """A raw client on the store's keys."""

    def __init__(self, dsn: str) -> None:
        url, self.prefix = parse_dsn(dsn)
        self.client = redis.Redis.from_url(url)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))


@pytest.fixture
def rproject(
    project: Project, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Project, Raw, str]]:
    """The CLI test project, its app redirected to a fresh Redis store."""
    monkeypatch.setenv("CONVEYOR_STORE", redis_url)
    project.app.store.migrate()
    raw = Raw(redis_url)
    try:
        yield project, raw, redis_url
    finally:
        raw.client.close()


def _completed_but_still_pending(project: Project, raw: Raw, job_id: str) -> None:
    store = project.app.store
    [lease] = store.claim(ClaimParams(queues=["default"], worker_id="w", job_ids=[job_id]))
    store.complete([Completion(lease)])
    pm = raw.client.hget(raw.key("job", job_id), "pm")
    raw.client.zadd(raw.key("q", "default", "pending"), {pm: -100})


def _unknown_state(project: Project, raw: Raw, job_id: str) -> None:
    """A state no Conveyor writes, its state set and counter in step with it."""
    raw.client.hset(raw.key("job", job_id), "state", "exploded")
    raw.client.smove(raw.key("state", "pending"), raw.key("state", "exploded"), job_id)
    raw.client.hincrby(raw.key("counts", "default"), "pending", -1)
    raw.client.hincrby(raw.key("counts", "default"), "exploded", 1)


def _deleted_hash(project: Project, raw: Raw, job_id: str) -> None:
    raw.client.delete(raw.key("job", job_id))


def _missing_payload(project: Project, raw: Raw, job_id: str) -> None:
    raw.client.hdel(raw.key("job", job_id), "payload")


def _garbage_errors(project: Project, raw: Raw, job_id: str) -> None:
    raw.client.rpush(raw.key("errors", job_id), b"\xff\x00garbage")


def _non_numeric_priority(project: Project, raw: Raw, job_id: str) -> None:
    raw.client.hset(raw.key("job", job_id), "priority", "urgent")


Corruption = Callable[[Project, Raw, str], None]
CASES: dict[str, tuple[Corruption, str]] = {
    # name: (how to corrupt, where the bad job ends: "completed", "corrupt" or "gone")
    "state-mismatch": (_completed_but_still_pending, "completed"),
    "unknown-state": (_unknown_state, "corrupt"),
    "deleted-hash": (_deleted_hash, "gone"),
    "missing-payload": (_missing_payload, "corrupt"),
    "garbage-errors": (_garbage_errors, "corrupt"),
    "non-numeric-priority": (_non_numeric_priority, "corrupt"),
}


def _read_commands_work(project: Project, dsn: str, bad: str, outcome: str) -> None:
    """``jobs list``, ``jobs show`` and ``dlq list`` answer (a crash raises here)."""
    listed = project.cli("--store", dsn, "jobs", "list", "-o", "json", app=False)
    assert listed.exit_code == 0, listed.output
    ids = [job["id"] for job in json.loads(listed.stdout)["jobs"]]
    assert (bad in ids) is (outcome != "gone")
    shown = project.cli("--store", dsn, "jobs", "show", bad, "-o", "json", app=False)
    if outcome == "gone":
        assert shown.exit_code != 0 and "Traceback" not in shown.output
    else:
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["job"]["id"] == bad
    dlq = project.cli("--store", dsn, "dlq", "list", "-o", "json", app=False)
    assert dlq.exit_code == 0, dlq.output
    table = project.cli("--store", dsn, "dlq", "list", app=False)
    assert table.exit_code == 0, table.output
    queues = project.cli("--store", dsn, "queues", app=False)
    assert queues.exit_code == 0, queues.output


@pytest.mark.parametrize("case", list(CASES))
def test_worker_runs_the_innocent_jobs_and_reads_never_crash(
    rproject: tuple[Project, Raw, str], case: str
) -> None:
    project, raw, dsn = rproject
    corrupt, outcome = CASES[case]
    bad = project.enqueue("t.greet", "bad", queue="default", priority=100)
    innocent = [project.enqueue("t.greet", f"n{i}", queue="default") for i in range(5)]
    corrupt(project, raw, bad)
    _read_commands_work(project, dsn, bad, outcome)

    project.run_worker("default")

    app = project.app
    for job_id in innocent:
        job = app.store.get(job_id)
        assert job is not None and job.state is S.COMPLETED, (job_id, job)
        assert job.attempt == 1 and not job.errors
    job = app.store.get(bad)
    if outcome == "gone":
        assert job is None
    elif outcome == "completed":
        assert job is not None and job.state is S.COMPLETED and job.attempt == 1
    else:
        assert job is not None and job.state is S.FAILED
        assert job.failure_reason == FailureReason.CORRUPT
        assert job.errors[-1].type == "CorruptJob"
    counts = raw.client.hgetall(raw.key("counts", "default"))
    assert all(int(v) >= 0 for v in counts.values()), counts
    assert int(counts.get(b"pending", b"0")) == 0
    _read_commands_work(project, dsn, bad, outcome)
    info = project.cli("--store", dsn, "info", "-o", "json", app=False)
    assert info.exit_code == 0, info.output
    details = json.loads(info.stdout)["store_info"]["details"]
    repaired = {"completed": "1", "gone": "1"}.get(outcome, "0")
    assert details["repaired index entries"] == repaired
    assert details["quarantined corrupt jobs"] == ("1" if outcome == "corrupt" else "0")
    if outcome == "corrupt":
        dlq = project.cli("--store", dsn, "dlq", "list", "-o", "json", app=False)
        assert bad in dlq.stdout
        shown = project.cli("--store", dsn, "jobs", "show", bad, app=False)
        assert "corrupt" in shown.stdout


@pytest.mark.slow
def test_supervised_worker_with_a_corrupt_job_in_its_batch(
    rproject: tuple[Project, Raw, str],
) -> None:
    """A real worker tree (supervisor and child, a batch of 10): the job without a payload
    is quarantined inside the claim, the other nine run once, none is dead-lettered, no
    child dies, and the worker's log names the quarantine."""
    project, raw, dsn = rproject
    bad = project.enqueue("t.greet", "bad", queue="default", priority=100)
    innocent = [project.enqueue("t.greet", f"n{i}", queue="default") for i in range(9)]
    raw.client.hdel(raw.key("job", bad), "payload")
    env = {**subprocess_env(project.path), "CONVEYOR_STORE": dsn}
    worker = subprocess.run(
        [
            *(sys.executable, "-m", "conveyor", "worker", "--app", MODULE, "--burst"),
            *("-c", "1", "--prefetch", "10", "-Q", "default", "--poll-interval", "0.05"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project.path,
        env=env,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr
    store = project.app.store
    for job_id in innocent:
        job = store.get(job_id)
        assert job is not None and job.state is S.COMPLETED, (job_id, job)
        assert job.attempt == 1 and job.rescue_count == 0
    job = store.get(bad)
    assert job is not None and job.state is S.FAILED
    assert job.failure_reason == FailureReason.CORRUPT
    assert "missing field payload" in job.errors[-1].message
    log = worker.stdout + worker.stderr
    assert f"job {bad} cannot be decoded (missing field payload)" in log, log
    assert " died: " not in log, log  # no child death, no restart


def test_quarantined_job_is_retried_once_fixed_and_purged_otherwise(
    rproject: tuple[Project, Raw, str],
) -> None:
    """The DLQ commands work on quarantined jobs: one whose payload is restored runs again
    after ``dlq retry``; one left broken is removed by ``dlq purge``."""
    project, raw, dsn = rproject
    fixed = project.enqueue("t.greet", "fixed", queue="default")
    broken = project.enqueue("t.greet", "broken", queue="default")
    payload = raw.client.hget(raw.key("job", fixed), "payload")
    raw.client.hdel(raw.key("job", fixed), "payload")
    raw.client.hdel(raw.key("job", broken), "payload")
    project.run_worker("default")
    store = project.app.store
    for job_id in (fixed, broken):
        job = store.get(job_id)
        assert job is not None and job.failure_reason == FailureReason.CORRUPT

    assert isinstance(payload, bytes)
    raw.client.hset(raw.key("job", fixed), "payload", payload)
    retried = project.cli("--store", dsn, "dlq", "retry", fixed, "--yes", app=False)
    assert retried.exit_code == 0, retried.output
    project.run_worker("default")
    job = store.get(fixed)
    assert job is not None and job.state is S.COMPLETED, job

    purged = project.cli("--store", dsn, "dlq", "purge", broken, "--yes", app=False)
    assert purged.exit_code == 0, purged.output
    assert store.get(broken) is None
    assert not raw.client.sismember(raw.key("state", "failed"), broken)
    counts = raw.client.hgetall(raw.key("counts", "default"))
    assert {k: int(v) for k, v in counts.items() if int(v)} == {b"completed": 1}
