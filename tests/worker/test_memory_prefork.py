"""Memory guarded during a job, with a real ``conveyor worker`` (issue 10, defect 7).

The hog task climbs to ~300 MB in touched 10 MiB chunks and frees it all before it
returns, so a check made only after the job sees nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor import App, JobState
from conveyor.config import AppSettings

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os, signal, time
    from conveyor import App, Fixed

    app = App()

    def climb(mib, hold=0.01):
        chunks = [b"x" * (10 << 20) for _ in range(mib // 10) if time.sleep(hold) is None]
        del chunks
        return os.getpid()

    @app.task(name="pid")
    def pid():
        return os.getpid()

    @app.task(name="hog", max_attempts=2, retry=Fixed(0.1))
    def hog():
        return climb(300)

    @app.task(name="capped", max_attempts=2, retry=Fixed(0.1), max_memory="150MiB")
    def capped():
        return climb(300)

    @app.task(name="greedy", max_attempts=1)
    def greedy():
        return climb(400, hold=0)

    @app.task(name="deaf", max_attempts=1, max_memory=150)
    def deaf():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # like C code
        chunks = [b"x" * (10 << 20) for _ in range(30)]
        time.sleep(30)
        return len(chunks)
    """
)
ATTEMPTS = {"pid": 3, "hog": 2, "capped": 2, "deaf": 1, "greedy": 1}
"""The enqueuing side's view of the tasks (its options decide max_attempts)."""


class Worker:
    """A ``conveyor worker`` tree in its own session, killed with its group at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = path / "jobs.db"
        (path / "memory_app.py").write_text(APP)
        self.app = App(settings=AppSettings(store=f"sqlite:///{self.db}"))
        for name, attempts in ATTEMPTS.items():
            self.app.task(name=name, max_attempts=attempts)(lambda *a: None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = path / "worker.log"
        self.closed = False

    def start(self, *flags: str, cgroup: Path | None = None) -> None:
        """Start the tree (inside the memory ``cgroup`` when given, before any child)."""
        env = {**os.environ, "PYTHONPATH": str(self.path)}
        command = [
            sys.executable, "-m", "conveyor", "--app", "memory_app:app",
            "--store", f"sqlite:///{self.db}", "worker", "-c", "1",
            "--heartbeat-interval", "0.25", "--lease-seconds", "2", "--rescue-interval", "0.5",
            "--poll-interval", "0.2", "--hard-timeout-grace", "1", *flags,
        ]  # fmt: skip
        if cgroup is not None:
            join = f'echo $$ > "{cgroup}/cgroup.procs" && exec "$@"'
            command = ["sh", "-c", join, "sh", *command]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.path, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if not self.closed:
            self.app.close()
            self.closed = True

    def finished(self, job_id: str, timeout: float = 60.0) -> None:
        wait_until(
            lambda: self.app.get_job(job_id).state in (JobState.COMPLETED, JobState.FAILED),
            timeout,
            lambda: f"job {job_id} to finish; log:\n{self.log.read_text(errors='replace')}",
        )


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    w = Worker(tmp_path)
    yield w
    w.stop()


def wait_until(check: Callable[[], object], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what()}")
        time.sleep(0.05)


def assert_stopped_by_memory(worker: Worker, job_id: str, attempts: int) -> None:
    info = worker.app.get_job(job_id)
    assert info.state is JobState.FAILED, worker.log.read_text(errors="replace")
    assert [e.type for e in info.errors] == ["MemoryLimitExceeded"] * attempts
    assert "past its memory limit of 150 MiB" in info.errors[0].message


def test_per_job_flag_stops_a_job_that_climbs_and_frees(worker: Worker) -> None:
    hog = worker.app.get_task("hog").enqueue()
    worker.start("--max-memory-per-job", "150")
    worker.finished(hog.id)
    assert_stopped_by_memory(worker, hog.id, attempts=2)  # retried per its policy
    after = worker.app.get_task("pid").enqueue()
    worker.finished(after.id)
    assert worker.app.get_job(after.id).state is JobState.COMPLETED  # the worker survives
    assert worker.proc is not None and worker.proc.poll() is None
    assert "recycling: max-memory-per-job" in worker.log.read_text(errors="replace")


def test_task_option_stops_the_job_without_a_worker_flag(worker: Worker) -> None:
    capped = worker.app.get_task("capped").enqueue()
    hog = worker.app.get_task("hog").enqueue()  # no limit of its own: runs to completion
    worker.start()
    worker.finished(capped.id)
    worker.finished(hog.id)
    assert_stopped_by_memory(worker, capped.id, attempts=2)
    assert worker.app.get_job(hog.id).state is JobState.COMPLETED


def test_per_child_limit_recycles_right_after_a_job_that_climbed(worker: Worker) -> None:
    hog = worker.app.get_task("hog").enqueue()
    after = worker.app.get_task("pid").enqueue()
    worker.start("--max-memory-per-child", "150", "--prefetch", "2")
    worker.finished(hog.id)
    worker.finished(after.id)
    first, second = worker.app.get_job(hog.id), worker.app.get_job(after.id)
    assert first.state is JobState.COMPLETED and second.state is JobState.COMPLETED
    assert first.result != second.result  # the next job ran in a fresh process


def test_a_job_deaf_to_the_interrupt_is_killed_by_the_supervisor(worker: Worker) -> None:
    deaf = worker.app.get_task("deaf").enqueue()
    worker.start()
    worker.finished(deaf.id)
    info = worker.app.get_job(deaf.id)
    assert info.state is JobState.FAILED and info.failure_reason == "exhausted"
    assert [e.type for e in info.errors] == ["MemoryLimitExceeded"]
    assert "past its memory limit of 150 MiB" in info.errors[0].message


@pytest.fixture
def memory_cgroup(worker: Worker) -> Iterator[Path]:
    """A cgroup v1 memory group of 200 MiB without swap (skipped where none can be made);
    the worker's tree is stopped before the group is removed."""
    own = next(
        (
            line.split(":", 2)[2]
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if "memory" in line.split(":")[1].split(",")
        ),
        None,
    )
    base = Path("/sys/fs/cgroup/memory") / (own or "/").lstrip("/")
    group = base / f"conveyor-oom-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(200 << 20))
    except OSError as exc:
        pytest.skip(f"cannot make a cgroup v1 memory group under {base}: {exc}")
    with contextlib.suppress(OSError):  # without swap accounting there is no knob
        (group / "memory.memsw.limit_in_bytes").write_text(str(200 << 20))
    yield group
    worker.stop()
    deadline = time.monotonic() + 10
    while (group / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    group.rmdir()


def test_a_kernel_oom_kill_is_named_as_such(worker: Worker, memory_cgroup: Path) -> None:
    greedy = worker.app.get_task("greedy").enqueue()
    worker.start(cgroup=memory_cgroup)
    worker.finished(greedy.id)
    info = worker.app.get_job(greedy.id)
    assert info.state is JobState.FAILED
    assert [e.type for e in info.errors] == ["WorkerLost"]
    assert info.errors[0].message == (
        "worker process died: killed by SIGKILL (out of memory: the kernel's OOM killer)"
    )
    after = worker.app.get_task("pid").enqueue()
    worker.finished(after.id)
    assert worker.app.get_job(after.id).state is JobState.COMPLETED  # the tree survives
