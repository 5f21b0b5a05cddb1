"""Memory guarded during a job (issue 10, defect 7): sizes, the RSS watch with a fake
sample, the supervisor's memory kill and its naming of kernel OOM kills (a fake
``memory.events`` file)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.worker.test_supervisor import app, clock, make  # noqa: F401  # fixtures

from conveyor import App, Fixed, JobState
from conveyor.config import AppSettings, WorkerSettings
from conveyor.errors import InvalidOption
from conveyor.sizes import MIB, memory_limit
from conveyor.stores.base import ClaimParams
from conveyor.stores.memory import MemoryStore
from conveyor.task import Task
from conveyor.worker.consumer import Worker
from conveyor.worker.memory import Breach, MemoryWatch, OomKills, own_memory_events
from conveyor.worker.reporting import NullReporter
from conveyor.worker.slot import CurrentJob

# sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [(512, 512 * MIB), ("512MiB", 512 * MIB), ("2GiB", 2 << 30), ("1.5g", 3 << 29), (None, None)],
)
def test_memory_limit_reads_mib_and_sizes(given: object, expected: int | None) -> None:
    assert memory_limit(given) == expected


@pytest.mark.parametrize("bad", [0, -5, True, "lots", "512 apples", 1.5])
def test_memory_limit_rejects_bad_values_saying_what_is_expected(bad: object) -> None:
    with pytest.raises(InvalidOption, match="max_memory"):
        memory_limit(bad)


def test_task_option_is_validated_at_decoration(app: App) -> None:  # noqa: F811
    with pytest.raises(InvalidOption, match="size such as '512MiB'"):

        @app.task(name="hog", max_memory="a lot")
        def hog() -> None: ...

    @app.task(name="ok", max_memory="300MiB")
    def ok() -> None: ...

    assert app.get_task("ok").options.max_memory_bytes == 300 * MIB


# the watch -----------------------------------------------------------------------------------


class Sampler:
    def __init__(self) -> None:
        self.rss = 10 * MIB

    def __call__(self) -> int:
        return self.rss


def make_watch(
    sampler: Sampler, child_limit: int = 0, grace: float = 0.0
) -> tuple[MemoryWatch, list[Breach], list[Breach]]:
    breaches: list[Breach] = []
    stuck: list[Breach] = []

    def deliver(breach: Breach) -> bool:
        breaches.append(breach)
        return True

    watch = MemoryWatch(
        child_limit=child_limit,
        grace=grace,
        on_breach=deliver,
        on_stuck=stuck.append,
        sample=sampler,
    )
    return watch, breaches, stuck


def test_watch_reports_a_breach_once_and_then_asks_for_a_kill() -> None:
    sampler = Sampler()
    watch, breaches, stuck = make_watch(sampler, grace=0.0)
    watch.arm("j1", 100 * MIB)
    watch.check()
    assert breaches == [] and watch.breach_of("j1") is None
    sampler.rss = 150 * MIB
    watch.check()
    assert breaches == [Breach("j1", 150 * MIB, 100 * MIB)]
    time.sleep(0.001)
    watch.check()
    watch.check()
    assert len(breaches) == 1 and stuck == breaches  # once each
    assert "150 MiB, past its memory limit of 100 MiB" in breaches[0].message("t")
    watch.disarm()
    watch.stop()


def test_watch_ignores_samples_when_no_job_runs_and_resets_per_job() -> None:
    sampler = Sampler()
    sampler.rss = 500 * MIB
    watch, breaches, _ = make_watch(sampler)
    watch.check()
    assert breaches == []
    watch.arm("j1", 100 * MIB)
    watch.check()
    watch.disarm()
    watch.arm("j2", None)
    watch.check()
    assert [b.job_id for b in breaches] == ["j1"] and watch.breach_of("j2") is None
    watch.stop()


def test_watch_notes_the_per_child_limit_during_a_job() -> None:
    sampler = Sampler()
    watch, breaches, _ = make_watch(sampler, child_limit=200 * MIB)
    watch.arm("j1", None)
    sampler.rss = 250 * MIB
    watch.check()
    sampler.rss = 20 * MIB  # freed before the job ends: still noted
    watch.check()
    assert watch.child_peak == 250 * MIB and breaches == []
    watch.stop()


def test_watch_thread_samples_while_armed() -> None:
    sampler = Sampler()
    sampler.rss = 300 * MIB
    breaches: list[Breach] = []
    watch = MemoryWatch(
        child_limit=0,
        grace=60.0,
        on_breach=lambda b: breaches.append(b) is None,
        on_stuck=lambda b: None,
        sample=sampler,
        interval=0.01,
    )
    watch.arm("j1", 100 * MIB)
    deadline = time.monotonic() + 5
    while not breaches and time.monotonic() < deadline:
        time.sleep(0.01)
    watch.stop()
    assert breaches and breaches[0].job_id == "j1"


# OOM kills -----------------------------------------------------------------------------------


def events_file(tmp_path: Path, oom_kill: int) -> Path:
    path = tmp_path / "memory.events"
    path.write_text(f"low 0\nhigh 0\nmax 3\noom {oom_kill}\noom_kill {oom_kill}\n")
    return path


def test_oom_counter_rises_only_on_new_kills(tmp_path: Path) -> None:
    path = events_file(tmp_path, 2)
    kills = OomKills(path)
    assert not kills.rose()
    events_file(tmp_path, 3)
    assert kills.rose() and not kills.rose()
    assert not OomKills(None).rose()
    assert not OomKills(tmp_path / "missing").rose()


def test_own_memory_events_finds_the_cgroup_v2_then_v1_counter(tmp_path: Path) -> None:
    cgroup, root = tmp_path / "cgroup", tmp_path / "sys"
    cgroup.write_text("4:memory:/ctr/abc\n1:cpu:/\n0::/ctr/abc\n")
    assert own_memory_events(cgroup, root) is None
    assert own_memory_events(tmp_path / "missing", root) is None
    v1 = root / "memory" / "memory.oom_control"  # a container's own cgroup at the root
    v1.parent.mkdir(parents=True)
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert own_memory_events(cgroup, root) == v1
    assert OomKills(v1)._seen == 2
    v2 = root / "ctr" / "abc" / "memory.events"
    v2.parent.mkdir(parents=True)
    v2.write_text("oom 0\noom_kill 0\n")
    assert own_memory_events(cgroup, root) == v2


def test_sigkilled_child_is_named_an_oom_kill_when_the_counter_rose(
    app: App,  # noqa: F811
    tmp_path: Path,
) -> None:
    handle = app.get_task("work").enqueue()
    (lease,) = app.store.claim(ClaimParams(queues=["default"], worker_id="node-1/0"))
    sup, launcher = make(app, concurrency=1)
    sup.oom_kills = OomKills(events_file(tmp_path, 0))
    sup.tick(0.0)
    child = launcher.children[0]
    child.report("ready", worker_id="node-1/0", pid=child.pid)
    child.job = CurrentJob(handle.id, lease.token, started=0.0, timeout=None)
    sup.tick(0.1)
    events_file(tmp_path, 1)  # the kernel's OOM killer struck
    child.status = -signal.SIGKILL
    sup.tick(0.2)
    job = app.get_job(handle.id).job
    assert job.errors[-1].type == "WorkerLost"
    assert job.errors[-1].message == (
        "worker process died: killed by SIGKILL (out of memory: the kernel's OOM killer)"
    )


def test_sigkilled_child_without_oom_is_not_blamed_on_memory(
    app: App,  # noqa: F811
    tmp_path: Path,
) -> None:
    handle = app.get_task("work").enqueue()
    (lease,) = app.store.claim(ClaimParams(queues=["default"], worker_id="node-1/0"))
    sup, launcher = make(app, concurrency=1)
    sup.oom_kills = OomKills(events_file(tmp_path, 4))
    sup.tick(0.0)
    child = launcher.children[0]
    child.job = CurrentJob(handle.id, lease.token, started=0.0, timeout=None)
    sup.tick(0.1)
    child.status = -signal.SIGKILL
    sup.tick(0.2)
    job = app.get_job(handle.id).job
    assert job.errors[-1].message == "worker process died: killed by SIGKILL"


def test_child_stuck_past_its_memory_limit_is_killed_and_the_job_retried(
    app: App,  # noqa: F811
) -> None:
    handle = app.get_task("work").enqueue()
    (lease,) = app.store.claim(ClaimParams(queues=["default"], worker_id="node-1/0"))
    sup, launcher = make(app, concurrency=1)
    sup.tick(0.0)
    child = launcher.children[0]
    child.report("ready", worker_id="node-1/0", pid=child.pid)
    child.job = CurrentJob(handle.id, lease.token, started=0.0, timeout=None)
    child.report("memory", job_id="someone-else", message="x")
    sup.tick(0.1)
    assert child.signals == []
    child.report("memory", job_id=handle.id, message="work used 900 MiB, past its limit")
    sup.tick(0.2)
    assert child.signals == [signal.SIGKILL]
    sup.tick(0.3)
    job = app.get_job(handle.id).job
    assert job.state is JobState.RETRYING
    assert job.errors[-1].type == "MemoryLimitExceeded"
    assert "900 MiB" in job.errors[-1].message


# the in-process worker (main thread, SIGALRM interrupts) -------------------------------------


@pytest.fixture
def mem_app() -> Iterator[App]:
    application = App(MemoryStore(), settings=AppSettings())
    yield application
    application.close()


def run_hog(application: App, hog: Task[[], Any], **settings: Any) -> tuple[Worker, list[str]]:
    recycled: list[str] = []

    class Recorder(NullReporter):
        def recycling(self, reason: str) -> None:
            recycled.append(reason)

    handle = hog.enqueue()
    w = Worker(application, WorkerSettings(poll_interval=0.05, **settings), reporter=Recorder())
    w.memory.sample = lambda: 400 * MIB
    begun = time.monotonic()
    w.run_once()
    assert time.monotonic() - begun < 5, "the job was not stopped"
    info = application.get_job(handle.id)
    assert info.state is JobState.RETRYING
    assert [e.type for e in info.errors] == ["MemoryLimitExceeded"]
    assert "400 MiB, past its memory limit of 100 MiB" in info.errors[0].message
    return w, recycled


def test_worker_flag_stops_a_sync_handler_and_recycles(mem_app: App) -> None:
    @mem_app.task(name="hog", retry=Fixed(1.0))
    def hog() -> None:
        time.sleep(30)

    w, recycled = run_hog(mem_app, hog, max_memory_per_job=100)
    assert w.stopping and recycled and recycled[0].startswith("max-memory-per-job (400 MiB")


def test_task_option_stops_an_async_handler(mem_app: App) -> None:
    @mem_app.task(name="ahog", max_memory=100, retry=Fixed(1.0))
    async def ahog() -> None:
        await asyncio.sleep(30)

    w, _ = run_hog(mem_app, ahog)
    assert w.stopping


def test_task_option_takes_precedence_over_the_worker_flag(mem_app: App) -> None:
    @mem_app.task(name="roomy", max_memory="1GiB")
    def roomy() -> str:
        return "done"

    handle = roomy.enqueue()
    w = Worker(mem_app, WorkerSettings(poll_interval=0.05, max_memory_per_job=100))
    w.memory.sample = lambda: 400 * MIB
    w.run_once()
    w.acks.flush()
    assert mem_app.get_job(handle.id).state is JobState.COMPLETED and not w.stopping


def test_watch_delivers_the_breach_again_until_the_handler_can_be_interrupted() -> None:
    sampler = Sampler()
    sampler.rss = 400 * MIB
    tries: list[Breach] = []
    stuck: list[Breach] = []
    ready = False
    watch = MemoryWatch(
        child_limit=0,
        grace=60.0,
        on_breach=lambda b: tries.append(b) is None and ready,
        on_stuck=stuck.append,
        sample=sampler,
    )
    watch.arm("j1", 100 * MIB)
    watch.check()
    watch.check()
    assert len(tries) == 2  # not interruptible yet (say, still decoding its payload)
    ready = True
    watch.check()
    watch.check()
    assert len(tries) == 3 and stuck == []
    watch.stop()
