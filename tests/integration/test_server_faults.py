"""A worker keeps going when its server restarts or kills its connections, and no
acknowledged job is lost (issue 4); an idle worker waits for events, not by polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import App, JobState
from conveyor.config import AppSettings, WorkerSettings
from conveyor.errors import StoreUnavailable
from conveyor.stores.base import Store
from conveyor.worker.consumer import Worker
from tests import servers

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import time
    from conveyor import App

    app = App()

    @app.task(name="tick", max_attempts=20)
    def tick(i):
        time.sleep(0.005)
        return i
    """
)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # the server may be down while we look
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    (tmp_path / "faults_app.py").write_text(APP)
    started: list[subprocess.Popen[bytes]] = []

    def start(dsn: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(tmp_path), "CONVEYOR_STORE": dsn}
        with (tmp_path / "worker.log").open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "conveyor",
                    "--app",
                    "faults_app:app",
                    "worker",
                    "--solo",
                    "--poll-interval",
                    "0.2",
                    "--lease-seconds",
                    "4",
                    "--heartbeat-interval",
                    "0.5",
                    "--rescue-interval",
                    "1",
                ],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def enqueue_retrying(task: Any, arg: int) -> Any:
    deadline = time.monotonic() + 60
    while True:
        try:
            return task.enqueue(arg)
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _run_through_a_fault(dsn: str, fault: Callable[[], None], start: Any, log_dir: Path) -> None:
    app = App(settings=AppSettings(store=dsn))
    task = app.task(name="tick", max_attempts=20)(lambda i: i)
    handles = [task.enqueue(i) for i in range(150)]
    proc = start(dsn)

    def done() -> int:
        return sum(app.get_job(h.id).state is JobState.COMPLETED for h in handles)

    wait_until(lambda: done() >= 30, 60, "the first jobs")
    fault()
    # a producer's first call after the fault may be refused (StoreUnavailable: not
    # acknowledged, so nothing is lost); it retries, as a producer should
    more = [enqueue_retrying(task, 1000 + i) for i in range(50)]
    handles += more
    wait_until(lambda: done() == len(handles), 120, "every job, after the fault")
    assert proc.poll() is None, (log_dir / "worker.log").read_text()
    assert [app.get_job(h.id).result for h in handles[:150]] == list(range(150))
    app.close()


def test_postgres_restart_loses_no_job(
    postgres_server: servers.PostgresServer, postgres_dsn: str, worker_process: Any, tmp_path: Path
) -> None:
    _run_through_a_fault(postgres_dsn, postgres_server.restart, worker_process, tmp_path)


def test_postgres_killed_connections_lose_no_job(
    postgres_server: servers.PostgresServer, postgres_dsn: str, worker_process: Any, tmp_path: Path
) -> None:
    import psycopg

    def kill_connections() -> None:
        with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )

    _run_through_a_fault(postgres_dsn, kill_connections, worker_process, tmp_path)


def test_redis_restart_loses_no_job(
    redis_server: servers.RedisServer, redis_url: str, worker_process: Any, tmp_path: Path
) -> None:
    _run_through_a_fault(redis_url, redis_server.restart, worker_process, tmp_path)


def test_redis_killed_connections_lose_no_job(
    redis_server: servers.RedisServer, redis_url: str, worker_process: Any, tmp_path: Path
) -> None:
    import redis

    def kill_connections() -> None:
        redis.Redis(port=redis_server.port).client_kill_filter(_type="normal", skipme=True)

    _run_through_a_fault(redis_url, kill_connections, worker_process, tmp_path)


class CountingStore:
    """Counts calls to a store's methods (everything else passes through)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls.append(name)
            return attr(*args, **kwargs)

        return counted


@pytest.mark.parametrize("driver", ["memory", "sqlite", "file", "postgresql", "redis"])
def test_an_idle_worker_makes_only_a_handful_of_store_calls(
    driver: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    dsn = {
        "memory": lambda: "memory://",
        "file": lambda: f"file://{tmp_path / 'idle-files'}",
        "sqlite": lambda: f"sqlite:///{tmp_path / 'idle.db'}",
        "postgresql": lambda: request.getfixturevalue("postgres_dsn"),
        "redis": lambda: request.getfixturevalue("redis_url"),
    }[driver]()
    app = App(settings=AppSettings(store=dsn))
    counting = CountingStore(app.store)
    app._store = counting  # type: ignore[assignment]
    worker = Worker(app, WorkerSettings(poll_interval=1.0, heartbeat_interval=5, lease_seconds=30))
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    wait_until(lambda: "wait_for_work" in counting.calls, 10, "the worker to wait")
    before = len(counting.calls)
    window = 2.0
    time.sleep(window)  # the quantity under test is calls per second of idleness
    idle_calls = len(counting.calls) - before
    job = app.task(name="late")(lambda: "ok").enqueue()
    picked = time.monotonic()
    wait_until(lambda: app.get_job(job.id).state is JobState.COMPLETED, 10, "the late job")
    latency = time.monotonic() - picked
    worker.request_stop()
    runner.join(10)
    app.close()
    assert idle_calls <= 5 * window, counting.calls[before:]
    assert latency < 0.9  # woken by the enqueue, not by the 1 s poll
