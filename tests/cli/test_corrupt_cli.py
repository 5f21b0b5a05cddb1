"""Read commands on a store with corrupt rows (issue 10, defect 5): ``jobs list``, ``dlq
list``, ``jobs show`` and ``queues`` show a damaged job as corrupt instead of crashing,
and a real burst worker runs every innocent job and quarantines the bad one."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import Project, subprocess_env


def _damage(db: Path, job_id: str, column: str, value: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (value, job_id))
    conn.close()


def _json(project: Project, *args: str) -> Any:
    result = project.cli("--store", project.dsn, *args, "-o", "json", app=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_read_commands_show_a_job_with_an_unknown_state_as_corrupt(project: Project) -> None:
    good = project.enqueue("t.add", 1, 2)
    bad = project.enqueue("t.add", 3, 4)
    _damage(project.db, bad, "state", "exploded")

    listed = _json(project, "jobs", "list")
    assert sorted(job["id"] for job in listed["jobs"]) == sorted([good, bad])
    dlq = _json(project, "dlq", "list")
    assert [(job["id"], job["failure_reason"]) for job in dlq["jobs"]] == [(bad, "corrupt")]
    shown = _json(project, "jobs", "show", bad)["job"]
    assert shown["state"] == "failed" and shown["failure_reason"] == "corrupt"
    assert "exploded" in shown["errors"][-1]["message"]
    (queue,) = _json(project, "queues")["queues"]
    assert queue["counts"]["failed"] == 1 and queue["counts"]["pending"] == 1

    text = project.cli("--store", project.dsn, "jobs", "show", bad, app=False)
    assert text.exit_code == 0, text.output
    assert "corrupt" in text.stdout


def test_read_commands_survive_a_damaged_error_list_and_policy(project: Project) -> None:
    bad_errors = project.enqueue("t.add", 1, 2)
    bad_policy = project.enqueue("t.add", 3, 4)
    _damage(project.db, bad_errors, "errors", "not json {")
    _damage(project.db, bad_policy, "on_dependency_failure", "explode")

    listed = _json(project, "jobs", "list")
    reasons = {job["id"]: job["failure_reason"] for job in listed["jobs"]}
    assert reasons == {bad_errors: "corrupt", bad_policy: "corrupt"}
    searched = _json(project, "jobs", "list", "--text", "kaboom")
    assert searched["jobs"] == []
    shown = _json(project, "jobs", "show", bad_errors)["job"]
    assert "errors" in shown["errors"][-1]["message"]


def test_burst_worker_runs_the_innocent_jobs_and_quarantines_the_corrupt_one(
    project: Project,
) -> None:
    """A real ``conveyor worker --burst`` (supervisor and child processes) on SQLite with
    one corrupt row among 100 jobs: 100 completed, 1 quarantined, no child died."""
    app = project.app
    ids = [
        r.id for r in app.get_task("t.greet").enqueue_many([((f"n{i}",), {}) for i in range(101)])
    ]
    bad = ids[50]
    _damage(project.db, bad, "errors", "not json {")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor",
            "--app",
            "cli_test_app",
            "worker",
            "--burst",
            "-c",
            "2",
            "--prefetch",
            "10",
            "--poll-interval",
            "0.05",
        ],
        cwd=project.path,
        env=subprocess_env(project.path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "died" not in proc.stderr and "restarting" not in proc.stderr, proc.stderr
    jobs = {job.id: job for job in app.store.get_many(ids)}
    completed = [i for i in ids if jobs[i].state.value == "completed"]
    assert len(completed) == 100 and bad not in completed
    assert (jobs[bad].state.value, jobs[bad].failure_reason) == ("failed", "corrupt")
    assert "quarantined" in proc.stderr
