"""The job log lines (issue 9 §4) in process: levels, fields, nothing built when a level
is off, and logfmt lines that stay one line whatever the values hold."""

from __future__ import annotations

import logging
import os

import pytest

from conveyor.events import EventBus, JobFinished, JobStarted
from conveyor.logs import LineHandler, TextFormatter, logfmt_value
from conveyor.worker.joblog import JobLog


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logger() -> logging.Logger:
    log = logging.getLogger("conveyor.test_joblog")
    log.handlers[:] = [Collect()]
    log.propagate = False
    return log


def collected(logger: logging.Logger) -> list[logging.LogRecord]:
    handler = logger.handlers[0]
    assert isinstance(handler, Collect)
    return handler.records


def finished(outcome: str, **extra: object) -> JobFinished:
    return JobFinished("j1", "t.add", "high", 2, "w1", outcome, 0.25, **extra)  # type: ignore[arg-type]


def test_lines_carry_the_job_and_the_outcome(logger: logging.Logger) -> None:
    logger.setLevel(logging.INFO)
    bus = EventBus()
    JobLog(bus, logger)
    bus.publish(JobStarted("j1", "t.add", "high", 2, "w1"))
    bus.publish(finished("completed"))
    bus.publish(finished("retrying", error="ValueError: x", retry_in=3.0, traceback="tb"))
    bus.publish(finished("failed", error="ValueError: x", reason="exhausted"))
    bus.publish(finished("deferred", detail="rate_limit: over the limit", retry_in=60.0))
    records = collected(logger)
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("INFO", "job received"),
        ("INFO", "job succeeded"),
        ("WARNING", "job failed, will retry"),
        ("ERROR", "job failed, moved to the DLQ"),
        ("INFO", "job deferred"),
    ]
    assert all(vars(r)["job_id"] == "j1" and vars(r)["queue"] == "high" for r in records)
    assert vars(records[1])["runtime"] == 0.25
    assert vars(records[2])["retry_in"] == 3.0 and vars(records[2])["traceback"] == "tb"
    assert vars(records[3])["reason"] == "exhausted"


def test_nothing_is_built_below_the_level(logger: logging.Logger) -> None:
    logger.setLevel(logging.WARNING)
    bus = EventBus()
    job_log = JobLog(bus, logger)
    assert not bus.wants(JobStarted)  # the worker does not even build the event
    bus.publish(finished("completed"))
    bus.publish(finished("failed", reason="exhausted"))
    assert [r.getMessage() for r in collected(logger)] == ["job failed, moved to the DLQ"]
    job_log.detach()
    assert not bus.wants(JobFinished)


def test_logfmt_values_stay_on_one_line() -> None:
    assert logfmt_value("plain") == "plain"
    assert logfmt_value('say "hi"\nnow') == '"say \\"hi\\"\\nnow"'
    assert logfmt_value("") == '""'
    assert logfmt_value(0.5) == "0.5"
    record = logging.makeLogRecord(
        {"name": "conveyor.jobs", "levelname": "ERROR", "msg": "job failed", "tb": "a\nb"}
    )
    line = TextFormatter().format(record)
    assert "\n" not in line and 'tb="a\\nb"' in line and 'msg="job failed"' in line


def test_the_handler_writes_whole_lines_to_a_pipe() -> None:
    read, write = os.pipe()
    try:
        with os.fdopen(os.dup(write), "w") as stream:
            handler = LineHandler(stream)
            handler.setFormatter(TextFormatter())
            handler.emit(logging.makeLogRecord({"msg": "x" * 3000, "name": "conveyor.t"}))
        data = os.read(read, 65536).decode()
    finally:
        os.close(read)
        os.close(write)
    assert data.endswith("x" * 3000 + "\n") and data.count("\n") == 1


def test_two_workers_of_one_app_log_each_job_once() -> None:
    """Workers sharing an App share its event bus: each logs its own jobs only."""
    import threading
    import time

    from conveyor import App
    from conveyor.config import AppSettings, WorkerSettings
    from conveyor.worker.consumer import Worker

    jobs_log = logging.getLogger("conveyor.jobs")
    handler = Collect()
    saved = jobs_log.level
    jobs_log.addHandler(handler)
    jobs_log.setLevel(logging.INFO)
    app = App("memory://", settings=AppSettings(store="memory://"))

    @app.task(queue="a")
    def add(x: int, y: int) -> int:
        return x + y

    idle = Worker(app, WorkerSettings(queues="b", poll_interval=0.02), maintenance=False)
    thread = threading.Thread(target=idle.run)
    try:
        thread.start()
        deadline = time.monotonic() + 10
        while not app.events.wants(JobFinished) and time.monotonic() < deadline:
            time.sleep(0.01)  # the idle worker's job log is attached
        add.enqueue(1, 2)
        Worker(app, WorkerSettings(queues="a", burst=True), maintenance=False).run()
    finally:
        idle.request_stop(immediate=True)
        thread.join(timeout=10)
        jobs_log.removeHandler(handler)
        jobs_log.setLevel(saved)
        app.close()
    messages = [r.getMessage() for r in handler.records]
    assert messages == ["job received", "job succeeded"]  # before the fix: each twice


def test_logfmt_escapes_every_control_character() -> None:
    """A value with a form feed, NEL, a line separator or a terminal escape (user data in
    an error message) stays on one line for any line splitter and cannot drive a
    terminal."""
    value = "a\x0cb\x85c\u2028d\x1b[2Je\x00"
    written = logfmt_value(value)
    assert len(written.splitlines()) == 1
    assert written.isprintable()  # before the fix: the characters went out raw
    assert written == '"a\\x0cb\\x85c\\u2028d\\x1b[2Je\\x00"'
