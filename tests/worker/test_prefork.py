"""The real prefork supervisor: ``conveyor worker -c N`` as a process tree, real
signals, real SIGKILL/SIGSTOP. Tests wait on store state with deadlines."""

from __future__ import annotations

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
from conveyor.stores.base import NodeInfo

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os, signal, time
    from conveyor import App, current_job

    app = App()
    kept = []

    @app.task(name="pid")
    def pid(i=0):
        return os.getpid()

    @app.task(name="slow", max_attempts=5)
    def slow(marker):
        if current_job().attempt == 1:
            open(marker, "w").write(str(os.getpid()))
            time.sleep(60)
        return os.getpid()

    @app.task(name="gate")
    def gate(path):
        while not os.path.exists(path):
            time.sleep(0.01)
        return os.getpid()

    @app.task(name="hog")
    def hog(i):
        kept.append(bytearray(8 << 20))
        return os.getpid()

    @app.task(name="stuck", timeout=0.3, max_attempts=1)
    def stuck():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # like C code that ignores it
        time.sleep(60)
    """
)


class Tree:
    """A supervisor process started in its own session, killed with its group at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = path / "jobs.db"
        (path / "prefork_app.py").write_text(APP)
        self.app = App(settings=AppSettings(store=f"sqlite:///{self.db}"))
        for name in ("pid", "slow", "gate", "hog", "stuck"):
            self.app.task(name=name)(lambda *a: None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = path / "worker.log"

    def start(self, *flags: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(self.path)}
        command = [
            sys.executable, "-m", "conveyor", "--app", "prefork_app:app",
            "--store", f"sqlite:///{self.db}", "worker",
            "--heartbeat-interval", "0.25", "--lease-seconds", "2", "--rescue-interval", "0.5",
            "--poll-interval", "0.2", *flags,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.path, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self.proc

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def node(self) -> NodeInfo | None:
        nodes = self.app.store.list_nodes()
        return nodes[0] if nodes else None

    def child_pids(self) -> set[int]:
        node = self.node()
        return {w.pid for w in node.workers if w.state != "stopping"} if node else set()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.app.close()


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    t = Tree(tmp_path)
    yield t
    t.stop()


def wait_until(check: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)


def current_jobs(tree: Tree) -> set[str | None]:
    node = tree.node()
    return {w.current_job for w in node.workers} if node else set()


def state(tree: Tree, job_id: str) -> JobState:
    return tree.app.get_job(job_id).state


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_sigkill_of_a_child_mid_job_is_recovered_by_its_replacement(tree: Tree) -> None:
    marker = tree.path / "started"
    job = tree.app.get_task("slow").enqueue(str(marker))
    tree.start("-c", "1")
    wait_until(marker.exists, what="the job to start")
    victim = int(marker.read_text())
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: state(tree, job.id) is JobState.COMPLETED, what="completion")
    info = tree.app.get_job(job.id)
    assert info.result != victim
    assert info.errors[0].type == "WorkerLost" and "SIGKILL" in info.errors[0].message


def test_sigkill_of_the_supervisor_takes_every_child_with_it(tree: Tree) -> None:
    proc = tree.start("-c", "2")
    wait_until(lambda: len(tree.child_pids()) == 2, what="two children")
    children = tree.child_pids()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=10, what="children to die")


def test_a_stopped_child_loses_its_job_and_cannot_complete_it(tree: Tree) -> None:
    gate = tree.path / "gate"
    job = tree.app.get_task("gate").enqueue(str(gate))
    tree.start("-c", "2", "--liveness-timeout", "60")
    wait_until(lambda: state(tree, job.id) is JobState.PROCESSING, what="processing")
    wait_until(lambda: job.id in current_jobs(tree), what="the node to report the job")
    node = tree.node()
    assert node is not None
    holder = next(w for w in node.workers if w.current_job == job.id)
    os.kill(holder.pid, signal.SIGSTOP)
    try:
        wait_until(
            lambda: any(e.type == "LeaseExpired" for e in tree.app.get_job(job.id).errors),
            what="the rescue",
        )
        gate.write_text("open")
        wait_until(lambda: state(tree, job.id) is JobState.COMPLETED, what="completion elsewhere")
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    winner = tree.app.get_job(job.id).result
    assert winner != holder.pid
    wait_until(
        lambda: "lease lost" in tree.output(), timeout=10, what="the stale child to be refused"
    )
    assert tree.app.get_job(job.id).result == winner


