"""The prefork supervisor: keeps N worker children healthy, and owns the node.

``Supervisor.tick(now)`` is one step (tests drive it with fake children and a
fake clock): apply commands recorded by signal handlers, read the children's
reports, reap the dead, kill the hung and the timed-out, start replacements
with back-off, scale, and heartbeat the node into the store. ``run()`` loops
over ``tick`` and sleeps on the children's pipes.

A child that crashes or is killed while holding a job has that job recovered
at once (the supervisor knows its lease token from the child's report): the
attempt is recorded as failed and retried, or sent to the DLQ as ``poison``
when attempts run out (:mod:`conveyor.worker.recovery`). Signals, both those the
supervisor receives and those it sends its children, are in
:mod:`conveyor.worker.signals`. The rest of the child's claimed batch (published in the
same shared slot) is released at once, with no attempt and no crash counted:
only the job that was running when its process died counts towards poison (G9).
Fencing makes this safe even if the child managed to finish first: the late
transition is refused.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass, field, replace

from conveyor.config import WorkerSettings
from conveyor.errors import StoreError
from conveyor.maintenance.pruner import Pruner
from conveyor.maintenance.rescuer import Rescuer
from conveyor.maintenance.retention import Retention
from conveyor.queues import parse_queues
from conveyor.runtime import Runtime
from conveyor.stores.base import NodeInfo, Store, WorkerInfo
from conveyor.stores.server_clock import clock_offset
from conveyor.worker.child import EXIT_CONFIG
from conveyor.worker.launcher import ChildLauncher, ChildProcess
from conveyor.worker.memory import OOM_SUFFIX, OomKills, own_memory_events
from conveyor.worker.recovery import HARD_TIMEOUT, MEMORY_KILL, Recovery
from conveyor.worker.release import BatchReleaser
from conveyor.worker.reporting import WorkerStats
from conveyor.worker.scaling import Autoscaler, backlog
from conveyor.worker.signals import (
    CHILD_SIGNALS,
    Command,
    describe_exit,
    drain_wakeups,
    supervisor_signals,
)
from conveyor.worker.slot import CurrentJob

log = logging.getLogger("conveyor.supervisor")

RESTART_BACKOFF_MAX = 30.0
KILL_AFTER = 5.0
"""Seconds after SIGQUIT before stragglers get SIGKILL."""


@dataclass(slots=True)
class Child:
    """One child as the supervisor tracks it."""

    slot: int
    proc: ChildProcess
    started: float
    last_seen: float
    generation: int
    ready: bool = False
    worker_id: str = ""
    job: CurrentJob | None = None
    """Read from the child's job slot on every tick."""
    processed: int = 0
    failed: int = 0
    rss: int = 0
    retiring: str = ""
    """Why it was asked to leave (recycle, reload, scale-down, stop); empty if not."""
    killed: str = ""
    """Why the supervisor killed it (hung, hard timeout, lease lost)."""
    signalled_at: float | None = None
    leaks: dict[str, float] = field(default_factory=dict)

    @property
    def state(self) -> str:
        """For the node registry."""
        if self.retiring or self.killed:
            return "stopping"
        if not self.ready:
            return "starting"
        return "busy" if self.job else "idle"


@dataclass(slots=True)
class TickResult:
    """What one tick did (for tests and logs)."""

    started: list[int] = field(default_factory=list)
    exited: list[tuple[int, int]] = field(default_factory=list)
    killed: list[tuple[int, str]] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    """Jobs a dead child had claimed but was not running, given back unharmed."""
    target: int = 0


