"""The workloads, identical for every system (no-op task, one worker process, concurrency 1
unless stated). See bench/README.md for what each one measures and how."""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bench import procs, recorder
from bench.payload import make_payload
from bench.systems.base import Args, Context, InProcessSystem, ProcessSystem, System, Unavailable

Figure = dict[str, Any]
Commands = Callable[[], tuple[list[list[str]], str]]
"""Builds a launch's worker commands and its label."""
STARTUP_TIMEOUT = 60.0
"""Longest wait for a worker's first job; past it the run is reported as failed."""


@dataclass(frozen=True)
class Options:
    """Job counts and limits of one run."""

    jobs: int = 5000
    rss_jobs: int = 20000
    latency_jobs: int = 300
    interval: float = 0.02
    payload_jobs: int = 200
    startup_runs: int = 3
    time_cap: float = 20.0
    batch: int = 1000
    prefetch: int = 100


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    index = max(math.ceil(pct / 100 * len(ordered)) - 1, 0)
    return ordered[index]


def noop_args(n: int) -> list[Args]:
    """Arguments of ``n`` no-op jobs."""
    return [()] * n


def chunks(items: Sequence[Args], size: int) -> list[Sequence[Args]]:
    """``items`` in slices of ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def throughput(rows: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(jobs/s, seconds) from the first job's start to the last job's end."""
    if not rows:
        return 0.0, 0.0
    first = min(row[0] for row in rows)
    last = max(row[1] for row in rows)
    seconds = last - first
    return (len(rows) / seconds if seconds > 0 else 0.0), seconds


