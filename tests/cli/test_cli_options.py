"""Issue 9 §7 and §2 (CLI points): one rule for environment names, durations everywhere,
schedule JSON in ISO times, no ``conveyor bench``, missing extras and bad DSN parameters
reported as one line, an app that fails to import shown by its own frames."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import click
import pytest

from conveyor.cli import main

from .conftest import MODULE, Project, errors, subprocess_env


# --- environment names --------------------------------------------------------------------------
def test_every_option_follows_the_envvar_rule() -> None:
    """CONVEYOR_<FLAG> for settings and the group's own options, else
    CONVEYOR_<COMMAND PATH>_<FLAG>; checked for every option of every command."""
    from conveyor.cli.options import expected_envvar, is_global_copy, walk
    from conveyor.config import known_file_keys

    settings = set(known_file_keys())
    checked = 0
    for path, command in walk(main):
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_eager or is_global_copy(param):
                continue
            flag = next(o for o in param.opts if o.startswith("--"))[2:]
            name = flag.upper().replace("-", "_")
            if not path or flag.replace("-", "_") in settings:
                want = f"CONVEYOR_{name}"
            else:
                want = "CONVEYOR_" + "_".join(p.upper().replace("-", "_") for p in path)
                want += f"_{name}"
            assert param.envvar == want == expected_envvar(path, param), (path, param.opts)
            assert param.show_envvar, (path, param.opts)
            checked += 1
    assert checked > 60


@pytest.mark.parametrize(
    ("path", "flag", "envvar"),
    [
        (("jobs", "list"), "--state", "CONVEYOR_JOBS_LIST_STATE"),
        (("jobs", "retry"), "--tag", "CONVEYOR_JOBS_RETRY_TAG"),
        (("worker",), "--queues", "CONVEYOR_QUEUES"),
        (("worker",), "--solo", "CONVEYOR_WORKER_SOLO"),
        (("scaling",), "--queues", "CONVEYOR_QUEUES"),
        (("schedule", "preview"), "--count", "CONVEYOR_SCHEDULE_PREVIEW_COUNT"),
        ((), "--store", "CONVEYOR_STORE"),
    ],
)
def test_envvar_examples(path: tuple[str, ...], flag: str, envvar: str) -> None:
    from conveyor.cli.options import is_global_copy

    command: click.Command = main
    for part in path:
        assert isinstance(command, click.Group)
        command = command.commands[part]
    (option,) = [
        p
        for p in command.params
        if isinstance(p, click.Option) and flag in p.opts and not is_global_copy(p)
    ]
    assert option.envvar == envvar


def test_state_filter_from_its_environment_name(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.enqueue("t.add", 1, 1)
    monkeypatch.setenv("CONVEYOR_JOBS_LIST_STATE", "failed")
    result = project.cli("jobs", "list", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["jobs"] == []


# --- durations ----------------------------------------------------------------------------------
def test_every_duration_option_uses_the_duration_parser() -> None:
    from conveyor.cli.options import DURATION, walk

    seconds_flags = {
        "--lease-seconds",
        "--heartbeat-interval",
        "--rescue-interval",
        "--poll-interval",
        "--grace",
        "--max-child-lifetime",
        "--hard-timeout-grace",
        "--liveness-timeout",
        "--timeout",
        "--delay",
        "--stale-after",
        "--lookback",
        "--leader-ttl",
        "--unique-for",
        "--idempotency-for",
        "--prune-interval",
    }
    found = {
        opt: param.type
        for _, command in walk(main)
        for param in command.params
        for opt in param.opts
        if opt in seconds_flags
    }
    assert set(found) == seconds_flags
    assert all(kind is DURATION for kind in found.values()), found
    # every float setting is a duration (conveyor.config): a plain float flag is a slip
    plain = [p.opts for _, c in walk(main) for p in c.params if p.type is click.FLOAT]
    assert plain == []


def test_enqueue_timeout_takes_a_unit(project: Project) -> None:
    result = project.cli(
        *("enqueue", "t.add", "--args", "[1, 2]", "--timeout", "30s", "--delay", "2m"),
        *("--unique-key", "k", "--unique-for", "1h", "--idempotency-for", "1d", "-o", "json"),
    )
    assert result.exit_code == 0, result.output
    job = project.app.get_job(json.loads(result.stdout)["id"]).job
    assert job.timeout == 30.0
    assert job.run_at - job.created_at == pytest.approx(120.0, abs=1.0)
    bad = project.cli("enqueue", "t.add", "--args", "[1, 2]", "--timeout", "soon")
    assert bad.exit_code == 2
    assert "is not a duration" in bad.stderr


def test_worker_durations_from_flags_and_environment(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.enqueue("t.add", 1, 1)
    monkeypatch.setenv("CONVEYOR_LEASE_SECONDS", "2m")
    result = project.cli(
        "worker",
        "--solo",
        "--burst",
        "-Q",
        "high",
        "--poll-interval",
        "1s",
        "--heartbeat-interval",
        "10s",
        "--grace",
        "1m",
    )
    assert result.exit_code == 0, result.output
    refused = project.cli("worker", "--solo", "--burst", "--heartbeat-interval", "1m")
    assert refused.exit_code == 2  # 60 s is more than a quarter of the 2 m lease
    assert "heartbeat_interval (60.0s)" in errors(refused)


# --- schedule JSON and table -------------------------------------------------------------------
def test_schedule_json_uses_iso_times_and_the_table_labels_its_zone(project: Project) -> None:
    added = project.cli(
        "schedule",
        "add",
        "nightly",
        "every day at 3:00",
        "--task",
        "t.add",
        "--args",
        "[1, 2]",
        "-o",
        "json",
    )
    assert added.exit_code == 0, added.output
    stored = json.loads(added.stdout)["schedule"]
    created = datetime.fromisoformat(stored["created_at"])
    assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0
    listed = json.loads(project.cli("schedule", "list", "-o", "json").stdout)["schedules"]
    assert all(
        value is None or isinstance(value, str)
        for entry in listed
        for key, value in entry.items()
        if key.endswith("_at")
    )
    table = project.cli("schedule", "list")
    assert "last run (UTC)" in table.stdout and "next run (UTC)" in table.stdout


# --- conveyor bench left the user CLI ---------------------------------------------------------
def test_bench_is_not_a_command(project: Project) -> None:
    assert "bench" not in main.commands
    result = project.cli("bench", "--quick", app=False)
    assert result.exit_code == 2
    assert "No such command 'bench'" in result.stderr


# --- missing extras, bad DSN parameters ---------------------------------------------------------
@pytest.mark.parametrize(
    ("package", "dsn", "extra"),
    [
        ("psycopg", "postgresql://u:secret@127.0.0.1:1/db", "postgres"),
        ("psycopg_pool", "postgresql://u@127.0.0.1:1/db", "postgres"),
        ("redis", "redis://127.0.0.1:1/0", "redis"),
    ],
)
def test_missing_driver_library_names_the_extra(
    project: Project, package: str, dsn: str, extra: str
) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{package!r}] = None  # as if the extra were not installed\n"
        "from conveyor.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "--store", dsn, "queues"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project.path,
        env=subprocess_env(project.path),
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"pip install 'conveyor[{extra}]'" in done.stderr
    assert "secret" not in done.stderr


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("redis://127.0.0.1:1/0?prefx=a", "unknown Redis DSN parameter 'prefx'"),
        ("redis://127.0.0.1:1/0?db=zero", "Invalid value for 'db'"),
        ("postgresql://u:pw@127.0.0.1:1/db?sslmod=require", "unknown PostgreSQL DSN parameter"),
        ("file:///tmp/somewhere?mode=x", "takes no parameters"),
        ("sqlite:///jobs.db?synchronus=full", "unknown sqlite DSN parameter 'synchronus'"),
    ],
)
def test_unknown_dsn_parameter_is_one_line_with_the_allowed_list(
    project: Project, dsn: str, message: str
) -> None:
    result = project.runner.invoke(main, ["--store", dsn, "migrate"])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    if "unknown" in message and "sqlite" not in message:
        assert "allowed: " in result.stderr


# --- an app that fails to import ----------------------------------------------------------------
def test_app_import_error_shows_one_line_and_the_users_frames(project: Project) -> None:
    (project.path / "broken_app.py").write_text(
        "def load_settings():\n    return {}['missing']\n\n\nsettings = load_settings()\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "--app", "broken_app", "jobs", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project.path,
        env=subprocess_env(project.path),
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert (
        lines[0] == "error: --app 'broken_app': importing 'broken_app' raised KeyError: 'missing'"
    )
    assert 'broken_app.py", line 5, in <module>' in done.stderr
    assert 'broken_app.py", line 2, in load_settings' in done.stderr
    assert "click" not in done.stderr and "importlib" not in done.stderr
    assert "loading.py" not in done.stderr
    assert len(lines) < 12


def test_app_syntax_error_names_file_and_line(project: Project) -> None:
    (project.path / "typo_app.py").write_text("x = (1,\n", encoding="utf-8")
    result = project.runner.invoke(main, ["--app", "typo_app", "info"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --app 'typo_app': importing 'typo_app' raised")
    assert "SyntaxError" in result.stderr and 'typo_app.py", line 1' in result.stderr


def test_module_of_the_fixture_still_loads(project: Project) -> None:
    assert project.cli("info").exit_code == 0
    assert MODULE in sys.modules