class Supervisor:
    """Forks and watches worker children for one node."""

    def __init__(
        self,
        app: Runtime,
        settings: WorkerSettings,
        launcher: ChildLauncher,
        *,
        node_id: str = "",
    ) -> None:
        self.app = app
        self.settings = settings
        self.launcher = launcher
        self.store: Store = app.store
        self.node_id = node_id or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(2).hex()}"
        self.queues = parse_queues(settings.queues).names
        bounds = settings.autoscale_bounds()
        self.autoscaler = Autoscaler(*bounds) if bounds else None
        self.target = bounds[0] if bounds else settings.concurrency
        self.children: dict[int, Child] = {}
        self.commands: deque[Command] = deque()
        self.generation = 0
        self.paused = False
        self.stopping = False
        self.stop_now = False
        self.stop_started: float | None = None
        self.finished = False
        self.totals = WorkerStats()
        """Counters of every child that has exited cleanly, added up."""
        self.exit_code = 0
        self.started_wall = app.clock.now()
        self.rescuer = Rescuer(
            self.store, retry_delay=settings.rescue_retry_delay, max_rescues=settings.max_rescues
        )
        self.pruner = Pruner(
            self.store,
            Retention.of(settings),
            holder=self.node_id,
            interval=settings.prune_interval,
        )
        self.releaser = BatchReleaser(self.store)
        """Releases dead children's unstarted jobs (retried through store outages)."""
        self._restart_at: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._next_beat = 0.0
        self._next_rescue = 0.0
        self._next_scale = 0.0
        self.recovery = Recovery(self.store, app.tasks, app.clock)
        """Settles the job a dead child was running."""
        self.oom_kills = OomKills(own_memory_events())
        """Names a child's SIGKILL an OOM kill when the cgroup's counter rose."""

    # commands ----------------------------------------------------------------------------
    def command(self, cmd: Command) -> None:
        """Queue a command (safe from a signal handler); ``tick`` applies it."""
        self.commands.append(cmd)

    def _apply(self, cmd: Command, now: float) -> None:
        if cmd is Command.STOP:
            if self.stopping:
                self._apply(Command.STOP_NOW, now)
                return
            log.info("supervisor %s: draining (grace %.0fs)", self.node_id, self.settings.grace)
            self.stopping = True
            self.stop_started = now
            for child in self.children.values():
                self._retire(child, "stop", now)
        elif cmd is Command.STOP_NOW:
            log.info("supervisor %s: stopping now", self.node_id)
            self.stopping = self.stop_now = True
            self.stop_started = self.stop_started or now
            for child in self.children.values():
                child.retiring = child.retiring or "stop"
                child.proc.signal(CHILD_SIGNALS[cmd])
                child.signalled_at = now
        elif cmd is Command.PAUSE or cmd is Command.RESUME:
            self.paused = cmd is Command.PAUSE
            for child in self.children.values():
                child.proc.signal(CHILD_SIGNALS[cmd])
        elif cmd is Command.RELOAD:
            self.generation += 1
            self.launcher.reload()
            log.info(
                "supervisor %s: rolling restart (generation %d)", self.node_id, self.generation
            )

    # the step ----------------------------------------------------------------------------
    def tick(self, now: float) -> TickResult:
        """One step of the supervisor (``now`` is monotonic seconds)."""
        result = TickResult()
        while self.commands:
            self._apply(self.commands.popleft(), now)
        self._read_reports(now)
        self._reap(now, result)
        result.released += self.releaser.retry(now)
        self._watch(now, result)
        if self.stopping:
            self._escalate(now)
            if not self.children:
                self.finished = True
                self._unregister()
            return result
        self._roll(now)
        self._scale(now)
        self._fill(now, result)
        self._maintain(now)
        result.target = self.target
        return result

    def _read_reports(self, now: float) -> None:
        for child in list(self.children.values()):
            child.job = child.proc.current_job()
            try:
                reports = child.proc.conn.read()
            except OSError:
                continue  # the pipe broke: the child is exiting; _reap handles it
            for kind, data in reports:
                self._on_report(child, kind, data, now)

    def _on_report(self, child: Child, kind: str, data: dict[str, object], now: float) -> None:
        child.last_seen = now
        handler = getattr(self, f"_report_{kind}", None)
        if handler is None:
            log.warning("unknown report %r from worker %s", kind, child.worker_id)
            return
        handler(child, data, now)

    def _report_ready(self, child: Child, data: dict[str, object], now: float) -> None:
        child.ready = True
        child.worker_id = str(data.get("worker_id", ""))
        if self.paused:
            child.proc.signal(CHILD_SIGNALS[Command.PAUSE])

    def _report_alive(self, child: Child, data: dict[str, object], now: float) -> None:
        child.processed = int(str(data.get("processed", 0)))
        if int(str(data.get("completed", 0))) > 0:
            # Only a completed job ends a crash loop: a child that starts and dies (say on
            # a row it cannot handle) keeps its restart back-off growing.
            self._failures.pop(child.slot, None)
        child.failed = int(str(data.get("failed", 0)))
        child.rss = int(str(data.get("rss", 0)))

    def _report_leak(self, child: Child, data: dict[str, object], now: float) -> None:
        task = str(data.get("task", ""))
        child.leaks[task] = float(str(data.get("growth_mib", 0.0)))
        log.warning(
            "task %s may leak memory: +%.1f MiB over %s runs in worker %s",
            task,
            child.leaks[task],
            data.get("runs"),
            child.worker_id,
            extra={"task": task, "node": self.node_id},
        )

    def _report_stats(self, child: Child, data: dict[str, object], now: float) -> None:
        for name, value in data.items():
            if hasattr(self.totals, name) and isinstance(value, int):
                setattr(self.totals, name, getattr(self.totals, name) + value)

    def _report_drained(self, child: Child, data: dict[str, object], now: float) -> None:
        child.retiring = "burst: queues drained"
        if self.settings.burst and not self.stopping:
            self._apply(Command.STOP, now)

    def _report_recycle(self, child: Child, data: dict[str, object], now: float) -> None:
        child.retiring = f"recycle: {data.get('reason', '')}"

    def _report_memory(self, child: Child, data: dict[str, object], now: float) -> None:
        """The child's job passed its memory limit and did not stop: kill the child."""
        job = child.proc.current_job()
        if child.killed or job is None or job.job_id != data.get("job_id"):
            return
        child.killed = f"{MEMORY_KILL}{data.get('message', '')}"
        child.proc.signal(signal.SIGKILL)
        log.error("killing worker %s: %s", child.worker_id or child.proc.pid, child.killed)

    def _report_error(self, child: Child, data: dict[str, object], now: float) -> None:
        log.error("worker child could not start: %s", data.get("message"))

    def _reap(self, now: float, result: TickResult) -> None:
        for slot, child in list(self.children.items()):
            status = child.proc.poll()
            if status is None:
                continue
            self._read_reports(now)
            del self.children[slot]
            result.exited.append((slot, status))
            # a child asked to leave may also die of the SIGTERM itself (e.g. still starting)
            expected = bool(child.retiring) and not child.killed and status in (0, -signal.SIGTERM)
            if status == -signal.SIGKILL and not child.killed and self.oom_kills.rose():
                child.killed = f"worker process died: killed by SIGKILL{OOM_SUFFIX}"
            if child.job is not None:
                reason = child.killed or f"worker process died: {describe_exit(status)}"
                if self.recovery.recover(
                    child.job, worker_id=child.worker_id, killed=child.killed, why=reason
                ):
                    result.recovered.append(child.job.job_id)
            result.released += self._release_claimed(child, now)
            try:
                child.proc.close()  # after reading its slot: closing unmaps it
            except OSError:
                log.debug("closing the pipe of child %s failed", child.proc.pid)
            if status == EXIT_CONFIG and not child.ready:
                log.error("the app could not be loaded; the supervisor stops")
                self.exit_code = EXIT_CONFIG
                self.commands.append(Command.STOP_NOW)
                continue
            if expected or self.stopping:
                log.info(
                    "worker %s left (%s)",
                    child.worker_id or child.proc.pid,
                    child.retiring or child.killed or describe_exit(status),
                )
                continue
            failures = self._failures.get(slot, 0) + 1
            self._failures[slot] = failures
            delay = min(RESTART_BACKOFF_MAX, 0.5 * 2 ** (failures - 1))
            self._restart_at[slot] = now + delay
            log.warning(
                "worker %s (pid %d) died: %s; restarting in %.1fs",
                child.worker_id or "?",
                child.proc.pid,
                child.killed or describe_exit(status),
                delay,
            )

    def _release_claimed(self, child: Child, now: float) -> list[str]:
        """Give back the dead child's claimed jobs other than the running one (G9)."""
        running = child.job.job_id if child.job is not None else None
        claimed = [c for c in child.proc.claimed_jobs() if c.job_id != running]
        if not claimed:
            return []
        return self.releaser.release(child.worker_id or str(child.proc.pid), claimed, now)

    def _watch(self, now: float, result: TickResult) -> None:
        """Kill children that are silent too long or past a job's hard timeout."""
        liveness = self.settings.effective_liveness_timeout
        for child in self.children.values():
            if child.killed:
                continue
            reason = ""
            if now - child.last_seen > liveness:
                reason = f"hung: no report for {now - child.last_seen:.1f}s"
            elif child.job is not None and child.job.timeout is not None:
                limit = child.job.timeout + self.settings.hard_timeout_grace
                ran = now - child.job.started
                if ran > limit:
                    reason = f"{HARD_TIMEOUT}: job ran {ran:.1f}s (limit {limit:g}s)"
            if reason:
                child.killed = reason
                child.proc.signal(signal.SIGKILL)
                result.killed.append((child.slot, reason))
                log.error("killing worker %s: %s", child.worker_id or child.proc.pid, reason)

    def _escalate(self, now: float) -> None:
        """During a stop: SIGQUIT after the grace period, SIGKILL a little later."""
        assert self.stop_started is not None
        waited = now - self.stop_started
        if not self.stop_now and waited > self.settings.grace:
            self._apply(Command.STOP_NOW, now)
        for child in self.children.values():
            if (
                child.signalled_at is not None
                and self.stop_now
                and now - child.signalled_at > KILL_AFTER
            ):
                child.killed = child.killed or "did not stop in time"
                child.proc.signal(signal.SIGKILL)

    def _retire(self, child: Child, why: str, now: float) -> None:
        """Ask ``child`` to finish its job and leave (a stop overrides another reason)."""
        if child.retiring and why != "stop":
            return
        child.retiring = why
        child.signalled_at = now
        child.proc.signal(CHILD_SIGNALS[Command.STOP])

    def _roll(self, now: float) -> None:
        """Rolling restart: retire one old-generation child at a time, and only once
        every new-generation child is ready, so capacity dips by one at most."""
        old = [
            c
            for c in self.children.values()
            if c.generation < self.generation and not c.retiring and not c.killed
        ]
        if not old or any(c.retiring == "reload" for c in self.children.values()):
            return
        if any(not c.ready for c in self.children.values() if c.generation == self.generation):
            return
        self._retire(old[0], "reload", now)

    def _scale(self, now: float) -> None:
        if self.autoscaler is None or now < self._next_scale:
            return
        self._next_scale = now + 1.0
        try:
            stats = self.store.stats()
        except StoreError as exc:
            log.warning("autoscale: stats failed (%s)", exc)
            return
        held = backlog(stats, self.queues)
        pending, wait_s = held.pending, held.oldest_wait(self.app.clock.now())
        active = [c for c in self.children.values() if not c.retiring and not c.killed]
        busy = sum(1 for c in active if c.job)
        target = self.autoscaler.decide(
            now, current=self.target, pending=pending, busy=busy, oldest_wait=wait_s
        )
        if target != self.target:
            log.info(
                "autoscale: %d -> %d children (pending %d, oldest wait %.1fs)",
                self.target,
                target,
                pending,
                wait_s,
            )
        self.target = target
        excess = len(active) - self.target
        for child in sorted(active, key=lambda c: (c.job is not None, -c.started)):
            if excess <= 0:
                break
            self._retire(child, "scale-down", now)
            excess -= 1

    def _fill(self, now: float, result: TickResult) -> None:
        """Start children up to the target, lowest free slot first; a slot backing off
        after a crash stays reserved, so a crash loop cannot spin up other slots."""
        active = [c for c in self.children.values() if not c.retiring and not c.killed]
        missing = self.target - len(active)
        slot = 0
        while missing > 0:
            if slot not in self.children:
                restart_at = self._restart_at.get(slot)
                if restart_at is None or restart_at <= now:
                    self._spawn(slot, now)
                    result.started.append(slot)
                missing -= 1
            slot += 1

    def _spawn(self, slot: int, now: float) -> None:
        self._restart_at.pop(slot, None)
        settings = replace(
            self.settings,
            worker_id=f"{self.node_id}/{slot}"
            if not self.settings.worker_id
            else f"{self.settings.worker_id}/{slot}",
        )
        proc = self.launcher.launch(slot, settings)
        self.children[slot] = Child(
            slot, proc, started=now, last_seen=now, generation=self.generation
        )

    def _maintain(self, now: float) -> None:
        if now >= self._next_rescue:
            self._next_rescue = now + self.settings.rescue_interval
            try:
                rescued = self.rescuer.run_once()
                if rescued.retried or rescued.failed:
                    log.warning(
                        "rescued %d expired leases", len(rescued.retried) + len(rescued.failed)
                    )
            except StoreError as exc:
                log.warning("rescue failed: %s", exc)
        try:
            self.pruner.step()  # cheap unless due; a pass yields after its time budget
        except StoreError as exc:
            log.warning("prune failed: %s", exc)
        if now >= self._next_beat:
            self._next_beat = now + self.settings.heartbeat_interval
            try:
                self.store.register_node(self.node_info(now))
            except StoreError as exc:
                log.warning("node heartbeat failed: %s", exc)

    # node ----------------------------------------------------------------------------------
    def node_info(self, now: float) -> NodeInfo:
        """This node as the registry shows it."""
        wall = self.app.clock.now()
        workers = tuple(
            WorkerInfo(
                id=c.worker_id or f"{self.node_id}/{c.slot}",
                pid=c.proc.pid,
                state=c.state,
                current_job=c.job.job_id if c.job else None,
                processed=c.processed,
                failed=c.failed,
                rss_bytes=c.rss,
                started_at=wall - (now - c.started),
                heartbeat_at=wall - (now - c.last_seen),
            )
            for c in sorted(self.children.values(), key=lambda c: c.slot)
        )
        state = "stopping" if self.stopping else "paused" if self.paused else "running"
        return NodeInfo(
            id=self.node_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=tuple(self.queues),
            capabilities=tuple(c for c in self.settings.capabilities.split(",") if c),
            concurrency=self.target,
            state=state,
            started_at=self.started_wall,
            workers=workers,
            clock_offset=clock_offset(self.store.clock),
        )

    def _unregister(self) -> None:
        try:
            self.pruner.close()
            self.store.remove_node(self.node_id)
        except StoreError as exc:
            log.warning("could not unregister node %s: %s", self.node_id, exc)

    # loop ----------------------------------------------------------------------------------
    def run(self, *, tick_every: float = 0.1) -> int:
        """Start children and supervise until stopped; returns the exit status.

        Signals: TERM/INT drain (a second one stops at once), QUIT stops at once,
        USR1 pauses, USR2 resumes, HUP restarts every child with fresh code.
        """
        log.info(
            "supervisor %s starting %s children on queues %s",
            self.node_id,
            self.settings.autoscale or self.target,
            ",".join(self.queues),
        )
        with supervisor_signals(self) as wakeup:
            while not self.finished:
                self.tick(time.monotonic())
                if self.finished:
                    break
                fds = [wakeup.fileno()]
                fds += [
                    c.proc.conn.fileno() for c in self.children.values() if not c.proc.conn.closed
                ]
                ready, _, _ = select.select(fds, [], [], tick_every)
                if fds[0] in ready:
                    drain_wakeups(wakeup)
        log.info("supervisor %s stopped", self.node_id)
        return self.exit_code
