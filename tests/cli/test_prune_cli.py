"""``conveyor prune`` by hand, and a real ``conveyor worker`` process pruning on its own."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from conveyor.cli import main
from conveyor.job import JobState

from .conftest import MODULE, Project, subprocess_env


def _age(project: Project, job_ids: list[str], seconds: float) -> None:
    """Move the jobs' finish time ``seconds`` into the past (as if they finished then)."""
    with sqlite3.connect(project.db) as conn:
        conn.executemany(
            "UPDATE jobs SET finished_at = finished_at - ? WHERE id = ?",
            [(seconds, job_id) for job_id in job_ids],
        )


def _history(project: Project) -> tuple[list[str], list[str], str]:
    """Old completed jobs, recent completed jobs, and an old failed one."""
    old = [project.enqueue("t.add", i, 1) for i in range(3)]
    recent = [project.enqueue("t.add", i, 2) for i in range(2)]
    failed = project.enqueue("t.boom")
    project.run_worker("high,default")
    _age(project, [*old, failed], 7200)
    return old, recent, failed


def test_dry_run_counts_and_deletes_nothing(project: Project) -> None:
    old, recent, failed = _history(project)

    result = project.cli("prune", "--dry-run", "--completed", "1h", "-o", "json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["deleted"] == {"completed": 3, "failed": 0, "cancelled": 0}
    assert report["retention"] == {"completed": "1h", "failed": "2w", "cancelled": "1d"}
    assert report["store"].endswith("jobs.db")
    assert len(project.app.store.get_many([*old, *recent, failed])) == 6


def test_prune_deletes_old_jobs_per_state(project: Project) -> None:
    old, recent, failed = _history(project)

    text = project.cli("prune", "--completed", "1h", "--failed", "90m", "--cancelled", "forever")

    assert text.exit_code == 0, text.output
    assert "completed: deleted 3 (older than 1h)" in text.output
    assert "failed: deleted 1 (older than 90m)" in text.output
    assert "cancelled: kept forever" in text.output
    store = project.app.store
    assert store.get_many([*old, failed]) == []
    assert [job.state for job in store.get_many(recent)] == [JobState.COMPLETED] * 2
    again = json.loads(project.cli("prune", "--completed", "1h", "-o", "json").stdout)
    assert again["deleted"]["completed"] == 0
    assert again["related_rows"] == 0


def test_retention_from_the_environment(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    old, _, _ = _history(project)
    monkeypatch.setenv("CONVEYOR_RETENTION_COMPLETED", "1h")

    report = json.loads(project.cli("prune", "-o", "json").stdout)

    assert report["deleted"]["completed"] == 3
    assert project.app.store.get_many(old) == []


@pytest.mark.parametrize(
    ("value", "needle"), [("0", "'forever'"), ("soon", "45s, 30m, 12h, 1d, 2w")]
)
def test_bad_retention_is_refused(project: Project, value: str, needle: str) -> None:
    old, _, _ = _history(project)

    result = project.runner.invoke(main, ["--app", MODULE, "prune", "--completed", value])

    assert result.exit_code != 0
    assert "retention_completed" in result.output and needle in result.output
    assert len(project.app.store.get_many(old)) == 3


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--solo"]], ids=["supervisor", "solo"])
def test_a_worker_process_prunes_by_its_retention(project: Project, mode: list[str]) -> None:
    old, recent, failed = _history(project)
    fresh = project.enqueue("t.add", 5, 5)

    done = subprocess.run(
        [
            *(sys.executable, "-m", "conveyor", "--app", MODULE, "worker", *mode, "--burst"),
            *("-Q", "high,default", "--retention-completed", "1h", "--retention-failed", "3h"),
        ],
        cwd=project.path,
        env=subprocess_env(project.path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    store = project.app.store
    assert store.get_many(old) == []
    kept = store.get_many([*recent, failed, fresh])
    assert [job.id for job in kept] == [*recent, failed, fresh]
    assert "pruner: deleted 3 jobs (completed=3 failed=0 cancelled=0)" in done.stderr
