"""Three real ``conveyor scheduler`` processes on one store enqueue each fire time once,
also when the leader is killed and a standby takes over."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from conveyor.stores import open_store
from conveyor.stores.base import JobQuery

pytestmark = pytest.mark.slow

APP_MODULE = textwrap.dedent(
    """
    from conveyor import App

    app = App()


    @app.periodic("every second", name="beat", catch_up="all")
    def beat() -> None:
        return None
    """
)
PROCESSES = 3


def _run_schedulers(dsn: str, tmp_path: Path) -> None:
    (tmp_path / "beatapp.py").write_text(APP_MODULE)
    store = open_store(dsn)
    try:
        store.migrate()
    finally:
        store.close()
    env = {
        **os.environ,
        "CONVEYOR_STORE": dsn,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "conveyor",
        "--app",
        "beatapp:app",
        "scheduler",
        "--leader-ttl",
        "2",
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(PROCESSES):
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
        _wait_for_fire_times(dsn, procs, want=3)
        leader = _leader(dsn, procs)
        leader.kill()  # no goodbye: its lease must lapse before a standby takes over
        leader.communicate(timeout=20)
        survivors = [p for p in procs if p is not leader]
        _wait_for_fire_times(dsn, survivors, want=_count(dsn) + 4)
        assert _leader(dsn, survivors) in survivors
        for proc in survivors:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            proc.send_signal(signal.SIGTERM)
        for proc in survivors:
            _, stderr = proc.communicate(timeout=20)
            assert proc.returncode == 0, stderr.decode()
            assert re.search(rb"scheduler \S+ stopped", stderr), stderr.decode()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def _count(dsn: str) -> int:
    store = open_store(dsn)
    try:
        return store.search(JobQuery(limit=1)).total
    finally:
        store.close()


def _leader(dsn: str, procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """The process holding the leader lease (its holder id is host:pid:random)."""
    deadline = time.monotonic() + 30
    store = open_store(dsn)
    try:
        while time.monotonic() < deadline:
            record = store.get_record("lease", "scheduler")
            if record is not None:
                pid = int(record.value.decode().split(":")[1])
                for proc in procs:
                    if proc.pid == pid:
                        return proc
            time.sleep(0.1)
    finally:
        store.close()
    raise AssertionError("no scheduler process holds the leader lease")


def _wait_for_fire_times(dsn: str, procs: list[subprocess.Popen[bytes]], want: int) -> None:
    """Let the schedulers run until ``want`` fire times are in (start-up is slow under load)."""
    deadline = time.monotonic() + 60
    while _count(dsn) < want:
        assert all(p.poll() is None for p in procs), "a scheduler exited early"
        assert time.monotonic() < deadline, "the schedulers enqueued too few fire times"
        time.sleep(0.2)


def _assert_each_fire_time_once(dsn: str) -> None:
    store = open_store(dsn)
    try:
        page = store.search(JobQuery(limit=10_000))
        jobs = [store.get(job.id) for job in page.items]
    finally:
        store.close()
    keys = Counter(job.unique_key for job in jobs if job is not None)
    assert page.total == len(jobs)
    assert all(key is not None and key.startswith("periodic:beat:") for key in keys)
    assert len(keys) >= 7, keys
    assert set(keys.values()) == {1}, keys
    # catch_up="all": the seconds that went by while nobody led were caught up, so
    # the fire times run without a gap from the first to the last
    seconds = sorted(int(str(key).rsplit(":", 1)[1]) for key in keys)
    assert seconds == list(range(seconds[0], seconds[-1] + 1)), seconds


def test_three_scheduler_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'jobs.db'}"
    _run_schedulers(dsn, tmp_path)
    _assert_each_fire_time_once(dsn)


def test_three_scheduler_processes_on_one_postgres_schema(
    tmp_path: Path, postgres_dsn: str
) -> None:
    _run_schedulers(postgres_dsn, tmp_path)
    _assert_each_fire_time_once(postgres_dsn)
