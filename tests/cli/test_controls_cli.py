"""``conveyor jobs prioritize/move``, ``-o json`` on every command that changes jobs, id
prefixes, and ``conveyor queues pause/resume`` (in-process, and a real worker process)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor import JobState
from conveyor.job import Job
from conveyor.stores.base import ClaimParams

from .conftest import MODULE, Project, errors, subprocess_env


def _waiting_and_done(project: Project) -> dict[str, str]:
    """A completed job, a running one, and pending and scheduled ones."""
    ids = {"done": project.enqueue("t.greet", "a")}
    project.run_worker()
    ids["running"] = project.enqueue("t.greet", "b")
    project.app.store.claim(ClaimParams(queues=["default"], worker_id="test"))
    ids["pending"] = project.enqueue("t.greet", "c")
    ids["later"] = project.enqueue("t.greet", "d", delay=3600)
    return ids


def _json(result_stdout: str) -> dict[str, Any]:
    """The command's JSON object without its ``store`` key (which must name jobs.db)."""
    data = json.loads(result_stdout)
    assert isinstance(data, dict)
    assert data.pop("store").endswith("/jobs.db")
    return data


def _job(project: Project, job_id: str) -> Job:
    job = project.app.store.get(job_id)
    assert job is not None
    return job


# --- prioritize ------------------------------------------------------------------------------
def test_prioritize_by_id_changes_waiting_jobs_and_explains_the_rest(project: Project) -> None:
    ids = _waiting_and_done(project)

    result = project.cli(
        "jobs", "prioritize", "--priority", "high", ids["pending"], ids["done"], ids["later"]
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "set priority 20 on 2 jobs; 1 skipped (completed: only pending, scheduled, "
        "retrying or blocked jobs can be re-prioritized)"
    )
    store = project.app.store
    assert [j.priority for j in store.get_many([ids["pending"], ids["later"], ids["done"]])] == [
        20,
        20,
        0,
    ]


def test_prioritize_by_filter_selects_waiting_jobs_only(project: Project) -> None:
    ids = _waiting_and_done(project)

    result = project.cli("jobs", "prioritize", "-p", "-7", "--task", "t.greet", "--yes")

    assert result.exit_code == 0, result.output
    assert "2 jobs match" in result.stdout
    assert "set priority -7 on 2 jobs" in result.stdout
    assert _job(project, ids["running"]).priority == 0


def test_prioritize_refuses_a_bad_priority(project: Project) -> None:
    job_id = project.enqueue("t.greet", "a")

    result = project.cli("jobs", "prioritize", "--priority", "500", job_id)

    assert result.exit_code == 2
    assert "out of range -100..100" in result.stderr
    assert _job(project, job_id).priority == 0


# --- move ------------------------------------------------------------------------------------
def test_move_by_id_as_json_lists_changed_and_skipped_with_reasons(project: Project) -> None:
    ids = _waiting_and_done(project)

    result = project.cli(
        "jobs",
        "move",
        "--to-queue",
        "urgent",
        ids["pending"],
        ids["running"],
        "0" * 8 + "-0000-7000-8000-000000000000",
        "-o",
        "json",
    )

    assert result.exit_code == 0, result.output
    data = _json(result.stdout)
    assert data["action"] == "move"
    assert data["changed"] == [ids["pending"]]
    assert data["skipped"] == [
        {
            "id": ids["running"],
            "reason": "processing: only pending, scheduled, retrying or blocked jobs can be moved",
        },
        {"id": "00000000-0000-7000-8000-000000000000", "reason": "unknown id"},
    ]
    assert _job(project, ids["pending"]).queue == "urgent"


def test_move_refuses_an_invalid_queue_before_asking(project: Project) -> None:
    project.enqueue("t.greet", "a")

    result = project.cli("jobs", "move", "--to-queue", "Bad Queue", "--state", "pending")

    assert result.exit_code == 2
    assert "--to-queue" in result.stderr
    assert "not a valid queue name" in result.stderr


