"""Issue 9 §5: one store, wherever it is named.

Read commands never create a store; every command names the store it used; the
settings file's ``app`` is honoured and unknown keys refused; ``CONVEYOR_STORE``
redirects the CLI and ``App("…")`` in user code alike; ``--app``/``--store`` work after
the subcommand too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conveyor import App

from .conftest import MODULE, Project, errors, subprocess_env


def _job_ids(result_stdout: str) -> list[str]:
    return [job["id"] for job in json.loads(result_stdout)["jobs"]]


# --- read commands never create a store -----------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "list"],
        ["jobs", "show", "0190-nope"],
        ["queues"],
        ["dlq", "list"],
        ["nodes"],
        ["workers"],
        ["info"],
        ["scaling"],
        ["schedule", "list"],
        ["jobs", "purge", "--state", "failed", "--yes"],
    ],
)
def test_read_command_without_app_refuses_a_missing_store(
    project: Project, args: list[str]
) -> None:
    default = project.path / "conveyor.db"
    result = project.cli(*args, app=False)
    assert result.exit_code == 2, result.output
    message = errors(result)
    assert message.startswith(f"error: no SQLite store at {default}")
    assert "--store" in message and "CONVEYOR_STORE" in message
    assert not default.exists()
    assert not list(project.path.glob("conveyor.db*"))


def test_jobs_list_names_the_store_it_read(project: Project) -> None:
    job_id = project.enqueue("t.add", 1, 2)
    result = project.cli("--store", project.dsn, "jobs", "list", "-o", "json", app=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert next(iter(data)) == "store"
    assert data["store"] == project.dsn
    assert _job_ids(result.stdout) == [job_id]
    assert result.stderr.splitlines()[0] == f"store: {project.dsn}"
    table = project.cli("--store", "sqlite:///jobs.db", "jobs", "list", app=False)
    assert table.exit_code == 0, table.output
    assert f"store: {project.dsn}" in table.stderr  # a relative DSN shown as an absolute path


def test_missing_file_store_directory_is_refused(project: Project) -> None:
    missing = project.path / "no-such-dir"
    result = project.cli("--store", f"file://{missing}", "queues", app=False)
    assert result.exit_code == 2
    assert f"no File store at {missing}" in errors(result)
    assert not missing.exists()


def test_writing_commands_create_the_store(project: Project) -> None:
    fresh = project.path / "fresh.db"
    migrated = project.cli("--store", f"sqlite:///{fresh}", "migrate", app=False)
    assert migrated.exit_code == 0, migrated.output
    assert fresh.exists()
    other = project.path / "other.db"
    enqueued = project.cli("--store", f"sqlite:///{other}", "enqueue", "t.add", "--args", "[1,2]")
    assert enqueued.exit_code == 0, enqueued.output
    assert other.exists()


def test_every_json_output_is_one_object_with_the_store(project: Project) -> None:
    project.enqueue("t.add", 1, 2)
    for args in (
        ["jobs", "list"],
        ["dlq", "list"],
        ["queues"],
        ["nodes"],
        ["workers"],
        ["info"],
        ["scaling"],
        ["schedule", "list"],
        ["enqueue", "t.add", "--args", "[3, 4]"],
    ):
        result = project.cli(*args, "-o", "json")
        assert result.exit_code == 0, (args, result.output)
        data = json.loads(result.stdout)
        assert isinstance(data, dict), args
        assert data["store"] == project.dsn, args


# --- the settings file --------------------------------------------------------------------------
def test_app_in_conveyor_toml_is_honoured(project: Project) -> None:
    (project.path / "conveyor.toml").write_text(f'app = "{MODULE}:app"\n', encoding="utf-8")
    enqueued = project.cli("enqueue", "t.add", "--args", "[2, 3]", app=False)
    assert enqueued.exit_code == 0, enqueued.output
    listed = project.cli("jobs", "list", "-o", "json", app=False)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["store"] == project.dsn
    assert _job_ids(listed.stdout) == [enqueued.stdout.strip()]


def test_app_in_pyproject_tool_table_is_honoured(project: Project) -> None:
    (project.path / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n\n[tool.conveyor]\napp = "{MODULE}"\n', encoding="utf-8"
    )
    result = project.cli("info", "-o", "json", app=False)
    assert result.exit_code == 0, result.output
    assert "t.add" in {task["name"] for task in json.loads(result.stdout)["tasks"]}


def test_unknown_file_key_is_refused_with_the_known_keys(project: Project) -> None:
    (project.path / "conveyor.toml").write_text('stor = "sqlite:///x.db"\n', encoding="utf-8")
    result = project.cli("jobs", "list")
    assert result.exit_code == 2
    message = errors(result)
    assert "unknown setting 'stor'" in message
    for known in ("app", "store", "queues", "lease_seconds", "log_level"):
        assert known in message


# --- one precedence rule: flag > environment > code > file > default -----------------------
def test_conveyor_store_redirects_the_cli_and_the_app_alike(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's module says App("sqlite:///…/jobs.db"); CONVEYOR_STORE wins for both the
    CLI (with and without --app) and the app object the user's own code builds."""
    redirected = project.path / "redirected.db"
    monkeypatch.setenv("CONVEYOR_STORE", f"sqlite:///{redirected}")
    assert project.app.dsn == f"sqlite:///{redirected}"  # the module's App(...) in code
    enqueued = project.cli("enqueue", "t.add", "--args", "[1, 1]")
    assert enqueued.exit_code == 0, enqueued.output
    listed = project.cli("jobs", "list", "-o", "json", app=False)
    assert json.loads(listed.stdout)["store"] == f"sqlite:///{redirected}"
    assert _job_ids(listed.stdout) == [enqueued.stdout.strip()]
    assert App(f"sqlite:///{project.db}").dsn == f"sqlite:///{redirected}"


