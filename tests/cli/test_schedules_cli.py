"""``conveyor schedule add / list / pause / resume / remove`` on the store."""

from __future__ import annotations

import orjson

from conveyor.scheduler.registry import ScheduleRegistry

from .conftest import Project


def _stored(project: Project) -> dict[str, dict[str, object]]:
    result = project.cli("schedule", "list", "-o", "json")
    assert result.exit_code == 0, result.output
    return {s["name"]: s for s in orjson.loads(result.stdout)["schedules"]}


def test_add_list_pause_resume_remove(project: Project) -> None:
    added = project.cli(
        "schedule",
        "add",
        "greet-paris",
        "every weekday at 9:30",
        "--task",
        "t.greet",
        "--tz",
        "Europe/Paris",
        "--kwargs",
        '{"name": "team"}',
        "--catch-up",
        "skip",
    )
    assert added.exit_code == 0, added.output
    stored = _stored(project)["greet-paris"]
    assert stored["task"] == "t.greet"
    assert stored["tz"] == "Europe/Paris"
    assert stored["kwargs"] == {"name": "team"}
    assert stored["catch_up"] == "skip"
    assert stored["source"] == "store" and stored["paused"] is False

    assert project.cli("schedule", "pause", "greet-paris").exit_code == 0
    assert _stored(project)["greet-paris"]["paused"] is True
    table = project.cli("schedule", "list")
    assert "greet-paris" in table.stdout and "paused" in table.stdout

    resumed = project.cli("schedule", "resume", "greet-paris", "-o", "json")
    assert resumed.exit_code == 0
    data = orjson.loads(resumed.stdout)
    assert data["store"] == project.dsn
    data = data["schedule"]
    assert data["paused"] is False and data["resumed_at"] is not None

    assert project.cli("schedule", "remove", "greet-paris").exit_code == 0
    assert _stored(project) == {}
    again = project.cli("schedule", "remove", "greet-paris")
    assert again.exit_code == 1
    assert "no schedule named 'greet-paris'" in again.stderr


def test_add_refuses_a_taken_name_unless_replace(project: Project) -> None:
    base = ["schedule", "add", "adder", "every 5 minutes", "--task", "t.add", "--args", "[1, 2]"]
    assert project.cli(*base).exit_code == 0
    taken = project.cli(*base)
    assert taken.exit_code == 2
    assert "already exists; pass --replace" in taken.stderr
    changed = project.cli(
        "schedule",
        "add",
        "adder",
        "every 10 minutes",
        "--task",
        "t.add",
        "--args",
        "[3, 4]",
        "--replace",
    )
    assert changed.exit_code == 0, changed.output
    stored = _stored(project)["adder"]
    assert stored["expression"] == "every 10 minutes" and stored["args"] == [3, 4]


def test_add_checks_task_expression_and_arguments(project: Project) -> None:
    cases = [
        (["every 5 minutes", "--task", "t.nope"], "no task named 't.nope'"),
        (["every 5 minuts", "--task", "t.add", "--args", "[1, 2]"], "minuts"),
        (["daily at 25:00", "--task", "t.add", "--args", "[1, 2]"], "25:00"),
        (["every 5 minutes", "--task", "t.add", "--args", "[1]"], "missing a required argument"),
        (["every 5 minutes", "--task", "t.add", "--args", "[1"], "--args: is not valid JSON"),
        (["every 5 minutes", "--task", "t.add", "--args", '{"a": 1}'], "must be a JSON list"),
        (["every 5 minutes", "--task", "t.add", "--tz", "Mars/Base"], "Mars/Base"),
    ]
    for args, message in cases:
        result = project.cli("schedule", "add", "x", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    assert _stored(project) == {}


def test_without_app_the_task_is_stored_unchecked(project: Project) -> None:
    result = project.cli(
        "--store",
        project.dsn,
        "schedule",
        "add",
        "elsewhere",
        "@hourly",
        "--task",
        "other.task",
        app=False,
    )
    assert result.exit_code == 0, result.output
    assert "not checked" in result.stderr
    assert _stored(project)["elsewhere"]["task"] == "other.task"


def test_code_defined_schedules_cannot_be_removed_or_shadowed(project: Project) -> None:
    from conveyor.scheduler.service import stored_form

    app = project.app

    @app.periodic("every minute", name="tick")
    def tick() -> None:
        return None

    ScheduleRegistry(app.store).add(stored_form(app.schedules["tick"]), replace_existing=True)
    removed = project.cli("schedule", "remove", "tick")
    assert removed.exit_code == 2
    assert "defined in code" in removed.stderr
    shadow = project.cli("schedule", "add", "tick", "@daily", "--task", "t.boom", "--replace")
    assert shadow.exit_code == 2
    assert "defined in code" in shadow.stderr
    assert project.cli("schedule", "pause", "tick").exit_code == 0
    assert _stored(project)["tick"]["paused"] is True


def test_pause_of_an_unknown_schedule_fails(project: Project) -> None:
    result = project.cli("schedule", "pause", "ghost")
    assert result.exit_code == 1
    assert "no schedule named 'ghost'" in result.stderr


def test_list_with_app_shows_code_schedules_without_writing_them(project: Project) -> None:
    app = project.app

    @app.periodic("every weekday at 9:30", tz="Europe/Paris", name="morning")
    def morning() -> None:
        return None

    stored = _stored(project)["morning"]
    assert stored["source"] == "code" and stored["tz"] == "Europe/Paris"
    assert ScheduleRegistry(app.store).list() == [], "listing is read-only"