def test_move_by_filter_with_json_keeps_stdout_pure_json(project: Project) -> None:
    ids = _waiting_and_done(project)

    result = project.cli(
        "jobs", "move", "--to-queue", "later", "--task", "t.greet", "-y", "-o", "json"
    )

    assert result.exit_code == 0, result.output
    assert sorted(_json(result.stdout)["changed"]) == sorted([ids["pending"], ids["later"]])
    assert "2 jobs match" in result.stderr


def test_json_of_a_filter_that_matches_nothing(project: Project) -> None:
    result = project.cli("jobs", "move", "--to-queue", "x", "--queue", "empty", "-o", "json")

    assert result.exit_code == 0, result.output
    assert _json(result.stdout) == {"action": "move", "changed": [], "skipped": []}


# --- -o json on retry, cancel, purge ---------------------------------------------------------
def test_retry_cancel_and_purge_report_json(project: Project) -> None:
    ids = _waiting_and_done(project)

    cancel = project.cli(
        "jobs", "cancel", ids["pending"], ids["running"], ids["done"], "-o", "json"
    )
    assert _json(cancel.stdout) == {
        "action": "cancel",
        "changed": [ids["pending"]],
        "requested": [ids["running"]],
        "skipped": [{"id": ids["done"], "reason": "completed: already finished"}],
    }

    retry = project.cli("jobs", "retry", ids["pending"], ids["later"], "-o", "json")
    assert _json(retry.stdout) == {
        "action": "retry",
        "changed": [ids["pending"]],
        "skipped": [
            {
                "id": ids["later"],
                "reason": "scheduled: only failed or cancelled jobs can be retried",
            }
        ],
    }

    purge = project.cli("jobs", "purge", ids["done"], ids["running"], "-o", "json")
    assert _json(purge.stdout) == {
        "action": "purge",
        "changed": [ids["done"]],
        "skipped": [{"id": ids["running"], "reason": "processing: cancel it first"}],
    }


# --- id prefixes -----------------------------------------------------------------------------
def _shared_prefix(a: str, b: str) -> str:
    size = 0
    while a[size] == b[size]:
        size += 1
    return a[:size]


def test_show_and_actions_accept_a_unique_prefix(project: Project) -> None:
    first = project.enqueue("t.greet", "a")
    second = project.enqueue("t.greet", "b")
    unique = second[: len(_shared_prefix(first, second)) + 1]

    shown = project.cli("jobs", "show", unique, "-o", "json")
    assert shown.exit_code == 0, shown.output
    assert _json(shown.stdout)["job"]["id"] == second

    moved = project.cli("jobs", "move", "--to-queue", "other", unique.upper(), "-o", "json")
    assert _json(moved.stdout)["changed"] == [second]


def test_an_ambiguous_prefix_is_an_error_listing_candidates(project: Project) -> None:
    first = project.enqueue("t.greet", "a")
    second = project.enqueue("t.greet", "b")
    shared = _shared_prefix(first, second)

    for args in (("jobs", "show", shared), ("jobs", "cancel", shared)):
        result = project.cli(*args)
        assert result.exit_code == 1
        assert f"id prefix {shared!r} matches several jobs" in result.stderr
        assert first in result.stderr and second in result.stderr
    assert project.app.get_job(first).state is JobState.PENDING


def test_a_prefix_that_matches_nothing_is_not_found(project: Project) -> None:
    job_id = project.enqueue("t.greet", "a")
    other = "f" if job_id[0] != "f" else "0"

    result = project.cli("jobs", "show", other * 6)

    assert result.exit_code == 1
    assert errors(result).strip() == f"error: no job with id {other * 6!r}"


# --- queues pause / resume -------------------------------------------------------------------
def test_pause_and_resume_show_in_the_overview(project: Project) -> None:
    project.enqueue("t.greet", "a")

    paused = project.cli("queues", "pause", "default", "idle")
    assert paused.exit_code == 0, paused.output
    assert paused.stdout.strip() == "paused default, idle"
    again = project.cli("queues", "pause", "default", "-o", "json")
    assert _json(again.stdout) == {"changed": [], "unchanged": ["default"]}

    overview = json.loads(project.cli("queues", "-o", "json").stdout)
    rows = {row["queue"]: row for row in overview["queues"]}
    assert rows["default"]["paused"] is True
    assert rows["default"]["counts"]["pending"] == 1
    assert rows["idle"]["paused"] is True  # paused before it has any job
    assert rows["idle"]["total"] == 0
    table = project.cli("queues")
    assert "paused" in table.stdout

    resumed = project.cli("queues", "resume", "default", "other")
    assert resumed.stdout.strip() == "resumed default; not paused: other"
    overview = json.loads(project.cli("queues", "-o", "json").stdout)
    rows = {row["queue"]: row for row in overview["queues"]}
    assert rows["default"]["paused"] is False
    assert project.app.paused_queues() == ["idle"]


