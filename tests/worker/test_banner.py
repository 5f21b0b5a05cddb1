"""Start-up warnings and decoration-time checks (issue 9 §4): set-ups that would run but
not as meant are named, with the fix, before the first job."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conveyor import App, Concurrency, RateLimit
from conveyor.config import AppSettings, WorkerSettings
from conveyor.errors import InvalidOption
from conveyor.stores.memory import MemoryStore
from conveyor.worker.banner import queues_text, startup_warnings, summary
from conveyor.worker.reporting import WorkerStats


@pytest.fixture
def app() -> Iterator[App]:
    application = App(MemoryStore(), settings=AppSettings())
    yield application
    application.close()


def messages(app: App, queues: str = "default") -> list[str]:
    return [w.message for w in startup_warnings(app, WorkerSettings(queues=queues))]


def test_a_limit_key_naming_no_parameter_is_refused_at_decoration(app: App) -> None:
    with pytest.raises(InvalidOption, match=r"key 'tenant'.*its parameters: user_id"):

        @app.task(limits=[RateLimit(5, per=1.0, key="tenant")])
        def send(user_id: int) -> None:
            return None

    with pytest.raises(InvalidOption, match="key 'tenant'"):

        @app.task(limits=[Concurrency(1, key="tenant")])
        def other(user_id: int) -> None:
            return None


def test_a_limit_key_naming_a_parameter_or_kwargs_is_accepted(app: App) -> None:
    @app.task(limits=[RateLimit(5, per=1.0, key="tenant")])
    def named(tenant: str) -> None:
        return None

    @app.task(limits=[Concurrency(2, key="tenant")])
    def loose(**options: object) -> None:
        return None

    assert sorted(task.fn.__name__ for task in app.tasks.values()) == ["loose", "named"]


def test_no_tasks_is_a_warning(app: App) -> None:
    [message] = messages(app)
    assert message.startswith("no tasks registered") and "--app" in message


def test_tasks_on_queues_not_consumed_and_under_main(app: App) -> None:
    def report() -> None:
        return None

    report.__module__ = "__main__"
    app.task(report)
    app.task(queue="emails", name="mail.send")(lambda: None)
    found = startup_warnings(app, WorkerSettings(queues="default"))
    [missed] = [w for w in found if "does not consume" in w.message]
    assert missed.fields == {"tasks": "mail.send", "queues": "emails"}
    [main] = [w for w in found if "__main__" in w.message]
    assert (
        main.fields["tasks"] == "__main__.test_tasks_on_queues_not_consumed_and_under_main.report"
    )
    assert not [
        w
        for w in startup_warnings(app, WorkerSettings(queues="default,emails"))
        if "does not consume" in w.message
    ]


def test_a_queue_limit_key_missing_from_a_task_is_a_warning(app: App) -> None:
    @app.task(name="mail.send", queue="emails")
    def send(address: str) -> None:
        return None

    app.limit_queue("emails", RateLimit(10, per=1.0, key="tenant"))
    [warning] = startup_warnings(app, WorkerSettings(queues="emails"))
    assert "'tenant'" in warning.message and warning.fields["tasks"] == "mail.send"


def test_queues_text_and_summary() -> None:
    assert queues_text("high=6,default=3") == "high=6,default=3"
    assert queues_text("high,low") == "high,low (in order)"
    line = summary("w1", WorkerStats(processed=3, completed=1, deferred=2))
    assert "deferred 2" in line and "processed 3" in line
