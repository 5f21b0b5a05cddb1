"""``conveyor worker --with-scheduler``: the worker also runs the scheduler (a thread with
``--solo``, a child process under the supervisor) and stops it when it stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.job import JobState
from conveyor.stores import open_store
from conveyor.stores.base import JobQuery

pytestmark = pytest.mark.slow

APP_MODULE = textwrap.dedent(
    """
    import os
    from pathlib import Path

    from conveyor import App

    app = App()
    BEATS = Path(__file__).with_name("beats.log")


    @app.periodic("every second", name="beat")
    def beat() -> None:
        with open(BEATS, "a") as out:
            out.write(f"{os.getpid()}\\n")
    """
)


def _start(tmp_path: Path, *worker_args: str) -> tuple[subprocess.Popen[bytes], str]:
    (tmp_path / "beatworker.py").write_text(APP_MODULE)
    dsn = f"sqlite:///{tmp_path / 'jobs.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(
        CONVEYOR_STORE=dsn,
        PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")])),
    )
    command = [sys.executable, "-m", "conveyor", "--app", "beatworker:app", "worker"]
    proc = subprocess.Popen(
        [*command, "--with-scheduler", "--poll-interval", "0.1", *worker_args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return proc, dsn


def _wait(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, f"the worker exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _beats(tmp_path: Path) -> list[str]:
    path = tmp_path / "beats.log"
    return path.read_text().split() if path.exists() else []


def _completed(dsn: str) -> int:
    store = open_store(dsn)
    try:
        return store.search(JobQuery(states=[JobState.COMPLETED], limit=1)).total
    finally:
        store.close()


def _leader_pid(dsn: str) -> int | None:
    store = open_store(dsn)
    try:
        record = store.get_record("lease", "scheduler")
        return None if record is None else int(record.value.decode().split(":")[1])
    finally:
        store.close()


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return stderr.decode()


def test_solo_worker_runs_the_scheduler_in_a_thread(tmp_path: Path) -> None:
    proc, dsn = _start(tmp_path, "--solo")
    try:
        _wait(lambda: len(_beats(tmp_path)) >= 3, proc, "three beats")
        assert _leader_pid(dsn) == proc.pid, "the scheduler runs inside the worker process"
    finally:
        stderr = _stop(proc)
    assert proc.returncode == 0, stderr
    assert set(_beats(tmp_path)) == {str(proc.pid)}
    assert _completed(dsn) >= 3
    assert _leader_pid(dsn) is None, "the lease was given up on the way out"


def test_prefork_worker_runs_the_scheduler_as_a_child_and_stops_it(tmp_path: Path) -> None:
    proc, dsn = _start(tmp_path, "-c", "1")
    scheduler_pid = None
    try:
        _wait(lambda: len(_beats(tmp_path)) >= 3, proc, "three beats")
        scheduler_pid = _leader_pid(dsn)
        assert scheduler_pid is not None and scheduler_pid != proc.pid
    finally:
        stderr = _stop(proc)
    assert proc.returncode == 0, stderr
    assert _completed(dsn) >= 3
    with pytest.raises(ProcessLookupError):
        os.kill(scheduler_pid, 0)
    assert _leader_pid(dsn) is None