def test_pause_refuses_a_bad_queue_name(project: Project) -> None:
    result = project.cli("queues", "pause", "Not Valid")

    assert result.exit_code == 2
    assert "not a valid queue name" in result.stderr
    assert project.app.paused_queues() == []


def test_a_worker_process_leaves_a_paused_queue_alone(project: Project) -> None:
    held = project.enqueue("t.add", 1, 2)  # queue "high"
    other = project.enqueue("t.greet", "bob")  # queue "default"
    assert project.cli("queues", "pause", "high").exit_code == 0

    _worker_process(project.path)

    app = project.app
    assert app.get_job(other).state is JobState.COMPLETED
    assert app.get_job(held).state is JobState.PENDING

    assert project.cli("queues", "resume", "high").exit_code == 0
    _worker_process(project.path)

    assert app.get_job(held).state is JobState.COMPLETED
    assert app.get_job(held).result == 3


def test_a_running_worker_obeys_pause_and_resume_within_a_poll_interval(
    project: Project,
) -> None:
    poll = 0.2
    assert project.cli("queues", "pause", "high").exit_code == 0
    command = [sys.executable, "-m", "conveyor", "--app", MODULE, "worker", "-c", "1"]
    proc = subprocess.Popen(
        [*command, "-Q", "high,default", "--poll-interval", str(poll)],
        cwd=project.path,
        env=subprocess_env(project.path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        held = project.enqueue("t.add", 1, 2)  # queue "high"
        probe = project.enqueue("t.greet", "bob")  # queue "default": the worker is running
        _wait_for(lambda: project.app.get_job(probe).state is JobState.COMPLETED, proc)
        time.sleep(3 * poll)  # several claims of an idle worker with "high" paused
        assert project.app.get_job(held).state is JobState.PENDING

        resumed_at = time.monotonic()
        assert project.cli("queues", "resume", "high").exit_code == 0
        _wait_for(lambda: project.app.get_job(held).state is JobState.COMPLETED, proc)
        # One poll interval, plus generous room for a loaded machine (2 cores, many tests).
        assert time.monotonic() - resumed_at < poll + 5.0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert proc.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _worker_process(path: Path) -> None:
    """``python -m conveyor --app … worker --burst`` as a real child process."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor",
            "--app",
            MODULE,
            "worker",
            "--burst",
            "-c",
            "2",
            "-Q",
            "high,default",
            "--poll-interval",
            "0.05",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=path,
        env=subprocess_env(path),
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- dlq -------------------------------------------------------------------------------------
def test_dlq_retry_takes_a_prefix_and_reports_json(project: Project) -> None:
    failed = project.enqueue("t.boom")
    project.run_worker()
    pending = project.enqueue("t.greet", "a")
    unique = failed[: len(_shared_prefix(failed, pending)) + 1]

    result = project.cli("dlq", "retry", unique, pending, "-o", "json")

    assert result.exit_code == 0, result.output
    assert _json(result.stdout) == {
        "action": "retry",
        "changed": [failed],
        "skipped": [{"id": pending, "reason": "not in the dead-letter queue"}],
    }
    assert "1 job not in the dead-letter queue" in result.stderr
    assert project.app.get_job(failed).state is JobState.PENDING


def test_dlq_purge_reports_json(project: Project) -> None:
    failed = project.enqueue("t.boom")
    project.run_worker()

    result = project.cli("dlq", "purge", "--all", "--yes", "-o", "json")

    assert result.exit_code == 0, result.output
    assert _json(result.stdout) == {"action": "purge", "changed": [failed], "skipped": []}
    assert "1 job match" in result.stderr
