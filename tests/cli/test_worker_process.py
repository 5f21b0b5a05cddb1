"""A real ``python -m conveyor worker`` process: graceful stop, forced stop, burst mode.

The tests wait for states in the store (polling with a deadline), never for fixed
times, and always kill the child in a ``finally``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conveyor.job import JobState

from .conftest import MODULE, Project, subprocess_env

pytestmark = pytest.mark.slow

PROCESS_TIMEOUT = 60.0


@contextmanager
def worker_process(project: Project, *flags: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``python -m conveyor --app cli_test_app worker FLAGS`` in the project."""
    out = (project.path / "worker.out").open("wb")
    err = (project.path / "worker.err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "--app", MODULE, "worker", *flags],
        cwd=project.path,
        env=subprocess_env(project.path),
        stdout=out,
        stderr=err,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=PROCESS_TIMEOUT)
        out.close()
        err.close()


def output(project: Project) -> str:
    """What the worker printed (stdout, then stderr), for assertions and failure messages."""
    return (project.path / "worker.out").read_text() + (project.path / "worker.err").read_text()


def wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 30
) -> None:
    """Poll ``condition`` until true; fail if the deadline passes or the worker dies first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"worker exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_sigterm_lets_the_running_job_finish(project: Project) -> None:
    job_id = project.enqueue("t.sleepy", 1.0)
    store = project.app.store
    with worker_process(project, "--poll-interval", "0.2") as proc:
        wait_for(
            lambda: project.app.get_job(job_id).state is JobState.PROCESSING,
            proc,
            "the job to start",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=PROCESS_TIMEOUT) == 0, output(project)
    job = store.get(job_id)
    assert job is not None
    assert job.state is JobState.COMPLETED, output(project)
    assert project.app.get_job(job_id).result == "rested"
    assert "completed 1" in output(project)


def test_second_sigint_interrupts_and_releases_the_job(project: Project) -> None:
    job_id = project.enqueue("t.sleepy", 300)
    with worker_process(project, "--prefetch", "1", "--poll-interval", "0.2") as proc:
        wait_for(
            lambda: project.app.get_job(job_id).state is JobState.PROCESSING,
            proc,
            "the job to start",
        )
        proc.send_signal(signal.SIGINT)
        # The first SIGINT is graceful: the worker keeps running the job.
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=PROCESS_TIMEOUT) == 0, output(project)
        assert time.monotonic() - started < 10
    job = project.app.get_job(job_id).job
    assert job.state is JobState.PENDING
    assert job.attempt == 0
    assert job.lease_token is None
    assert job.worker_id is None
    assert job.errors == ()
    assert "released 1" in output(project)


def test_burst_exits_once_the_queues_are_empty(project: Project) -> None:
    ids = [project.enqueue("t.add", i, 1) for i in range(20)]
    with worker_process(project, "--burst", "-Q", "high", "--prefetch", "4") as proc:
        assert proc.wait(timeout=PROCESS_TIMEOUT) == 0, output(project)
    jobs = project.app.store.get_many(ids)
    assert [job.state for job in jobs] == [JobState.COMPLETED] * 20
    assert [project.app.decode_result(job) for job in jobs] == [i + 1 for i in range(20)]
    assert "completed 20" in output(project)


def test_worker_without_app_fails_fast(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "worker", "--burst"],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert done.returncode == 2
    assert "pass --app module:attribute" in done.stderr
