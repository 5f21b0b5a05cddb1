"""A real worker process killed with SIGKILL mid-job: a second worker finishes the job
within lease + rescue interval, and the dead worker's attempt is on record."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor import App, JobState, current_job
from conveyor.config import AppSettings, WorkerSettings
from conveyor.worker.consumer import Worker
from conveyor.worker.signals import worker_signals

LEASE = 2.0
RESCUE = 0.5

pytestmark = pytest.mark.slow


def make_app(db: Path) -> App:
    app = App(settings=AppSettings(store=f"sqlite:///{db}"))

    @app.task(name="crashy", max_attempts=5)
    def crashy(marker: str) -> str:
        if current_job().attempt == 1:
            Path(marker).write_text(str(os.getpid()))
            time.sleep(60)
        return f"done on attempt {current_job().attempt}"

    return app


def run_worker(db: str) -> None:
    app = make_app(Path(db))
    settings = WorkerSettings(
        lease_seconds=LEASE,
        heartbeat_interval=0.25,
        rescue_interval=RESCUE,
        poll_interval=0.2,
        rescue_retry_delay=0.0,
    )
    worker = Worker(app, settings)
    with worker_signals(worker):
        worker.run()


def wait_until(predicate: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
def processes() -> Iterator[list[multiprocessing.process.BaseProcess]]:
    started: list[multiprocessing.process.BaseProcess] = []
    yield started
    for proc in started:
        if proc.is_alive():
            proc.kill()
        proc.join(10)


def spawn(db: Path, started: list[multiprocessing.process.BaseProcess]) -> int:
    proc = multiprocessing.get_context("fork").Process(target=run_worker, args=(str(db),))
    proc.start()
    started.append(proc)
    assert proc.pid is not None
    return proc.pid


def test_sigkill_mid_job_is_recovered_by_another_worker(
    tmp_path: Path, processes: list[multiprocessing.process.BaseProcess]
) -> None:
    db = tmp_path / "jobs.db"
    marker = tmp_path / "started"
    app = make_app(db)
    handle = app.get_task("crashy").enqueue(str(marker))

    first = spawn(db, processes)
    wait_until(marker.exists, timeout=20)
    assert app.get_job(handle.id).state is JobState.PROCESSING
    os.kill(first, signal.SIGKILL)
    processes[0].join(10)
    killed_at = time.monotonic()

    spawn(db, processes)
    wait_until(lambda: app.get_job(handle.id).state is JobState.COMPLETED, timeout=30)
    recovered_in = time.monotonic() - killed_at

    info = app.get_job(handle.id)
    assert info.result == "done on attempt 2"
    assert [e.type for e in info.errors] == ["LeaseExpired"]
    assert f":{first}:" in info.errors[0].worker_id
    # G3: lease + rescue interval, plus start-up and polling slack for a loaded CI box
    assert recovered_in < LEASE + RESCUE + 10


def test_sigterm_lets_the_running_job_finish(
    tmp_path: Path, processes: list[multiprocessing.process.BaseProcess]
) -> None:
    db = tmp_path / "jobs.db"
    app = App(settings=AppSettings(store=f"sqlite:///{db}"))
    gate = tmp_path / "gate"

    @app.task(name="gated")
    def gated(path: str) -> str:
        return path

    handle = app.get_task("gated").enqueue(str(gate))
    pid = spawn_gated(db, gate, processes)
    wait_until(lambda: app.get_job(handle.id).state is JobState.PROCESSING, timeout=20)
    os.kill(pid, signal.SIGTERM)
    gate.write_text("go")
    processes[0].join(20)
    assert processes[0].exitcode == 0
    assert app.get_job(handle.id).state is JobState.COMPLETED


def run_gated_worker(db: str, gate: str) -> None:
    app = App(settings=AppSettings(store=f"sqlite:///{db}"))

    @app.task(name="gated")
    def gated(path: str) -> str:
        while not Path(path).exists():
            time.sleep(0.01)
        return path

    worker = Worker(app, WorkerSettings(poll_interval=0.2))
    with worker_signals(worker):
        worker.run()


def spawn_gated(db: Path, gate: Path, started: list[multiprocessing.process.BaseProcess]) -> int:
    proc = multiprocessing.get_context("fork").Process(
        target=run_gated_worker, args=(str(db), str(gate))
    )
    proc.start()
    started.append(proc)
    assert proc.pid is not None
    return proc.pid


def test_bytes_flipped_in_the_database_send_the_job_to_the_dlq(tmp_path: Path) -> None:
    import sqlite3

    from conveyor import FailureReason
    from conveyor.worker.consumer import Worker as InProcessWorker

    db = tmp_path / "jobs.db"
    app = App(settings=AppSettings(store=f"sqlite:///{db}"))
    ran: list[int] = []

    @app.task(name="victim")
    def victim(x: int) -> None:
        ran.append(x)

    handle = victim.enqueue(7)
    with sqlite3.connect(db) as conn:
        (payload,) = conn.execute("SELECT payload FROM jobs WHERE id = ?", (handle.id,)).fetchone()
        flipped = bytearray(payload)
        flipped[len(flipped) // 2] ^= 0x40
        conn.execute("UPDATE jobs SET payload = ? WHERE id = ?", (bytes(flipped), handle.id))
    InProcessWorker(app, WorkerSettings(burst=True, poll_interval=0.05)).run()
    info = app.get_job(handle.id)
    assert not ran
    assert info.state is JobState.FAILED and info.failure_reason == FailureReason.CORRUPT
    assert info.errors[0].type == "CorruptPayload"
    app.close()
