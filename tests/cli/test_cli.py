"""The ``conveyor`` command in-process (CliRunner) against a SQLite store in tmp_path,
plus the management functions of :mod:`conveyor.admin` it relies on."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from conveyor import App, JobState, admin
from conveyor.cli import main
from conveyor.errors import ConfigurationError
from conveyor.job import Job
from conveyor.stores.base import ClaimParams

from .conftest import MODULE, Project, errors, subprocess_env

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00+00:00


# --- entry points and app loading -------------------------------------------------------------
def test_python_m_conveyor_help(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for command in ("worker", "enqueue", "jobs", "queues", "dlq", "info", "migrate"):
        assert command in done.stdout
    assert "CONVEYOR_APP" in done.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module:app", "no module named 'no_such_module'"),
        (f"{MODULE}:missing", f"module '{MODULE}' has no attribute 'missing'"),
        (f"{MODULE}:not_an_app", "is a int, not a conveyor.App"),
        ("not a module", "expected 'module:attribute'"),
    ],
)
def test_bad_app_spec_is_one_clear_line(project: Project, spec: str, message: str) -> None:
    result = project.runner.invoke(main, ["--app", spec, "info"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --app ")
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_app_module_alone_means_its_app_attribute(project: Project) -> None:
    assert admin.load_app(MODULE) is admin.load_app(f"{MODULE}:app")


def test_commands_needing_tasks_refuse_without_app(project: Project) -> None:
    result = project.cli("enqueue", "t.add", app=False)
    assert result.exit_code == 2
    assert "pass --app module:attribute" in result.stderr


# --- info and migrate -------------------------------------------------------------------------
def test_info_text_shows_store_codec_and_tasks(project: Project) -> None:
    result = project.cli("info")
    assert result.exit_code == 0, result.output
    for text in ("sqlite", str(project.db), "schema version", "codec encryption", "off"):
        assert text in result.stdout
    for task in ("t.add", "t.greet", "t.boom", "t.sleepy", "120s"):
        assert task in result.stdout


def test_info_json_is_pure_json(project: Project) -> None:
    result = project.cli("info", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["store"] == project.dsn
    assert data["store_info"]["driver"] == "sqlite"
    assert data["store_info"]["schema_version"] >= 1
    assert data["codec"]["serializer"] == "json"
    tasks = {t["name"]: t for t in data["tasks"]}
    assert tasks["t.add"]["queue"] == "high"
    assert tasks["t.add"]["priority"] == 5
    assert tasks["t.boom"]["max_attempts"] == 1
    assert tasks["t.sleepy"]["timeout"] == 120


def test_info_without_app_has_no_task_list(project: Project) -> None:
    result = project.cli("--store", project.dsn, "info", "-o", "json", app=False)
    assert result.exit_code == 0, result.output
    assert "tasks" not in json.loads(result.stdout)


def test_migrate_prints_schema_version(project: Project) -> None:
    result = project.cli("--store", f"sqlite:///{project.path / 'new.db'}", "migrate", app=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("schema version ")
    assert int(result.stdout.split()[-1]) >= 1
    assert (project.path / "new.db").exists()


# --- enqueue ----------------------------------------------------------------------------------
def test_enqueue_prints_the_id_of_a_stored_job(project: Project) -> None:
    result = project.cli("enqueue", "t.add", "--args", "[1, 2]")
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    info = project.app.get_job(job_id)
    assert info.job.task == "t.add"
    assert info.job.queue == "high"
    assert info.payload().args == [1, 2]


def test_enqueue_options_and_json_output(project: Project) -> None:
    dep = project.enqueue("t.add", 1, 1)
    result = project.cli(
        "enqueue",
        "t.greet",
        "--args",
        '["ann"]',
        "--kwargs",
        '{"punctuation": "?"}',
        "--queue",
        "mail",
        "--priority",
        "high",
        "--max-attempts",
        "7",
        "--timeout",
        "2.5",
        "--tag",
        "a",
        "--tag",
        "b",
        "--depends-on",
        dep,
        "-o",
        "json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["duplicate"] is False
    assert data["state"] == "blocked"
    job = project.app.get_job(data["id"]).job
    assert (job.queue, job.max_attempts, job.timeout) == ("mail", 7, 2.5)
    assert job.priority > 0
    assert job.tags == ("a", "b")
    assert job.depends_on == (dep,)
    assert project.app.decode_payload(job).kwargs == {"punctuation": "?"}


def test_enqueue_delay_schedules_the_job(project: Project) -> None:
    result = project.cli("enqueue", "t.add", "--args", "[1, 2]", "--delay", "1h")
    assert result.exit_code == 0, result.output
    job = project.app.get_job(result.stdout.strip()).job
    assert job.state is JobState.SCHEDULED
    assert job.run_at - job.created_at == pytest.approx(3600, abs=5)


def test_enqueue_unique_key_reports_duplicate(project: Project) -> None:
    first = project.cli("enqueue", "t.add", "--args", "[1, 2]", "--unique-key", "k1")
    second = project.cli("enqueue", "t.add", "--args", "[1, 2]", "--unique-key", "k1")
    assert second.exit_code == 0, second.output
    assert second.stdout.strip() == f"{first.stdout.strip()} (duplicate)"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--args", "[1,"], "--args: not valid JSON"),
        (["--args", '{"a": 1}'], "--args: must be a JSON array"),
        (["--args", "3"], "--args: must be a JSON array"),
        (["--kwargs", "[1]"], "--kwargs: must be a JSON object"),
        (["--delay", "soon"], "is not a duration"),
    ],
)
def test_enqueue_bad_json_is_a_usage_error(
    project: Project, flags: list[str], message: str
) -> None:
    result = project.cli("enqueue", "t.add", *flags)
    assert result.exit_code == 2
    assert message in result.stderr
    assert project.app.store.search(admin.job_query()).total == 0


def test_enqueue_unknown_task(project: Project) -> None:
    result = project.cli("enqueue", "t.nope", "--args", "[]")
    assert result.exit_code == 2
    assert errors(result).strip() == (
        "error: no task named 't.nope'; registered tasks: t.add, t.boom, t.greet, t.sleepy"
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--args", "[1]"], "error: arguments: t.add: missing a required argument: 'b'"),
        (["--args", "[1, 2]", "--priority", "999999"], "error: priority:"),
        (["--args", "[1, 2]", "--queue", "Bad Queue"], "error: queue:"),
    ],
)
def test_enqueue_invalid_job_exits_2(project: Project, flags: list[str], message: str) -> None:
    result = project.cli("enqueue", "t.add", *flags)
    assert result.exit_code == 2
    assert errors(result).startswith(message)


# --- jobs list / show -------------------------------------------------------------------------
@pytest.fixture
def mixed(project: Project) -> dict[str, str]:
    """Jobs in several states: completed add, failed boom, pending greet, scheduled greet."""
    ids = {
        "add": project.enqueue("t.add", 1, 2),
        "boom": project.enqueue("t.boom"),
    }
    project.run_worker()
    ids["greet"] = project.enqueue("t.greet", "bob", tags=["vip"])
    ids["later"] = project.enqueue("t.greet", "zed", delay=3600)
    return ids


def test_jobs_list_table(project: Project, mixed: dict[str, str]) -> None:
    result = project.cli("jobs", "list")
    assert result.exit_code == 0, result.output
    for job_id in mixed.values():
        assert job_id in result.stdout
    assert "1-4 of 4 jobs" in result.stdout


def _listed(project: Project, *flags: str) -> list[str]:
    result = project.cli("jobs", "list", *flags, "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return [item["id"] for item in data["jobs"]]


def test_jobs_list_filters(project: Project, mixed: dict[str, str]) -> None:
    assert _listed(project, "--state", "completed") == [mixed["add"]]
    assert _listed(project, "--state", "failed") == [mixed["boom"]]
    assert set(_listed(project, "--state", "pending", "--state", "scheduled")) == {
        mixed["greet"],
        mixed["later"],
    }
    assert _listed(project, "--queue", "high") == [mixed["add"]]
    assert set(_listed(project, "--task", "t.greet")) == {mixed["greet"], mixed["later"]}
    assert _listed(project, "--tag", "vip") == [mixed["greet"]]
    assert _listed(project, "--tag", "fragile") == [mixed["boom"]]
    assert _listed(project, "--text", "kaboom") == [mixed["boom"]]
    assert len(_listed(project, "--since", "1h")) == 4
    assert _listed(project, "--until", "1h") == []
    assert _listed(project, "--since", "2000-01-01T00:00:00Z", "--queue", "high") == [mixed["add"]]
    assert len(_listed(project, "--limit", "2")) == 2
    assert len(_listed(project, "--limit", "2", "--offset", "3")) == 1


def test_jobs_list_json_has_decoded_fields(project: Project, mixed: dict[str, str]) -> None:
    result = project.cli("jobs", "list", "--task", "t.add", "-o", "json")
    data = json.loads(result.stdout)
    assert data["total"] == 1
    (item,) = data["jobs"]
    assert item["args"] == [1, 2]
    assert item["result"] == 3
    assert item["state"] == "completed"
    assert datetime.fromisoformat(item["finished_at"]).tzinfo is not None


@pytest.mark.parametrize(
    ("value", "message"),
    [("yesterday", "is not a time"), ("2026-01-01T00:00:00", "has no time zone")],
)
def test_jobs_list_bad_time_is_a_usage_error(project: Project, value: str, message: str) -> None:
    result = project.cli("jobs", "list", "--since", value)
    assert result.exit_code == 2
    assert message in result.stderr


def test_jobs_show_failed_job_has_errors_and_attempts(
    project: Project, mixed: dict[str, str]
) -> None:
    result = project.cli("jobs", "show", mixed["boom"], "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["store"] == project.dsn
    data = data["job"]
    assert data["state"] == "failed"
    assert data["failure_reason"] == "exhausted"
    (error,) = data["errors"]
    assert error["type"] == "ValueError"
    assert error["message"] == "kaboom"
    assert "Traceback" in error["traceback"]
    assert data["attempts"][0]["outcome"] == "error"
    assert data["tags"] == ["fragile"]

    text = project.cli("jobs", "show", mixed["boom"])
    assert text.exit_code == 0, text.output
    for fragment in ("failed", "exhausted", "ValueError", "kaboom", "Traceback", "attempts"):
        assert fragment in text.stdout


def test_jobs_show_unknown_id_exits_1(project: Project) -> None:
    result = project.cli("jobs", "show", "nope")
    assert result.exit_code == 1
    assert errors(result).strip() == "error: no job with id 'nope'"


# --- jobs retry / cancel / purge --------------------------------------------------------------
@pytest.mark.parametrize("verb", ["retry", "cancel", "purge"])
def test_actions_refuse_without_selection(project: Project, verb: str) -> None:
    project.enqueue("t.add", 1, 2)
    result = project.cli("jobs", verb)
    assert result.exit_code == 2
    assert f"say which jobs to {verb}" in result.stderr
    assert "--state" in result.stderr
    assert project.app.store.search(admin.job_query(states=["pending"])).total == 1


def test_retry_by_id(project: Project, mixed: dict[str, str]) -> None:
    result = project.cli("jobs", "retry", mixed["boom"], mixed["add"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "retried 1 job; 1 skipped (not failed or cancelled, or unknown)"
    )
    job = project.app.get_job(mixed["boom"]).job
    assert (job.state, job.attempt) == (JobState.PENDING, 0)


def test_retry_by_filter_asks_first(project: Project, mixed: dict[str, str]) -> None:
    declined = project.cli("jobs", "retry", "--task", "t.boom", input="n\n")
    assert declined.exit_code == 1
    assert "1 job match" in declined.stdout
    assert project.app.get_job(mixed["boom"]).state is JobState.FAILED

    accepted = project.cli("jobs", "retry", "--task", "t.boom", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "retried 1 job" in accepted.stdout
    assert project.app.get_job(mixed["boom"]).state is JobState.PENDING


def test_retry_by_filter_with_yes(project: Project, mixed: dict[str, str]) -> None:
    result = project.cli("jobs", "retry", "--since", "1h", "--yes")
    assert result.exit_code == 0, result.output
    assert "1 job match" in result.stdout
    assert "retried 1 job" in result.stdout


def test_cancel_by_id_and_by_filter(project: Project, mixed: dict[str, str]) -> None:
    by_id = project.cli("jobs", "cancel", mixed["greet"], mixed["add"])
    assert by_id.exit_code == 0, by_id.output
    assert by_id.stdout.strip() == "cancelled 1 job; 1 skipped (already finished, or unknown)"
    assert project.app.get_job(mixed["greet"]).state is JobState.CANCELLED

    by_filter = project.cli("jobs", "cancel", "--task", "t.greet", "--yes")
    assert by_filter.exit_code == 0, by_filter.output
    assert "1 job match" in by_filter.stdout
    assert project.app.get_job(mixed["later"]).state is JobState.CANCELLED


def test_cancel_processing_job_is_cooperative_unless_forced(project: Project) -> None:
    first = project.enqueue("t.greet", "a")
    second = project.enqueue("t.greet", "b")
    store = project.app.store
    claimed = store.claim(ClaimParams(queues=["default"], worker_id="test", limit=2))
    assert {lease.job_id for lease in claimed} == {first, second}

    soft = project.cli("jobs", "cancel", first)
    assert "asked 1 running job to stop" in soft.stdout
    assert project.app.get_job(first).job.cancel_requested

    hard = project.cli("jobs", "cancel", second, "--force")
    assert hard.stdout.strip() == "cancelled 1 job"
    assert project.app.get_job(second).state is JobState.CANCELLED


def test_purge_by_id_skips_processing_jobs(project: Project) -> None:
    running = project.enqueue("t.greet", "a")
    project.app.store.claim(ClaimParams(queues=["default"], worker_id="test"))
    waiting = project.enqueue("t.greet", "b")
    result = project.cli("jobs", "purge", running, waiting, "nope")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "deleted 1 job; 1 skipped (processing: cancel them first); 1 skipped (unknown id)"
    )
    assert project.app.store.get(waiting) is None
    assert project.app.get_job(running).state is JobState.PROCESSING


def test_purge_by_filter(project: Project, mixed: dict[str, str]) -> None:
    result = project.cli("jobs", "purge", "--state", "completed", "--state", "failed", "--yes")
    assert result.exit_code == 0, result.output
    assert "2 jobs match" in result.stdout
    assert "deleted 2 jobs" in result.stdout
    assert set(_listed(project)) == {mixed["greet"], mixed["later"]}


def test_filter_matching_nothing_does_nothing(project: Project, mixed: dict[str, str]) -> None:
    result = project.cli("jobs", "purge", "--queue", "empty")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "no jobs match; nothing to purge"
    assert len(_listed(project)) == 4


# --- queues -----------------------------------------------------------------------------------
def test_queues_table_and_json(project: Project, mixed: dict[str, str]) -> None:
    table = project.cli("queues")
    assert table.exit_code == 0, table.output
    for text in ("high", "default", "pending", "oldest pending"):
        assert text in table.stdout

    result = project.cli("queues", "-o", "json")
    rows = {row["queue"]: row for row in json.loads(result.stdout)["queues"]}
    assert rows["high"]["counts"]["completed"] == 1
    assert rows["high"]["oldest_pending_age"] is None
    assert rows["default"]["counts"] == {
        "pending": 1,
        "scheduled": 1,
        "processing": 0,
        "retrying": 0,
        "blocked": 0,
        "completed": 0,
        "failed": 1,
        "cancelled": 0,
    }
    assert rows["default"]["total"] == 3
    assert rows["default"]["oldest_pending_age"] >= 0


def test_queues_on_empty_store(project: Project) -> None:
    result = project.cli("queues")
    assert result.exit_code == 0, result.output
    assert "no queues yet" in result.stdout


# --- dlq --------------------------------------------------------------------------------------
@pytest.fixture
def dead(project: Project) -> list[str]:
    """Three failed jobs, plus one completed one."""
    ids = [project.enqueue("t.boom") for _ in range(3)]
    project.enqueue("t.add", 1, 1)
    project.run_worker()
    return ids


def test_dlq_list(project: Project, dead: list[str]) -> None:
    table = project.cli("dlq", "list")
    assert table.exit_code == 0, table.output
    assert "exhausted" in table.stdout
    assert "ValueError: kaboom" in table.stdout
    assert "3 of 3 failed jobs" in table.stdout

    result = project.cli("dlq", "list", "--task", "t.boom", "--limit", "2", "-o", "json")
    data = json.loads(result.stdout)
    assert data["total"] == 3
    assert len(data["jobs"]) == 2
    assert {item["failure_reason"] for item in data["jobs"]} == {"exhausted"}
    assert (
        json.loads(project.cli("dlq", "list", "--queue", "high", "-o", "json").stdout)["jobs"] == []
    )


def test_dlq_retry_by_id_and_all(project: Project, dead: list[str]) -> None:
    completed = _listed(project, "--state", "completed")[0]
    one = project.cli("dlq", "retry", dead[0], completed)
    assert one.exit_code == 0, one.output
    assert "1 job not in the dead-letter queue (skipped)" in one.stdout
    assert "retried 1 job" in one.stdout
    assert project.app.get_job(dead[0]).state is JobState.PENDING
    assert project.app.get_job(completed).state is JobState.COMPLETED

    rest = project.cli("dlq", "retry", "--all", "--yes")
    assert rest.exit_code == 0, rest.output
    assert "2 jobs match" in rest.stdout
    assert "retried 2 jobs" in rest.stdout


def test_dlq_purge_by_task(project: Project, dead: list[str]) -> None:
    declined = project.cli("dlq", "purge", "--task", "t.boom", input="n\n")
    assert declined.exit_code == 1
    assert project.app.store.search(admin.dlq_query()).total == 3

    result = project.cli("dlq", "purge", "--task", "t.boom", "--yes")
    assert result.exit_code == 0, result.output
    assert "deleted 3 jobs" in result.stdout
    assert project.app.store.search(admin.dlq_query()).total == 0
    assert len(_listed(project)) == 1


@pytest.mark.parametrize("verb", ["retry", "purge"])
def test_dlq_actions_refuse_without_selection(project: Project, verb: str) -> None:
    result = project.cli("dlq", verb)
    assert result.exit_code == 2
    assert "--all" in result.stderr


# --- configuration from the environment -------------------------------------------------------
def test_store_and_app_from_environment(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    other = project.path / "other.db"
    monkeypatch.setenv("CONVEYOR_APP", MODULE)
    monkeypatch.setenv("CONVEYOR_STORE", f"sqlite:///{other}")
    result = project.cli("enqueue", "t.add", "--args", "[2, 3]", app=False)
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    monkeypatch.delenv("CONVEYOR_APP")
    shown = project.cli("jobs", "show", job_id, "-o", "json", app=False)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["job"]["args"] == [2, 3]
    assert other.exists()
    monkeypatch.delenv("CONVEYOR_STORE")
    sys.modules.pop(MODULE).app.close()  # --store re-pointed the cached module's app
    assert project.cli("jobs", "show", job_id).exit_code == 1


def test_command_option_from_environment(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(3):
        project.enqueue("t.add", 1, 1)
    monkeypatch.setenv("CONVEYOR_JOBS_LIST_LIMIT", "2")
    assert len(_listed(project)) == 2


def test_unrelated_conveyor_version_variable_is_ignored(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_VERSION", "1")
    result = project.cli("migrate")
    assert result.stdout.startswith("schema version")


def test_worker_setting_from_environment_is_validated(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_PREFETCH", "0")
    result = project.cli("worker", "--burst")
    assert result.exit_code == 2
    assert "CONVEYOR_PREFETCH" in result.stderr


def test_worker_settings_are_checked_together(project: Project) -> None:
    result = project.cli("worker", "--burst", "--lease-seconds", "10", "--heartbeat-interval", "5")
    assert result.exit_code == 2
    assert errors(result).startswith("error: heartbeat_interval (5.0s) must be at most a quarter")


def test_worker_burst_in_process(project: Project) -> None:
    ids = [project.enqueue("t.add", i, i) for i in range(5)]
    result = project.run_worker()
    assert "completed 5" in result.stdout
    assert all(project.app.get_job(i).result == 2 * n for n, i in enumerate(ids))


# --- admin functions --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - 90),
        ("90", NOW - 90),
        ("15m", NOW - 900),
        ("2h", NOW - 7200),
        ("3d", NOW - 3 * 86400),
        ("1.5h", NOW - 5400),
        ("2026-01-01T00:00:00+00:00", NOW),
        ("2026-01-01T01:00:00+01:00", NOW),
        ("2026-01-01T00:00:00Z", NOW),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert admin.parse_time(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-01-01T00:00:00", "has no time zone; add an offset"),
        ("2026-01-01", "has no time zone"),
        ("tomorrow", "is not a time"),
        ("-5m", "is not a time"),
        ("5 minutes", "is not a time"),
    ],
)
def test_parse_time_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        admin.parse_time(text, NOW)


def test_load_app_error_type() -> None:
    with pytest.raises(ConfigurationError, match="no module named"):
        admin.load_app("surely_not_a_module_here")


def test_select_ids_pages_through_everything() -> None:
    app = App("memory://")

    @app.task(name="n")
    def noop() -> None:
        return None

    ids = [app.enqueue("n").id for _ in range(1203)]
    selected = admin.select_ids(app.store, admin.job_query(tasks=["n"]))
    assert selected == ids
    assert admin.select_ids(app.store, admin.job_query(), max_items=10) == ids[:10]


def test_job_to_dict_with_corrupt_payload_does_not_raise() -> None:
    app = App("memory://")
    job = Job(
        id="j1",
        queue="default",
        task="t",
        payload=b"not a frame",
        state=JobState.PENDING,
        created_at=NOW,
        run_at=NOW,
    )
    data = admin.job_to_dict(app, job)
    assert str(data["payload"]).startswith("<corrupt: ")
    assert "args" not in data
    assert data["created_at"] == datetime.fromtimestamp(NOW, UTC).isoformat()
    assert data["started_at"] is None
    json.dumps(data)


def test_queue_overview_fills_every_state() -> None:
    app = App("memory://")

    @app.task(name="n", queue="q")
    def noop() -> None:
        return None

    app.enqueue("n")
    (row,) = admin.queue_overview(app.store, app.store.now() + 10)
    assert row.queue == "q"
    assert row.counts["pending"] == 1
    assert set(row.counts) == {s.value for s in admin.STATE_ORDER}
    assert row.oldest_pending_age == pytest.approx(10, abs=1)


def test_version_option() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "conveyor" in result.stdout