def test_recycling_by_max_tasks_loses_nothing(tree: Tree) -> None:
    jobs = [tree.app.get_task("pid").enqueue(i) for i in range(12)]
    tree.start("-c", "1", "--max-tasks-per-child", "3", "--burst")
    assert tree.proc is not None and tree.proc.wait(60) == 0, tree.output()
    results = [tree.app.get_job(j.id).result for j in jobs]
    assert all(tree.app.get_job(j.id).state is JobState.COMPLETED for j in jobs)
    assert len(set(results)) >= 4
    assert "recycle: max-tasks" in tree.output()


def test_recycling_by_memory_and_leak_report(tree: Tree) -> None:
    jobs = [tree.app.get_task("hog").enqueue(i) for i in range(8)]
    tree.start("-c", "1", "--max-memory-per-child", "60", "--burst")
    assert tree.proc is not None and tree.proc.wait(60) == 0, tree.output()
    assert all(tree.app.get_job(j.id).state is JobState.COMPLETED for j in jobs)
    assert len({tree.app.get_job(j.id).result for j in jobs}) >= 2
    assert "recycle: max-memory" in tree.output()
    assert "may leak memory" in tree.output() or "may be leaking" in tree.output()


def test_hard_timeout_kills_a_job_that_ignores_its_soft_timeout(tree: Tree) -> None:
    job = tree.app.get_task("stuck").enqueue()
    tree.start("-c", "1", "--hard-timeout-grace", "0.5")
    wait_until(lambda: state(tree, job.id) is JobState.FAILED, what="the job to fail")
    info = tree.app.get_job(job.id)
    assert info.errors[-1].type == "HardTimeout" and info.failure_reason == "exhausted"
    wait_until(lambda: len(tree.child_pids()) == 1, what="a replacement child")


def test_quit_stops_at_once_and_releases_the_job(tree: Tree) -> None:
    gate = tree.path / "never"
    job = tree.app.get_task("gate").enqueue(str(gate))
    proc = tree.start("-c", "1")
    wait_until(lambda: state(tree, job.id) is JobState.PROCESSING, what="processing")
    proc.send_signal(signal.SIGQUIT)
    assert proc.wait(20) == 0, tree.output()
    info = tree.app.get_job(job.id).job
    assert info.state is JobState.PENDING and info.attempt == 0


def test_usr1_pauses_usr2_resumes_and_hup_replaces_every_child(tree: Tree) -> None:
    proc = tree.start("-c", "2")
    wait_until(lambda: len(tree.child_pids()) == 2, what="two children")
    first = tree.child_pids()
    proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: (node := tree.node()) is not None and node.state == "paused", what="pause")
    job = tree.app.get_task("pid").enqueue()
    time.sleep(0.5)  # a paused node must not take the job; give it the chance to
    assert state(tree, job.id) is JobState.PENDING
    proc.send_signal(signal.SIGUSR2)
    wait_until(lambda: state(tree, job.id) is JobState.COMPLETED, what="resume")
    proc.send_signal(signal.SIGHUP)
    wait_until(
        lambda: len(tree.child_pids()) == 2 and not (tree.child_pids() & first),
        what="every child replaced",
    )
    later = tree.app.get_task("pid").enqueue()
    wait_until(lambda: state(tree, later.id) is JobState.COMPLETED, what="work after reload")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, tree.output()
    assert tree.app.store.list_nodes() == []
