"""What a real ``conveyor worker --burst`` process tells the operator (issue 9 §4): one
structured line per job event (logfmt or JSON), the start-up banner and warnings, and a
summary that counts every outcome. Prefork children's lines arrive whole."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import App, admin

from .conftest import subprocess_env

pytestmark = pytest.mark.slow

MODULE = "output_app"
SOURCE = textwrap.dedent(
    """
    from pathlib import Path

    from conveyor import App, Fixed

    app = App("sqlite:///" + str(Path(__file__).with_name("jobs.db")))


    @app.task(name="o.limited", limits=["1/h"])
    def limited(n):
        return n


    @app.task(name="o.flaky", max_attempts=2, retry=Fixed(0))
    def flaky():
        raise ValueError("kaboom")


    @app.task(name="o.quick")
    def quick(n):
        return n


    @app.task(name="o.elsewhere", queue="reports")
    def elsewhere():
        return None
    """
)
LOGFMT_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    (tmp_path / f"{MODULE}.py").write_text(SOURCE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(MODULE, None)
    application = admin.load_app(MODULE)
    try:
        yield application
    finally:
        application.close()
        sys.modules.pop(MODULE, None)


def run_worker(app: App, *flags: str) -> tuple[str, str]:
    """``conveyor --app output_app worker --burst FLAGS``; returns (stdout, stderr)."""
    path = Path(sys.modules[MODULE].__file__ or "").parent
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "--app", MODULE, "worker", "--burst", *flags],
        cwd=path,
        env=subprocess_env(path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, done.stderr


def parse_logfmt(line: str) -> dict[str, str]:
    fields = {}
    for key, value in LOGFMT_FIELD.findall(line):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m[1], m[1]), value[1:-1])
        fields[key] = value
    return fields


def enqueue_one_of_each(app: App) -> dict[str, str]:
    """A success and a deferral (1/h limit), a retry and then a DLQ move."""
    return {
        "ran": app.enqueue("o.limited", [1]).id,
        "deferred": app.enqueue("o.limited", [2]).id,
        "flaky": app.enqueue("o.flaky", []).id,
    }


def job_lines(records: list[dict[str, Any]], message_key: str) -> dict[str, list[dict[str, Any]]]:
    by_message: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("logger") == "conveyor.jobs":
            by_message.setdefault(record[message_key], []).append(record)
    return by_message


def check_job_lines(lines: dict[str, list[dict[str, Any]]], ids: dict[str, str]) -> None:
    [succeeded] = lines["job succeeded"]
    [retry] = lines["job failed, will retry"]
    [dead] = lines["job failed, moved to the DLQ"]
    [deferred] = lines["job deferred"]
    assert succeeded["job_id"] == ids["ran"] and float(succeeded["runtime"]) >= 0
    assert succeeded["task"] == "o.limited" and succeeded["queue"] == "default"
    assert retry["job_id"] == ids["flaky"] and str(retry["attempt"]) == "1"
    assert retry["error"] == "ValueError: kaboom" and float(retry["retry_in"]) >= 0
    assert "Traceback" in retry["traceback"] and "kaboom" in retry["traceback"]
    assert dead["job_id"] == ids["flaky"] and dead["reason"] == "exhausted"
    assert str(dead["attempt"]) == "2"
    assert deferred["job_id"] == ids["deferred"] and "o.limited" in deferred["detail"]
    assert float(deferred["retry_in"]) > 60
    received = {r["job_id"] for r in lines["job received"]}
    assert received == set(ids.values())


def test_logfmt_lines_one_per_job_event(app: App) -> None:
    ids = enqueue_one_of_each(app)
    out, err = run_worker(app, "--solo", "--poll-interval", "0.05")
    records = [parse_logfmt(line) for line in err.splitlines()]
    assert all(r.get("time") and r.get("level") and r.get("msg") for r in records), err
    check_job_lines(job_lines(records, "msg"), ids)
    [banner] = [r for r in records if r["msg"].endswith("worker starting")]
    assert banner["store"] == "sqlite" and banner["mode"] == "solo"
    assert banner["queues"] == "default" and banner["durability"]
    assert banner["tasks"] == "o.elsewhere,o.flaky,o.limited,o.quick"
    [missed] = [r for r in records if "does not consume" in r["msg"]]
    assert missed["level"] == "warning" and missed["tasks"] == "o.elsewhere"
    assert "processed 3, completed 1, failed 1, retried 1, deferred 1" in out


def test_json_lines_one_per_job_event(app: App) -> None:
    ids = enqueue_one_of_each(app)
    out, err = run_worker(app, "--solo", "--poll-interval", "0.05", "--log-format", "json")
    records = [json.loads(line) for line in err.splitlines()]
    check_job_lines(job_lines(records, "message"), ids)
    assert "deferred 1" in out


def test_quiet_keeps_only_warnings_and_errors(app: App) -> None:
    ids = enqueue_one_of_each(app)
    _, err = run_worker(app, "--solo", "-q", "--poll-interval", "0.05")
    records = [parse_logfmt(line) for line in err.splitlines()]
    assert {r["level"] for r in records} <= {"warning", "error"}, err
    lines = job_lines(records, "msg")
    assert set(lines) == {"job failed, will retry", "job failed, moved to the DLQ"}
    assert lines["job failed, moved to the DLQ"][0]["job_id"] == ids["flaky"]


def test_prefork_children_lines_arrive_whole(app: App) -> None:
    ids = {app.enqueue("o.quick", [n]).id for n in range(60)}
    out, err = run_worker(app, "-c", "3", "--poll-interval", "0.05", "--log-format", "json")
    records = [json.loads(line) for line in err.splitlines()]  # a torn line fails here
    lines = job_lines(records, "message")
    assert {r["job_id"] for r in lines["job succeeded"]} == ids
    assert len(lines["job succeeded"]) == 60
    [banner] = [r for r in records if r["message"].endswith("worker starting")]
    assert banner["mode"] == "prefork" and banner["concurrency"] == 3
    trouble = [r for r in records if r.get("level") in ("warning", "error")]
    assert "processed 60, completed 60" in out, (out, trouble)
