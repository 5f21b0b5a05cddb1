"""The supervisor's logic, one ``tick(now)`` at a time, with fake children and a fake clock.

Fake children are driven through real pipes: the test writes the reports a child
would send, and records the signals the supervisor sends back.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from conveyor import App, FakeClock, JobState
from conveyor.config import AppSettings, WorkerSettings
from conveyor.errors import StoreUnavailable
from conveyor.job import StateCounts
from conveyor.stores.base import ClaimParams, Completion, JobQuery
from conveyor.stores.memory import MemoryStore
from conveyor.worker.channel import ReportReader, ReportWriter, report_pipe
from conveyor.worker.child import EXIT_CONFIG
from conveyor.worker.scaling import Autoscaler, backlog, suggest_workers
from conveyor.worker.signals import Command
from conveyor.worker.slot import ClaimedJob, CurrentJob, JobSlot
from conveyor.worker.supervisor import RESTART_BACKOFF_MAX, Supervisor


@dataclass
class FakeChild:
    pid: int
    conn: ReportReader
    writer: ReportWriter
    signals: list[int] = field(default_factory=list)
    status: int | None = None
    job: CurrentJob | None = None
    batch: list[ClaimedJob] = field(default_factory=list)

    def poll(self) -> int | None:
        return self.status

    def current_job(self) -> CurrentJob | None:
        return self.job

    def claimed_jobs(self) -> list[ClaimedJob]:
        return self.batch

    def close(self) -> None:
        self.conn.close()

    def signal(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGKILL and self.status is None:
            self.status = -signal.SIGKILL

    def report(self, kind: str, **data: Any) -> None:
        self.writer.send(kind, data)


class FakeLauncher:
    def __init__(self) -> None:
        self.children: list[FakeChild] = []
        self.settings: list[WorkerSettings] = []

    def launch(self, slot: int, settings: WorkerSettings) -> FakeChild:
        reader, write_fd = report_pipe()
        child = FakeChild(pid=1000 + len(self.children), conn=reader, writer=ReportWriter(write_fd))
        self.children.append(child)
        self.settings.append(settings)
        return child

    def reload(self) -> None:
        self.reloads = getattr(self, "reloads", 0) + 1

    def alive(self) -> list[FakeChild]:
        return [c for c in self.children if c.status is None]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def app(clock: FakeClock) -> Iterator[App]:
    application = App(MemoryStore(clock=clock), settings=AppSettings(), clock=clock)

    @application.task(name="work", max_attempts=3)
    def work() -> None: ...

    yield application


def make(app: App, **overrides: Any) -> tuple[Supervisor, FakeLauncher]:
    values: dict[str, Any] = {
        "concurrency": 2,
        "heartbeat_interval": 1.0,
        "lease_seconds": 10.0,
        "liveness_timeout": 5.0,
        "grace": 3.0,
    }
    values.update(overrides)
    launcher = FakeLauncher()
    return Supervisor(app, WorkerSettings(**values), launcher, node_id="node-1"), launcher


def ready_all(launcher: FakeLauncher) -> None:
    for i, child in enumerate(launcher.alive()):
        child.report("ready", worker_id=f"w{i}", pid=child.pid)


def test_starts_the_configured_children_and_registers_the_node(app: App) -> None:
    sup, launcher = make(app, concurrency=3, capabilities="gpu,ssd")
    result = sup.tick(0.0)
    assert result.started == [0, 1, 2]
    assert [s.worker_id for s in launcher.settings] == ["node-1/0", "node-1/1", "node-1/2"]
    ready_all(launcher)
    sup._next_beat = 0.0
    sup.tick(0.1)
    (node,) = app.store.list_nodes()
    assert node.id == "node-1" and node.concurrency == 3 and node.capabilities == ("gpu", "ssd")
    assert [w.state for w in node.workers] == ["idle", "idle", "idle"]


def test_a_crashed_child_is_replaced_with_growing_back_off(app: App) -> None:
    sup, launcher = make(app, concurrency=1)
    sup.tick(0.0)
    launcher.children[0].status = -signal.SIGSEGV
    sup.tick(1.0)
    assert len(launcher.children) == 1  # waiting out the back-off
    sup.tick(1.4)
    assert len(launcher.children) == 1
    sup.tick(1.6)
    assert len(launcher.children) == 2
    launcher.children[1].status = 1  # crashes again before it was ever ready
    sup.tick(2.0)
    sup.tick(2.9)
    assert len(launcher.children) == 2  # back-off doubled to 1 s
    sup.tick(3.1)
    assert len(launcher.children) == 3


def test_back_off_is_capped_and_resets_once_a_child_completed_a_job(app: App) -> None:
    sup, launcher = make(app, concurrency=1)
    now = 0.0
    sup.tick(now)
    for _ in range(12):
        launcher.alive()[0].status = 1
        sup.tick(now)
        now += RESTART_BACKOFF_MAX + 0.1
        sup.tick(now)
    assert sup._restart_at == {}
    assert sup._failures[0] == 12
    child = launcher.alive()[0]
    child.report("ready", worker_id="w", pid=1)
    child.report("alive", processed=1, completed=0, failed=1, rss=0)
    sup.tick(now + 0.1)
    assert sup._failures[0] == 12  # started, even ran a job, but none succeeded
    child.report("alive", processed=2, completed=1, failed=1, rss=0)
    sup.tick(now + 0.2)
    assert 0 not in sup._failures


def test_a_child_that_dies_after_each_start_keeps_its_back_off_growing(app: App) -> None:
    """A crash loop (say a bad row that kills every child right after it is ready) does not
    restart every 0.5 s: being ready is not enough to reset the back-off."""
    sup, launcher = make(app, concurrency=1)
    now = 0.0
    sup.tick(now)
    delays: list[float] = []
    for _ in range(5):
        child = launcher.alive()[0]
        child.report("ready", worker_id="w", pid=child.pid)
        sup.tick(now + 0.01)
        child.status = 1
        sup.tick(now + 0.02)
        delays.append(sup._restart_at[0] - (now + 0.02))
        now = sup._restart_at[0]
        sup.tick(now)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_recycled_child_is_replaced_at_once(app: App) -> None:
    sup, launcher = make(app, concurrency=1)
    sup.tick(0.0)
    first = launcher.children[0]
    first.report("ready", worker_id="w0", pid=first.pid)
    first.report("recycle", reason="max-tasks (100 jobs)")
    sup.tick(0.1)
    assert len(launcher.children) == 2  # replacement starts while the old one finishes
    first.status = 0
    sup.tick(0.2)
    assert len(launcher.children) == 2 and 0 not in sup._restart_at


def test_silent_child_is_killed_as_hung_and_its_job_recovered(app: App, clock: FakeClock) -> None:
    handle = app.get_task("work").enqueue()
    (lease,) = app.store.claim(ClaimParams(queues=["default"], worker_id="node-1/0"))
    sup, launcher = make(app, concurrency=1)
    sup.tick(0.0)
    child = launcher.children[0]
    child.report("ready", worker_id="node-1/0", pid=child.pid)
    child.job = CurrentJob(handle.id, lease.token, started=0.0, timeout=None)
    sup.tick(1.0)
    sup.tick(5.5)
    assert child.signals == []  # last report at 1.0; 4.5 s of silence is within 5 s
    result = sup.tick(6.5)
    assert child.signals == [signal.SIGKILL]
    assert result.killed and "hung" in result.killed[0][1]
    sup.tick(6.6)
    job = app.get_job(handle.id).job
    assert job.state is JobState.RETRYING
    assert job.errors[-1].type == "WorkerLost" and "hung" in job.errors[-1].message


def test_hard_timeout_kills_the_child_and_fails_the_attempt(app: App) -> None:
    handle = app.get_task("work").enqueue()
    (lease,) = app.store.claim(ClaimParams(queues=["default"], worker_id="node-1/0"))
    sup, launcher = make(app, concurrency=1, hard_timeout_grace=2.0)
    sup.tick(0.0)
    child = launcher.children[0]
    child.report("ready", worker_id="node-1/0", pid=child.pid)
    child.job = CurrentJob(handle.id, lease.token, started=0.5, timeout=1.0)
    sup.tick(0.5)
    for t in (1.0, 2.0, 3.0):
        child.report("alive", processed=0, failed=0, rss=1)
        sup.tick(t)
    assert child.signals == []
    child.report("alive", processed=0, failed=0, rss=1)
    sup.tick(3.6)
    assert child.signals == [signal.SIGKILL]
    sup.tick(3.7)
    job = app.get_job(handle.id).job
    assert job.state is JobState.RETRYING and job.errors[-1].type == "HardTimeout"


def test_a_child_that_finished_its_job_first_keeps_the_result(app: App) -> None:
    """The recovery is fenced: a completed job is not touched."""
    handle = app.get_task("work").enqueue()
    (lease,) = app.store.claim(ClaimParams(queues=["default"], worker_id="node-1/0"))
    sup, launcher = make(app, concurrency=1)
    sup.tick(0.0)
    child = launcher.children[0]
    child.job = CurrentJob(handle.id, lease.token, started=0.0, timeout=None)
    sup.tick(0.1)
    assert app.store.complete([Completion(lease, None)]) == []
    child.status = -signal.SIGKILL
    result = sup.tick(0.2)
    assert result.recovered == []
    assert app.get_job(handle.id).state is JobState.COMPLETED


def test_crash_loop_of_one_job_ends_in_the_dlq_as_poison(app: App) -> None:
    handle = app.get_task("work").enqueue()
    sup, launcher = make(app, concurrency=1)
    now = 0.0
    sup.tick(now)
    for _ in range(3):
        app.store.stage_due(now=app.clock.now() + 10_000)
        (lease,) = app.store.claim(ClaimParams(queues=["default"], worker_id="w"))
        child = launcher.alive()[0]
        child.job = CurrentJob(handle.id, lease.token, started=now, timeout=None)
        sup.tick(now)
        child.status = -signal.SIGSEGV
        sup.tick(now)
        now += RESTART_BACKOFF_MAX + 1
        sup.tick(now)
    job = app.get_job(handle.id).job
    assert job.state is JobState.FAILED and job.failure_reason == "poison"
    assert [e.type for e in job.errors] == ["WorkerLost"] * 3


def test_graceful_stop_then_grace_then_kill(app: App) -> None:
    sup, launcher = make(app, concurrency=2, grace=3.0)
    sup.tick(0.0)
    ready_all(launcher)
    sup.command(Command.STOP)
    sup.tick(1.0)
    assert all(c.signals == [signal.SIGTERM] for c in launcher.children)
    launcher.children[0].status = 0
    sup.tick(2.0)
    assert not sup.finished and len(launcher.children) == 2  # no replacement while stopping
    sup.tick(4.5)
    assert launcher.children[1].signals == [signal.SIGTERM, signal.SIGQUIT]
    sup.tick(9.0)
    sup.tick(10.0)
    assert launcher.children[1].signals[-1] == signal.SIGKILL
    sup.tick(10.1)
    assert sup.finished and app.store.list_nodes() == []


def test_second_stop_is_immediate(app: App) -> None:
    sup, launcher = make(app, concurrency=1)
    sup.tick(0.0)
    sup.command(Command.STOP)
    sup.command(Command.STOP)
    sup.tick(0.1)
    assert launcher.children[0].signals == [signal.SIGTERM, signal.SIGQUIT]


def test_pause_and_resume_reach_every_child_including_new_ones(app: App) -> None:
    sup, launcher = make(app, concurrency=2)
    sup.tick(0.0)
    sup.command(Command.PAUSE)
    sup.tick(0.1)
    assert all(c.signals == [signal.SIGUSR1] for c in launcher.children)
    launcher.children[0].status = -9
    sup.tick(0.2)
    sup.tick(1.0)
    newcomer = launcher.children[-1]
    newcomer.report("ready", worker_id="w", pid=newcomer.pid)
    sup.tick(1.1)
    assert newcomer.signals == [signal.SIGUSR1]
    sup.command(Command.RESUME)
    sup.tick(1.2)
    assert newcomer.signals == [signal.SIGUSR1, signal.SIGUSR2]


def test_reload_replaces_children_one_at_a_time(app: App) -> None:
    sup, launcher = make(app, concurrency=2)
    sup.tick(0.0)
    ready_all(launcher)
    old = list(launcher.children)
    sup.command(Command.RELOAD)
    sup.tick(0.1)
    assert [c.signals for c in old] == [[signal.SIGTERM], []]
    old[0].status = 0
    sup.tick(0.2)
    assert len(launcher.children) == 3  # the replacement
    sup.tick(0.3)
    assert old[1].signals == []  # waits until the replacement is ready
    launcher.children[2].report("ready", worker_id="new0", pid=1)
    sup.tick(0.4)
    assert old[1].signals == [signal.SIGTERM]
    old[1].status = -signal.SIGTERM
    sup.tick(0.5)
    launcher.children[3].report("ready", worker_id="new1", pid=2)
    sup.tick(0.6)
    assert {c.generation for c in sup.children.values()} == {1}
    assert len(sup.children) == 2 and sup._failures == {}


def test_app_that_cannot_load_stops_the_supervisor(app: App) -> None:
    sup, launcher = make(app, concurrency=2)
    sup.tick(0.0)
    launcher.children[0].report("error", message="no module named nope")
    launcher.children[0].status = EXIT_CONFIG
    sup.tick(0.1)
    sup.tick(0.2)
    assert sup.exit_code == EXIT_CONFIG and sup.stopping


@pytest.mark.parametrize(
    ("pending", "busy", "wait", "expected"),
    [(0, 0, 0.0, 0), (5, 0, 0.0, 5), (3, 2, 0.0, 5), (1, 4, 5.0, 5), (0, 3, 0.0, 3)],
)
def test_suggest_workers(pending: int, busy: int, wait: float, expected: int) -> None:
    assert suggest_workers(pending=pending, busy=busy, oldest_wait=wait) == expected


def test_backlog_adds_up_the_chosen_queues() -> None:
    stats = [
        StateCounts("a", {"pending": 2, "processing": 1}, oldest_pending_at=50.0),
        StateCounts("b", {"pending": 3}, oldest_pending_at=40.0),
        StateCounts("c", {"processing": 4}),
    ]
    chosen = backlog(stats, ["a", "c"])
    assert (chosen.queues, chosen.pending, chosen.processing) == (("a", "c"), 2, 5)
    assert chosen.oldest_wait(now=60.0) == 10.0
    every = backlog(stats, None)
    assert (every.queues, every.pending, every.oldest_pending_at) == (("a", "b", "c"), 5, 40.0)
    assert backlog(stats, ["c"]).oldest_wait(now=60.0) == 0.0
    assert backlog(stats, ["b"]).oldest_wait(now=0.0) == 0.0  # clocks that disagree


def test_autoscaler_grows_one_at_a_time_and_shrinks_after_a_quiet_spell() -> None:
    scaler = Autoscaler(low=1, high=4, scale_down_after=10.0)
    current = 1
    for t in range(5):
        current = scaler.decide(
            float(t), current=current, pending=50, busy=current, oldest_wait=3.0
        )
    assert current == 4
    for t in range(5, 15):
        current = scaler.decide(float(t), current=current, pending=0, busy=0, oldest_wait=0.0)
    assert current == 4  # quiet for < 10 s
    current = scaler.decide(15.0, current=current, pending=0, busy=0, oldest_wait=0.0)
    assert current == 3
    for t in range(16, 60):
        current = scaler.decide(float(t), current=current, pending=0, busy=0, oldest_wait=0.0)
    assert current == 1


def test_supervisor_autoscales_from_the_backlog(app: App, clock: FakeClock) -> None:
    for _ in range(20):
        app.get_task("work").enqueue()
    sup, launcher = make(app, autoscale="1,3")
    now = 0.0
    sup.tick(now)
    assert len(launcher.alive()) == 2  # from MIN=1, one step up per decision
    for _ in range(4):
        now += 1.1
        clock.advance(1.1)
        sup.tick(now)
    assert len(launcher.alive()) == 3
    app.store.delete([job.id for job in app.store.search(JobQuery(limit=100)).items])
    ready_all(launcher)
    for _ in range(40):
        now += 1.1
        clock.advance(1.1)
        sup.tick(now)
        for child in launcher.alive():
            if signal.SIGTERM in child.signals:
                child.status = 0
            else:
                child.report("alive", processed=0, failed=0, rss=1)
    assert len(launcher.alive()) == 1 and sup.target == 1
    assert not any(kill for kill in sup.children.values() if kill.killed)


def test_job_slot_round_trip_between_processes(tmp_path: object) -> None:
    """The slot a child writes is what the supervisor reads, across fork."""
    import os

    slot = JobSlot.create()
    assert slot.read() is None
    pid = os.fork()
    if pid == 0:
        child_view = JobSlot(os.dup(slot.fd))
        child_view.publish("job-1", "tok-1", 12.5, 3.0)
        os._exit(0)
    os.waitpid(pid, 0)
    assert slot.read() == CurrentJob("job-1", "tok-1", 12.5, 3.0)
    other = JobSlot(os.dup(slot.fd))
    other.clear()
    assert slot.read() is None
    other.close()
    slot.close()


def test_a_dead_childs_unstarted_jobs_are_released_and_only_the_running_one_counts(
    app: App,
) -> None:
    """G9: of a dead child's claimed batch, only the running job has an attempt recorded
    as a crash; the others go back to pending at once, with no attempt and no rescue."""
    handles = [app.get_task("work").enqueue() for _ in range(4)]
    leases = app.store.claim(ClaimParams(queues=["default"], worker_id="node-1/0", limit=4))
    assert len(leases) == 4
    done, running, *waiting = leases
    sup, launcher = make(app, concurrency=1)
    sup.tick(0.0)
    child = launcher.children[0]
    child.report("ready", worker_id="node-1/0", pid=child.pid)
    child.batch = [ClaimedJob(lease.job_id, lease.token) for lease in leases]
    assert app.store.complete([Completion(done, None)]) == []  # finished and acknowledged
    child.job = CurrentJob(running.job_id, running.token, started=0.0, timeout=None)
    sup.tick(0.1)
    child.status = -signal.SIGKILL
    result = sup.tick(0.2)
    assert result.recovered == [running.job_id]
    assert sorted(result.released) == sorted(lease.job_id for lease in waiting)
    assert app.get_job(done.job_id).state is JobState.COMPLETED
    crashed = app.get_job(running.job_id).job
    assert crashed.state is JobState.RETRYING and [e.type for e in crashed.errors] == ["WorkerLost"]
    for lease in waiting:
        job = app.get_job(lease.job_id).job
        assert job.state is JobState.PENDING
        assert job.attempt == 0 and job.rescue_count == 0 and not job.errors
    assert len(handles) == 4


def test_a_child_dead_between_jobs_has_its_whole_batch_released(app: App) -> None:
    for _ in range(2):
        app.get_task("work").enqueue()
    leases = app.store.claim(ClaimParams(queues=["default"], worker_id="node-1/0", limit=2))
    sup, launcher = make(app, concurrency=1)
    sup.tick(0.0)
    child = launcher.children[0]
    child.batch = [ClaimedJob(lease.job_id, lease.token) for lease in leases]
    child.status = 1
    result = sup.tick(0.1)
    assert result.recovered == []
    assert sorted(result.released) == sorted(lease.job_id for lease in leases)
    assert all(app.get_job(lease.job_id).state is JobState.PENDING for lease in leases)


def test_claimed_batch_round_trip_between_processes() -> None:
    """The batch a child publishes is what the supervisor reads once the child is gone."""
    slot = JobSlot.create(3)
    assert slot.read_batch() == []
    pid = os.fork()
    if pid == 0:
        child_view = JobSlot(os.dup(slot.fd))
        child_view.publish_batch([("a", "ta"), ("b", "tb"), ("c", "tc")])
        child_view.publish_batch([("d", "td"), ("e", "te")])
        os._exit(0)
    os.waitpid(pid, 0)
    assert slot.read_batch() == [ClaimedJob("d", "td"), ClaimedJob("e", "te")]
    slot.close()


def test_a_batch_torn_by_a_death_mid_write_leaves_the_previous_one() -> None:
    """A child killed half-way through publishing leaves its previous batch readable:
    the half being written is never the one the supervisor reads."""
    slot = JobSlot.create(2)
    writer = JobSlot(os.dup(slot.fd))
    writer.publish_batch([("a", "ta"), ("b", "tb")])
    writer.publish_batch([("c", "tc")])
    # a death mid-write: garbage in the inactive half, the active word not yet flipped
    inactive = writer._half(1 - writer._active)
    writer._map[inactive : inactive + 60] = b"\xff" * 60
    assert slot.read_batch() == [ClaimedJob("c", "tc")]
    writer.publish_batch([("x" * 36, "y" * 36), ("z", "tz"), ("over", "capacity")])
    assert slot.read_batch() == [ClaimedJob("x" * 36, "y" * 36), ClaimedJob("z", "tz")]
    writer.publish_batch([])
    assert slot.read_batch() == []
    writer.close()
    slot.close()


def test_releases_wait_out_a_store_outage_and_are_retried(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child dying while the store is down: its unstarted jobs are released once the
    store is back (before their leases expire), not left for the rescuer to blame."""
    for _ in range(2):
        app.get_task("work").enqueue()
    leases = app.store.claim(ClaimParams(queues=["default"], worker_id="node-1/0", limit=2))
    sup, launcher = make(app, concurrency=1)
    sup.tick(0.0)
    real_get_many = app.store.get_many
    outage = [True]

    def get_many(ids: Any) -> Any:
        if outage[0]:
            raise StoreUnavailable("connection refused")
        return real_get_many(ids)

    monkeypatch.setattr(app.store, "get_many", get_many)
    child = launcher.children[0]
    child.batch = [ClaimedJob(lease.job_id, lease.token) for lease in leases]
    child.status = -signal.SIGKILL
    assert sup.tick(0.1).released == []
    assert sup.tick(0.3).released == []  # backing off
    outage[0] = False
    assert sup.tick(0.7).released == [lease.job_id for lease in leases]
    assert all(app.get_job(lease.job_id).state is JobState.PENDING for lease in leases)
    assert sup.tick(2.0).released == []