def test_store_flag_beats_environment_beats_code_beats_file(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project.path / "conveyor.toml").write_text('store = "memory://"\n', encoding="utf-8")
    assert App().dsn == "memory://"  # file > default
    assert App("sqlite:///code.db").dsn == "sqlite:///code.db"  # code > file
    monkeypatch.setenv("CONVEYOR_STORE", "sqlite:///env.db")
    assert App("sqlite:///code.db").dsn == "sqlite:///env.db"  # environment > code
    (project.path / "flag.db").touch()
    result = project.cli("--store", "sqlite:///flag.db", "queues", "-o", "json")
    assert json.loads(result.stdout)["store"] == f"sqlite:///{project.path / 'flag.db'}"


def test_worker_children_follow_the_environment(project: Project, tmp_path: Path) -> None:
    """A supervised worker (children started afresh) and the user's App agree on the store."""
    redirected = project.path / "redirected.db"
    env = {**subprocess_env(project.path), "CONVEYOR_STORE": f"sqlite:///{redirected}"}
    enqueue = subprocess.run(
        [sys.executable, "-m", "conveyor", "enqueue", "t.add", "--args", "[20, 22]"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project.path,
        env={**env, "CONVEYOR_APP": MODULE},
        check=False,
    )
    assert enqueue.returncode == 0, enqueue.stderr
    worker = subprocess.run(
        [
            *(sys.executable, "-m", "conveyor", "worker", "--app", MODULE, "--burst"),
            *("-c", "2", "-Q", "high,default", "--poll-interval", "0.05"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project.path,
        env=env,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr
    check = textwrap.dedent(
        f"""
        import {MODULE} as m
        print(m.app.dsn, m.app.get_job({enqueue.stdout.strip()!r}).result)
        """
    )
    shown = subprocess.run(
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project.path,
        env=env,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [f"sqlite:///{redirected}", "42"]


# --- --app and --store after the subcommand -----------------------------------------------------
def test_app_and_store_accepted_after_the_subcommand(project: Project) -> None:
    enqueued = project.cli("enqueue", "--app", MODULE, "t.add", "--args", "[1, 2]", app=False)
    assert enqueued.exit_code == 0, enqueued.output
    listed = project.cli("jobs", "list", "--store", project.dsn, "-o", "json", app=False)
    assert listed.exit_code == 0, listed.output
    assert _job_ids(listed.stdout) == [enqueued.stdout.strip()]
    worker = project.cli(
        "worker",
        "-A",
        MODULE,
        "--solo",
        "--burst",
        "-Q",
        "high",
        "--poll-interval",
        "0.05",
        app=False,
    )
    assert worker.exit_code == 0, worker.output
    assert "completed 1" in worker.stdout


def test_subcommand_store_beats_the_group_store(project: Project) -> None:
    (project.path / "first.db").touch()
    result = project.cli(
        "--store", "sqlite:///first.db", "queues", "--store", project.dsn, "-o", "json", app=False
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["store"] == project.dsn


# --- server stores: a schema or prefix with no store is refused, and left untouched ----------
def test_postgres_schema_without_a_store_is_refused_untouched(
    project: Project, postgres_dsn: str
) -> None:
    import psycopg

    result = project.cli("--store", postgres_dsn, "jobs", "list", app=False)
    assert result.exit_code == 2, result.output
    schema = postgres_dsn.rsplit("schema=", 1)[1]
    assert f"no Conveyor store in schema '{schema}'" in errors(result)
    with psycopg.connect(postgres_dsn.split("?")[0], autocommit=True) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchone()
    assert tables == (0,)
    assert project.cli("--store", postgres_dsn, "migrate", app=False).exit_code == 0
    listed = project.cli("--store", postgres_dsn, "jobs", "list", "-o", "json", app=False)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["jobs"] == []
    assert "secret" not in listed.stderr


def test_redis_prefix_without_a_store_is_refused_untouched(
    project: Project, redis_url: str
) -> None:
    import redis

    result = project.cli("--store", redis_url, "queues", app=False)
    assert result.exit_code == 2, result.output
    prefix = redis_url.rsplit("prefix=", 1)[1]
    assert f"no Conveyor store under prefix '{prefix}'" in errors(result)
    client = redis.Redis.from_url(redis_url.split("?")[0])
    try:
        assert client.keys(f"{prefix}*") == []
        assert project.cli("--store", redis_url, "migrate", app=False).exit_code == 0
        listed = project.cli("--store", redis_url, "queues", "-o", "json", app=False)
        assert listed.exit_code == 0, listed.output
        assert json.loads(listed.stdout)["queues"] == []
    finally:
        for key in client.keys(f"{prefix}*"):
            client.delete(key)
        client.close()


def test_an_app_built_on_a_store_object_is_named_by_where_it_lives(tmp_path: Path) -> None:
    from conveyor import admin
    from conveyor.stores.sqlite import SQLiteStore

    path = tmp_path / "objects.db"
    app = App(SQLiteStore(str(path)))
    try:
        label = admin.store_label(app)  # before the fix: "SQLiteStore", no path
    finally:
        app.close()
    assert label.startswith("SQLiteStore") and str(path) in label