def guarded(name: str, log: Callable[[str], None], fn: Callable[[], Figure]) -> Figure:
    """Run one workload; an exception becomes ``{"error": …}`` (no fake figures)."""
    try:
        figure = fn()
    except Unavailable as exc:
        log(f"{name}: n/a ({exc})")
        return {"na": str(exc)}
    except Exception as exc:
        log(f"{name}: FAILED {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}
    log(f"{name}: {summary(figure)}")
    return figure


def summary(figure: Figure) -> str:
    """One progress line for a figure."""
    if "rate" in figure:
        extra = " (capped)" if figure.get("capped") else ""
        return f"{figure['rate']:,.0f} jobs/s{extra}"
    if "p99_ms" in figure:
        return f"p50 {figure['p50_ms']:.2f} ms, p99 {figure['p99_ms']:.2f} ms"
    if "median_s" in figure:
        return f"{figure['median_s'] * 1000:.0f} ms"
    return ", ".join(f"{k}={v}" for k, v in figure.items() if not isinstance(v, list | dict))


class Runner:
    """Runs every workload on one system and returns its figures."""

    def __init__(
        self, system: System, ctx: Context, opts: Options, log: Callable[[str], None]
    ) -> None:
        self.system = system
        self.ctx = ctx
        self.opts = opts
        self.log = log
        self._payload: str | None = None

    @property
    def payload(self) -> str:
        """The 1 MiB argument (built once)."""
        if self._payload is None:
            self._payload = make_payload()
        return self._payload

    # shared ----------------------------------------------------------------------------------
    def enqueue_rate(self, task: str, args: Sequence[Args], bulk: bool) -> Figure:
        """Jobs/s of one call per job, or of the bulk API in batches of ``batch``."""
        system = self.system
        system.reset()
        started = time.perf_counter()
        if bulk:
            for part in chunks(args, self.opts.batch):
                system.enqueue_bulk(task, part)
        else:
            system.enqueue_each(task, args)
        seconds = time.perf_counter() - started
        system.reset()
        figure: Figure = {"rate": len(args) / seconds, "jobs": len(args), "seconds": seconds}
        if bulk:
            figure["api"] = system.bulk_api
            figure["batch"] = self.opts.batch
        return figure

    def preload(self, task: str, args: Sequence[Args]) -> float:
        """Enqueue jobs before a worker starts (bulk when the library has it); jobs/s."""
        started = time.perf_counter()
        if self.system.bulk_api is not None:
            for part in chunks(args, self.opts.batch):
                self.system.enqueue_bulk(task, part)
        else:
            self.system.enqueue_each(task, args)
        return len(args) / (time.perf_counter() - started)

    def run_all(self) -> dict[str, Figure]:
        """Every workload, in a fixed order."""
        n = self.opts.jobs
        figures: dict[str, Figure] = {}
        figures["enqueue_single"] = guarded(
            "enqueue, one call per job",
            self.log,
            lambda: self.enqueue_rate("noop", noop_args(n), bulk=False),
        )
        figures["enqueue_bulk"] = guarded(
            "enqueue, bulk",
            self.log,
            lambda: self.enqueue_rate("noop", noop_args(n), bulk=True),
        )
        if isinstance(self.system, InProcessSystem):
            figures.update(InProcess(self).run())
        else:
            figures.update(Processes(self).run())
        return figures


class Processes:
    """Workloads with real worker processes started by the system's own CLI."""

    def __init__(self, runner: Runner) -> None:
        self.r = runner
        assert isinstance(runner.system, ProcessSystem)
        self.system: ProcessSystem = runner.system

    def launch(self, commands: Commands, task: str, record: str) -> procs.Workers:
        """Start the workers ``commands()`` names (built after the reset: SQLite's file)."""
        cmds, label = commands()
        env = procs.worker_env(self.system.worker_env(task), record)
        log = self.r.ctx.path(f"{self.system.key}-worker", ".log")
        return procs.spawn(cmds, env, log, f"{self.system.key} {label}")

    def process(
        self,
        commands: Commands,
        task: str,
        args: Sequence[Args],
        check: Callable[[float], bool] | None = None,
    ) -> Figure:
        """Pre-enqueue ``args``, start the workers, time first start → last end."""
        system, opts = self.system, self.r.opts
        system.reset()
        enqueue_rate = self.r.preload(task, args)
        record = str(self.r.ctx.path(f"{system.key}-rec", ".txt"))
        n = len(args)
        workers = self.launch(commands, task, record)
        setting = workers.label.split(" ", 1)[1]
        try:
            procs.wait_for(record, 1, workers, time.monotonic() + STARTUP_TIMEOUT)
            if recorder.count(record) < 1:
                raise procs.WorkerFailed(
                    f"no job started within {STARTUP_TIMEOUT:.0f}s: {workers.log_tail()}"
                )
            done = procs.wait_for(record, n, workers, time.monotonic() + opts.time_cap)
            rss = workers.rss()
        finally:
            workers.stop()
        rows = recorder.read(record)
        rate, seconds = throughput(rows)
        if check is not None and not all(check(row[2]) for row in rows):
            raise RuntimeError("a job saw different arguments than were enqueued")
        job_proc = system.job_process(rss)
        return {
            "rate": rate,
            "jobs": n,
            "done": len(rows),
            "seconds": seconds,
            "capped": done < n,
            "setting": setting,
            "startup_s": min(row[0] for row in rows) - workers.spawned_at,
            "enqueue_rate": enqueue_rate,
            "rss": rss,
            "job_process_rss_bytes": job_proc["rss_bytes"] if job_proc else None,
            "tree_rss_bytes": sum(int(str(row["rss_bytes"])) for row in rss),
        }

    def latency(self) -> Figure:
        """One job every ``interval`` to an idle worker; start - enqueue time per job."""
        system, opts = self.system, self.r.opts
        system.reset()
        system.enqueue_each("noop", [()])  # the warm-up job: proves the worker is ready
        record = str(self.r.ctx.path(f"{system.key}-lat", ".txt"))
        workers = self.launch(system.single, "stamp", record)
        try:
            procs.wait_for(record, 1, workers, time.monotonic() + STARTUP_TIMEOUT)
            if recorder.count(record) < 1:
                raise procs.WorkerFailed(f"worker not ready: {workers.log_tail()}")
            time.sleep(0.3)  # idle: the worker is waiting for work
            paced_enqueue(system.enqueue_each, opts.latency_jobs, opts.interval)
            total = opts.latency_jobs + 1
            done = procs.wait_for(record, total, workers, time.monotonic() + opts.time_cap)
        finally:
            workers.stop()
        samples = [(row[0] - row[2]) * 1000 for row in recorder.read(record) if row[2] > 0]
        if not samples:
            raise procs.WorkerFailed("no latency job ran")
        return latency_figure(samples, opts, capped=done < total)

    def startup(self) -> Figure:
        """Spawn → first job started, for a job enqueued before the spawn (median of runs)."""
        samples = []
        for _ in range(self.r.opts.startup_runs):
            self.system.reset()
            self.system.enqueue_each("noop", [()])
            record = str(self.r.ctx.path(f"{self.system.key}-start", ".txt"))
            workers = self.launch(self.system.single, "noop", record)
            try:
                procs.wait_for(record, 1, workers, time.monotonic() + STARTUP_TIMEOUT)
            finally:
                workers.stop()
            rows = recorder.read(record)
            if not rows:
                raise procs.WorkerFailed(f"no job started within {STARTUP_TIMEOUT:.0f}s")
            samples.append(rows[0][0] - workers.spawned_at)
        return {"median_s": statistics.median(samples), "samples_s": samples}

    def run(self) -> dict[str, Figure]:
        r, system, opts = self.r, self.system, self.r.opts
        figures: dict[str, Figure] = {}
        single_jobs = (
            max(opts.jobs, opts.rss_jobs) if system.key.startswith("conveyor") else opts.jobs
        )
        figures["processing_1"] = guarded(
            "processing, 1 process, concurrency 1",
            r.log,
            lambda: self.process(system.single, "noop", noop_args(single_jobs)),
        )
        for name, commands in system.variants():
            figures[f"processing_1_{name}"] = guarded(
                f"processing, 1 process ({name})",
                r.log,
                lambda commands=commands: self.process(commands, "noop", noop_args(single_jobs)),
            )
        figures["processing_best"] = guarded(
            "processing, best setting",
            r.log,
            lambda: self.process(lambda: system.best(r.ctx.cores), "noop", noop_args(opts.jobs)),
        )
        figures["latency"] = guarded("enqueue→start latency", r.log, self.latency)
        figures["rss"] = rss_figure(figures["processing_1"])
        figures["startup"] = guarded("start-up", r.log, self.startup)
        size = len(r.payload)
        figures["payload"] = guarded(
            "1 MiB payloads",
            r.log,
            lambda: self.process(
                system.single,
                "payload",
                [(r.payload,)] * opts.payload_jobs,
                check=lambda value: value == size,
            ),
        )
        return figures


def paced_enqueue(enqueue: Callable[[str, Sequence[Args]], None], n: int, interval: float) -> None:
    """Enqueue ``n`` stamp jobs, one every ``interval`` seconds on a fixed schedule."""
    next_at = time.perf_counter()
    for _ in range(n):
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        enqueue("stamp", [(time.time(),)])
        next_at += interval


def latency_figure(samples: list[float], opts: Options, *, capped: bool) -> Figure:
    """p50/p95/p99 of latency samples in milliseconds."""
    return {
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "p99_ms": percentile(samples, 99),
        "max_ms": max(samples),
        "jobs": opts.latency_jobs,
        "done": len(samples),
        "interval_s": opts.interval,
        "capped": capped,
        "samples_ms": [round(s, 3) for s in samples],
    }


def rss_figure(processing: Figure) -> Figure:
    """Worker RSS read at the end of the one-process run."""
    if "rate" not in processing:
        return {"error": "the one-process run failed"} if "error" in processing else processing
    if processing["job_process_rss_bytes"] is None:
        return {"error": "the worker had exited before its RSS was read"}
    return {
        "bytes": processing["job_process_rss_bytes"],
        "after_jobs": processing["done"],
        "tree_bytes": processing["tree_rss_bytes"],
    }


class InProcess:
    """Conveyor's MemoryStore: ``Worker.run`` in this process (burst mode for throughput)."""

    def __init__(self, runner: Runner) -> None:
        self.r = runner
        self.system = runner.system

    def worker(self, task: str, **settings: Any) -> Any:
        """A Worker on the App whose codec opens ``task``'s jobs."""
        app = self.system.app_for(task)  # type: ignore[attr-defined]
        return app.worker(queues="default", prefetch=self.r.ctx.prefetch, **settings)

    def process(
        self, task: str, args: Sequence[Args], check: Callable[[float], bool] | None = None
    ) -> Figure:
        """Pre-enqueue ``args``, run a burst worker to the end, time first start → last end."""
        self.system.reset()
        enqueue_rate = self.r.preload(task, args)
        record = str(self.r.ctx.path(f"{self.system.key}-rec", ".txt"))
        with record_to(record):
            self.worker(task, burst=True).run()
        rows = recorder.read(record)
        if len(rows) != len(args):
            raise RuntimeError(f"{len(rows)} of {len(args)} jobs ran")
        if check is not None and not all(check(row[2]) for row in rows):
            raise RuntimeError("a job saw different arguments than were enqueued")
        rate, seconds = throughput(rows)
        return {
            "rate": rate,
            "jobs": len(args),
            "done": len(rows),
            "seconds": seconds,
            "capped": False,
            "setting": f"Worker.run(burst=True, prefetch={self.r.ctx.prefetch}) in-process",
            "enqueue_rate": enqueue_rate,
        }

    def latency(self) -> Figure:
        opts = self.r.opts
        self.system.reset()
        record = str(self.r.ctx.path(f"{self.system.key}-lat", ".txt"))
        worker = self.worker("stamp")
        with record_to(record):
            thread = threading.Thread(target=worker.run, name="bench-worker", daemon=True)
            thread.start()
            try:
                self.system.enqueue_each("noop", [()])
                deadline = time.monotonic() + STARTUP_TIMEOUT
                while recorder.count(record) < 1 and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(0.3)
                paced_enqueue(self.system.enqueue_each, opts.latency_jobs, opts.interval)
                deadline = time.monotonic() + opts.time_cap
                total = opts.latency_jobs + 1
                while recorder.count(record) < total and time.monotonic() < deadline:
                    time.sleep(0.005)
            finally:
                worker.request_stop()
                thread.join(timeout=30)
        samples = [(row[0] - row[2]) * 1000 for row in recorder.read(record) if row[2] > 0]
        if not samples:
            raise RuntimeError("no latency job ran")
        return latency_figure(samples, opts, capped=len(samples) < opts.latency_jobs)

    def run(self) -> dict[str, Figure]:
        r, opts = self.r, self.r.opts
        na = "in-process store: no worker process"
        size = len(r.payload)
        return {
            "processing_1": guarded(
                "processing, Worker.run in-process",
                r.log,
                lambda: self.process("noop", noop_args(opts.jobs)),
            ),
            "processing_best": {"na": na},
            "latency": guarded("enqueue→start latency (worker thread)", r.log, self.latency),
            "rss": {"na": na},
            "startup": {"na": na},
            "payload": guarded(
                "1 MiB payloads",
                r.log,
                lambda: self.process(
                    "payload", [(r.payload,)] * opts.payload_jobs, check=lambda v: v == size
                ),
            ),
        }


@contextlib.contextmanager
def record_to(path: str) -> Iterator[None]:
    """Point the in-process recorder at ``path`` for the duration of a block."""
    saved = os.environ.get("BENCH_RECORD")
    os.environ["BENCH_RECORD"] = path
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("BENCH_RECORD", None)
        else:
            os.environ["BENCH_RECORD"] = saved
