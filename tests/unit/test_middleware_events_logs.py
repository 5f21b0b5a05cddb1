"""Middleware onions, the event bus and log formatting."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence

import pytest

from conveyor import App, InvalidOption
from conveyor.config import AppSettings, WorkerSettings
from conveyor.context import JobContext
from conveyor.events import Event, EventBus, JobEnqueued, JobFinished
from conveyor.job import EnqueueResult, NewJob
from conveyor.logs import JsonFormatter, TextFormatter
from conveyor.stores.memory import MemoryStore


def test_execute_middleware_wraps_in_order_and_sees_the_job() -> None:
    calls: list[str] = []

    def outer(ctx: JobContext, call_next: Callable[[], object]) -> object:
        calls.append(f"outer:{ctx.task}:{ctx.attempt}")
        return call_next()

    def doubler(ctx: JobContext, call_next: Callable[[], object]) -> object:
        calls.append("inner")
        result = call_next()
        assert isinstance(result, int)
        return result * 2

    app = App(MemoryStore(), settings=AppSettings(), middleware=[outer, doubler])

    @app.task(name="seven")
    def seven() -> int:
        calls.append("handler")
        return 7

    assert seven.run_sync() == 14
    assert calls == ["outer:seven:1", "inner", "handler"]


def test_enqueue_middleware_can_refuse_and_nothing_is_stored() -> None:
    def no_bulk(
        jobs: Sequence[NewJob], call_next: Callable[[Sequence[NewJob]], list[EnqueueResult]]
    ) -> list[EnqueueResult]:
        if any(job.queue == "bulk" for job in jobs):
            raise InvalidOption("queue", "bulk is closed today")
        return call_next(jobs)

    store = MemoryStore()
    app = App(store, settings=AppSettings(), enqueue_middleware=[no_bulk])

    @app.task
    def t() -> None: ...

    t.enqueue()
    with pytest.raises(InvalidOption, match="bulk is closed"):
        t.with_options(queue="bulk").enqueue()
    assert len(store.all_jobs()) == 1


def test_events_reach_subscribers_and_a_failing_one_breaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App(MemoryStore(), settings=AppSettings())
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    app.events.subscribe(Event, seen.append)
    app.events.subscribe(JobFinished, broken)

    @app.task(name="ok")
    def ok() -> int:
        return 1

    handle = ok.enqueue()
    app.worker(WorkerSettings(burst=True, poll_interval=0.05)).run()
    names = [e.name for e in seen]
    assert names[:2] == ["job.enqueued", "worker.state"]
    assert "job.started" in names and "job.finished" in names
    finished = [e for e in seen if isinstance(e, JobFinished)]
    assert finished[0].job_id == handle.id and finished[0].outcome == "completed"
    assert app.get_job(handle.id).result == 1
    assert "subscriber" in caplog.text and "failed" in caplog.text


def test_event_bus_only_wants_what_someone_listens_to() -> None:
    bus = EventBus()
    assert not bus.wants(JobEnqueued)
    bus.subscribe(JobEnqueued, lambda e: None)
    assert bus.wants(JobEnqueued) and not bus.wants(JobFinished)


def test_log_formatters_carry_structured_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "conveyor.worker",
            "levelname": "INFO",
            "levelno": 20,
            "msg": "job %s done",
            "args": ("abc",),
            "job_id": "abc",
            "queue": "emails",
        }
    )
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "job abc done"
    assert data["job_id"] == "abc" and data["queue"] == "emails" and data["level"] == "info"
    text = TextFormatter().format(record)
    assert "job abc done" in text and "job_id=abc" in text and "queue=emails" in text
