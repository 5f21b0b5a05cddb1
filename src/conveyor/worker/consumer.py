"""The consumer loop: wait for work, claim, run, acknowledge — in one process.

``Worker.run()`` loops over :meth:`Worker.run_once`; tests drive ``run_once``
directly. Signals only record intent (see :mod:`conveyor.worker.signals`): the
loop notices a stop request between jobs, releases what it claimed but did not
start, and returns. A second request interrupts the running job, whose lease is
released so another worker picks it up.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from conveyor.config import WorkerSettings
from conveyor.errors import (
    CancelInterrupt,
    MemoryLimitInterrupt,
    StoreError,
    StoreUnavailable,
)
from conveyor.events import JobStarted, WorkerStateChanged
from conveyor.job import Lease
from conveyor.maintenance.pruner import Pruner
from conveyor.maintenance.rescuer import Rescuer
from conveyor.maintenance.retention import Retention
from conveyor.queue_control import PausedQueues
from conveyor.queues import QueueSelector, parse_queues
from conveyor.runtime import Runtime
from conveyor.stores.base import ClaimParams
from conveyor.worker.acks import FLUSH_SHARE, FLUSH_STRETCH, Acknowledger, next_backoff
from conveyor.worker.executor import Executor, Kind, Outcome, ShutdownInterrupt
from conveyor.worker.gate import Gate
from conveyor.worker.heartbeat import LeaseKeeper
from conveyor.worker.interrupt import Interrupter
from conveyor.worker.joblog import JobLog
from conveyor.worker.memory import Breach, MemoryWatch
from conveyor.worker.reporting import (
    LeakTracker,
    NullReporter,
    Reporter,
    WorkerStats,
    peak_rss_bytes,
    rss_bytes,
)

log = logging.getLogger("conveyor.worker")

__all__ = ["FLUSH_SHARE", "FLUSH_STRETCH", "STAGE_EVERY", "StopWaiting", "Worker", "next_backoff"]


class StopWaiting(BaseException):
    """Raised by a stop signal to cut an idle wait short."""


STAGE_EVERY = 1.0
"""Seconds between due-job promotions while busy (idle workers stage before sleeping)."""


class Worker:
    """One consumer process (the prefork supervisor will run several)."""

    burst_horizon = 5.0
    """Burst mode waits for jobs due within this many seconds before it exits."""

    def __init__(
        self,
        app: Runtime,
        settings: WorkerSettings,
        *,
        reporter: Reporter | None = None,
        maintenance: bool = True,
    ) -> None:
        self.app = app
        self.settings = settings
        self.reporter: Reporter = reporter or NullReporter()
        self.maintenance = maintenance
        self.leaks = LeakTracker()
        self.started_mono = time.monotonic()
        self._paused = threading.Event()
        self.drained = False
        """True when a burst run ended because its queues were empty."""
        self.store = app.store
        self.worker_id = settings.worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:{os.urandom(2).hex()}"
        )
        self.queue_spec = parse_queues(settings.queues)
        self.selector = QueueSelector(self.queue_spec)
        self.paused_queues = PausedQueues(self.store, app.clock, settings.poll_interval)
        self.interrupter = Interrupter()
        self.gate = Gate(
            app, slot_ttl=settings.lease_seconds, error_limit=settings.condition_error_limit
        )
        self.executor = Executor(app, self.worker_id, self.interrupter, self.gate)
        self.memory = MemoryWatch(
            child_limit=settings.max_memory_per_child << 20,
            grace=settings.hard_timeout_grace,
            on_breach=self._on_memory_breach,
            on_stuck=self._on_memory_stuck,
        )
        self.executor.memory = self.memory
        self.keeper = LeaseKeeper(
            self.store,
            app.clock,
            lease_seconds=settings.lease_seconds,
            interval=settings.heartbeat_interval,
            on_lost=self._on_lease_lost,
            on_cancel=self._on_cancel_requested,
            on_round=self._heartbeat_round,
        )
        self.rescuer = Rescuer(
            self.store,
            retry_delay=settings.rescue_retry_delay,
            max_rescues=settings.max_rescues,
        )
        self.pruner = Pruner(
            self.store,
            Retention.of(settings),
            holder=self.worker_id,
            interval=settings.prune_interval,
        )
        self.stats = WorkerStats()
        self.acks = Acknowledger(
            app,
            self.keeper,
            self.reporter,
            self.stats,
            worker_id=self.worker_id,
            flush_interval=settings.ack_flush_interval,
        )
        self._stop = threading.Event()
        self._immediate = False
        self._running_job: str | None = None
        self._next_stage = 0.0
        self._next_due: float | None = None
        self._maintenance: threading.Thread | None = None
        self._store_backoff = 0.0
        self._runtime = 0.0
        self._published = False
        """Whether the reporter holds a non-empty claimed batch of ours."""
        self._idle = False
        self._grace_timer: threading.Timer | None = None

    def _heartbeat_round(self) -> None:
        self.gate.renew()
        self.reporter.alive(self.stats)

    # intent ------------------------------------------------------------------------------
    def request_stop(self, *, immediate: bool = False) -> None:
        """Stop after the current job; with ``immediate``, interrupt it (it is released).

        A graceful stop becomes immediate when the running job outlasts ``grace``.
        """
        if not immediate and not self._stop.is_set():
            self._grace_timer = threading.Timer(
                self.settings.grace, self.request_stop, kwargs={"immediate": True}
            )
            self._grace_timer.daemon = True
            self._grace_timer.start()
        self._stop.set()
        if immediate:
            self._immediate = True
            self.interrupter.interrupt(ShutdownInterrupt)

    def pause(self) -> None:
        """Stop claiming new jobs (the running one finishes)."""
        self._paused.set()

    def resume(self) -> None:
        """Claim again after :meth:`pause`."""
        self._paused.clear()

    @property
    def paused(self) -> bool:
        """True while paused."""
        return self._paused.is_set()

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    def _on_lease_lost(self, job_id: str) -> None:
        self.acks.lost.add(job_id)
        if self._running_job == job_id:
            log.warning("lease of running job %s lost; stopping it", job_id)
            self.interrupter.interrupt(CancelInterrupt)

    def _on_memory_breach(self, breach: Breach) -> bool:
        """Interrupt the handler; False while it cannot be (not started yet)."""
        if not self.interrupter.interrupt(MemoryLimitInterrupt):
            return False
        log.warning(
            "job %s passed its memory limit (%d MiB > %d MiB); stopping it",
            breach.job_id,
            breach.rss >> 20,
            breach.limit >> 20,
        )
        return True

    def _on_memory_stuck(self, breach: Breach) -> None:
        log.error("job %s did not stop after passing its memory limit", breach.job_id)
        self.reporter.memory_exceeded(breach.job_id, self._memory_message(breach))

    def _memory_message(self, breach: Breach) -> str:
        running = self.executor.current
        return breach.message(running.task if running is not None else "the job")

    def _on_cancel_requested(self, job_id: str) -> None:
        ctx = self.executor.current
        if ctx is not None and ctx.job_id == job_id:
            ctx.cancel_requested = True

    # loop --------------------------------------------------------------------------------
    def run(self) -> WorkerStats:
        """Process jobs until stopped (or, in burst mode, until the queues are empty)."""
        self._publish_state("started")
        # the banner names the store; asking it here would cost every child store calls
        log.debug("worker %s started (queues %s)", self.worker_id, self.settings.queues)
        self.keeper.start()
        if self.maintenance:
            self._start_maintenance()
        job_log = JobLog(self.app.events, worker_id=self.worker_id)
        try:
            while not self._stop.is_set():
                try:
                    if not self.run_once() and self.settings.burst and self._queues_drained():
                        self.drained = True
                        break
                except StopWaiting:
                    continue  # a stop signal cut an idle wait short; the loop condition sees it
                except StoreError as exc:  # a store call no step handled: never stop for it
                    self._store_trouble(exc, "running the worker loop")
        finally:
            self.acks.flush()
            job_log.detach()
            if self._grace_timer is not None:
                self._grace_timer.cancel()
            self.keeper.stop()
            self.memory.stop()
            self._stop.set()
            if self._maintenance is not None:
                self._maintenance.join(timeout=5)
            self.executor.close()
            self._publish_state("stopped")
            log.debug("worker %s stopped: %s", self.worker_id, self.stats)
        return self.stats

    def run_once(self) -> int:
        """Claim one batch and run it; wait for work when there is none. Returns jobs run."""
        if self._paused.is_set():
            self.acks.flush()
            self._stop.wait(self.settings.poll_interval)
            return 0
        now = self.app.clock.now()
        if now >= self._next_stage:
            self._stage(now)
        leases = self._claim()
        if not leases:
            if self._stage(self.app.clock.now()):
                return 0
            if not self.settings.burst:
                self._wait()
            return 0
        done = 0
        for index, lease in enumerate(leases):
            if self._stop.is_set():
                self.acks.release_unstarted(leases[index:])
                break
            if self.acks.pending and self.acks.due(lease):
                self.acks.flush()
            outcome = self._execute(lease)
            done += 1
            self.acks.acknowledge(lease, outcome, self._runtime)
        self._check_recycle()
        if self._stop.is_set():
            self.acks.flush()
        return done

    def _check_memory_recycle(self) -> None:
        """Stop before the next job when the one that ended passed a memory limit."""
        if not self._stop.is_set() and self._memory_recycle_reason():
            self._check_recycle()

    def _check_recycle(self) -> None:
        """Stop (to be replaced) past a memory limit, max tasks or max lifetime."""
        reason = self._memory_recycle_reason() or self._recycle_reason()
        if reason and not self._stop.is_set():
            log.info("worker %s recycling: %s", self.worker_id, reason)
            self.reporter.recycling(reason)
            self._stop.set()

    def _recycle_reason(self) -> str:
        """Why this process should be replaced now, by its counters ("" if not)."""
        settings = self.settings
        if settings.max_tasks_per_child and self.stats.processed >= settings.max_tasks_per_child:
            return f"max-tasks ({self.stats.processed} jobs)"
        if settings.max_memory_per_child and (
            rss_bytes() > settings.max_memory_per_child * (1 << 20)
        ):
            return f"max-memory ({rss_bytes() >> 20} MiB > {settings.max_memory_per_child} MiB)"
        if settings.max_child_lifetime and (
            time.monotonic() - self.started_mono > settings.max_child_lifetime
        ):
            return f"max-lifetime ({settings.max_child_lifetime:g}s)"
        return ""

    def _memory_recycle_reason(self) -> str:
        """Why the last job's memory means this process should be replaced ("" if not).

        After a job stopped past its limit the heap may stay large; past the per-child
        limit during a job, the job was let finish and the process goes now."""
        breach = self.memory.breach
        if breach is not None:
            return f"max-memory-per-job ({breach.rss >> 20} MiB > {breach.limit >> 20} MiB)"
        peak = self.memory.child_peak
        if peak:
            limit = self.settings.max_memory_per_child
            return f"max-memory ({peak >> 20} MiB during a job > {limit} MiB)"
        return ""

    def _memory_limit(self, task_limit: int | None) -> int | None:
        """The running job's limit in bytes: the task's, else the worker's (None: none)."""
        if task_limit is not None:
            return task_limit
        return self.settings.max_memory_per_job << 20 or None

    def _claim(self) -> list[Lease]:
        """Acknowledge finished jobs and claim the next batch in one store call."""
        acks = self.acks.take()
        params = ClaimParams(
            queues=self.paused_queues.filter(self.selector.next_order()),
            worker_id=self.worker_id,
            limit=self.settings.prefetch,
            lease_for=self.settings.lease_seconds,
        )
        try:
            if acks:
                lost, leases = self.store.complete_and_claim(acks, params)
            else:
                lost, leases = [], self.store.claim(params)
        except StoreError as exc:
            self.acks.put_back(acks)
            if acks and not isinstance(exc, StoreUnavailable):
                self.acks.flush()  # find out whether the completions or the claim failed
            self._store_trouble(exc, "claiming jobs")
            return []
        self._store_backoff = 0.0
        if leases or self._published:
            self.reporter.claimed(leases)  # the supervisor releases them if we die
            self._published = bool(leases)
        if acks:
            self.acks.acknowledged(acks, lost)
        for lease in leases:
            self.keeper.track(lease)
        return leases

    def _stage(self, now: float) -> int:
        """Promote due jobs; remember when the next one is due."""
        self._next_stage = now + STAGE_EVERY
        try:
            result = self.store.stage_due()
        except StoreError as exc:
            self._store_trouble(exc, "promoting due jobs")
            return 0
        self._next_due = result.next_due_at
        return result.promoted

    @property
    def idle(self) -> bool:
        """True while the loop sleeps waiting for work (a stop may cut the sleep short)."""
        return self._idle

    def _wait(self) -> None:
        timeout = self.settings.poll_interval
        if self._next_due is not None:
            timeout = min(timeout, max(self._next_due - self.app.clock.now(), 0.001))
        self._next_stage = 0.0 if self._next_due is not None else self._next_stage
        trouble: StoreError | None = None
        try:
            self._idle = True
            if not self._stop.is_set():
                self.store.wait_for_work(self.queue_spec.names, timeout)
        except StopWaiting:
            return  # a stop signal cut the wait short; the loop sees the stop flag
        except StoreError as exc:
            trouble = exc
        finally:
            self._idle = False
        if trouble is not None:
            self._store_trouble(trouble, "waiting for work")

    def _store_trouble(self, exc: StoreError, doing: str) -> None:
        """Back off (up to 5 s) after a store error; never crash.

        Only :class:`StoreUnavailable` is reported as an outage; any other store error
        is a refusal or a bug, logged as what it is."""
        self._store_backoff = next_backoff(self._store_backoff)
        if isinstance(exc, StoreUnavailable):
            log.warning(
                "store unavailable while %s (%s); retrying in %.2fs",
                doing,
                exc,
                self._store_backoff,
            )
        else:
            log.error(
                "store error while %s: %s: %s; retrying in %.2fs",
                doing,
                type(exc).__name__,
                exc,
                self._store_backoff,
            )
        self._stop.wait(self._store_backoff)

    def _queues_drained(self) -> bool:
        """Burst mode: nothing in our queues is pending, running or due to retry soon.

        Blocked jobs alone do not keep the worker: their dependencies are either in
        these counts already or served elsewhere. Paused queues do not keep it either.
        """
        busy = ("pending", "processing", "retrying")
        horizon = self.burst_horizon
        try:
            paused = self.paused_queues.current()
            for counts in self.store.stats():
                if counts.queue not in self.queue_spec.names or counts.queue in paused:
                    continue
                if any(counts.counts.get(state, 0) for state in busy):
                    self._wait_briefly()
                    return False
            if self._next_due is not None and self._next_due - self.app.clock.now() < horizon:
                self._wait_briefly()
                return False
        except StoreError as exc:
            self._store_trouble(exc, "checking whether the queues are drained")
            return False
        return True

    def _wait_briefly(self) -> None:
        timeout = self.settings.poll_interval
        if self._next_due is not None:
            timeout = min(timeout, max(self._next_due - self.app.clock.now(), 0.001))
        self.store.wait_for_work(self.queue_spec.names, timeout)

    # one job -----------------------------------------------------------------------------
    def _execute(self, lease: Lease) -> Outcome:
        job = lease.job
        self._running_job = job.id
        if self.app.events.wants(JobStarted):
            self.app.events.publish(
                JobStarted(job.id, job.task, job.queue, job.attempt, self.worker_id)
            )
        started = self.app.clock.monotonic()
        task = self.app.tasks.get(job.task)
        timeout = (
            job.timeout if job.timeout is not None else (task.options.timeout if task else None)
        )
        self.reporter.job_started(lease, timeout)
        peak_before = peak_rss_bytes()
        limit = self._memory_limit(task.options.max_memory_bytes if task else None)
        watched = bool(limit or self.settings.max_memory_per_child)
        try:
            if job.id in self.acks.lost:
                return Outcome(Kind.RELEASED)
            if watched:
                self.memory.arm(job.id, limit)
            return self.executor.run(lease)
        except ShutdownInterrupt:
            return Outcome(Kind.RELEASED)
        finally:
            if watched:
                self.memory.disarm()
                self._check_memory_recycle()
            self._running_job = None
            self._runtime = self.app.clock.monotonic() - started
            self.acks.ran(job.task, self._runtime)
            # not running any more, though maybe not acknowledged yet: were the process
            # to die now, the supervisor releases it instead of blaming it (G9)
            self.reporter.job_finished(job.id, "ran")
            leak = self.leaks.record(job.task, peak_before, peak_rss_bytes())
            if leak is not None:
                log.warning(
                    "task %s raised this worker's peak memory by %.1f MiB over %d runs; "
                    "it may be leaking",
                    job.task,
                    leak[0],
                    leak[1],
                    extra={"task": job.task},
                )
                self.reporter.leak(job.task, *leak)

    # maintenance -------------------------------------------------------------------------
    def _start_maintenance(self) -> None:
        self._maintenance = threading.Thread(
            target=self._maintain, name="conveyor-maintenance", daemon=True
        )
        self._maintenance.start()

    def _maintain(self) -> None:
        self._prune()
        while not self._stop.wait(0.0 if self.pruner.backlog else self.settings.rescue_interval):
            try:
                result = self.rescuer.run_once()
            except StoreError as exc:
                log.warning("rescue failed: %s", exc)
                continue
            except Exception:
                log.exception("rescue failed")
                continue
            if result.retried or result.failed:
                log.warning(
                    "rescued %d expired jobs (%d to retry, %d to the DLQ)",
                    len(result.retried) + len(result.failed),
                    len(result.retried),
                    len(result.failed),
                )
            self._prune()
        self.pruner.close()

    def _prune(self) -> None:
        """A pruning step (cheap unless due); errors are logged, the worker carries on."""
        try:
            self.pruner.step()
        except StoreError as exc:
            log.warning("prune failed: %s", exc)
        except Exception:
            log.exception("prune failed")

    def _publish_state(self, state: str) -> None:
        if self.app.events.wants(WorkerStateChanged):
            self.app.events.publish(WorkerStateChanged(self.worker_id, state))
