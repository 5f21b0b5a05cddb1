"""The benchmark run: options, the private Redis, every system, the table, JSON and docs."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
QUICK = {
    "jobs": 1000,
    "rss_jobs": 5000,
    "latency_jobs": 100,
    "payload_jobs": 30,
    "startup_runs": 1,
    "time_cap": 8.0,
}
FULL = {
    "jobs": 5000,
    "rss_jobs": 20000,
    "latency_jobs": 300,
    "payload_jobs": 200,
    "startup_runs": 3,
    "time_cap": 20.0,
}
SYSTEM_KEYS = (
    "conveyor-sqlite",
    "conveyor-memory",
    "conveyor-redis",
    "conveyor-postgresql",
    "celery",
    "dramatiq",
    "rq",
    "huey",
    "taskiq",
)


def parser() -> argparse.ArgumentParser:
    """The harness's options (``make bench`` passes ``BENCH_ARGS`` through)."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Conveyor vs Celery, Dramatiq, RQ, Huey and Taskiq: the same workloads, "
        "one table. Peers run on a private redis-server started for the run.",
    )
    p.add_argument("--quick", action="store_true", help="small job counts (about 2 minutes)")
    p.add_argument("--jobs", type=int, help="jobs per enqueue/processing run (5000; quick 1000)")
    p.add_argument(
        "--rss-jobs",
        type=int,
        help="jobs of Conveyor's one-process run, after which its RSS is read (20000)",
    )
    p.add_argument("--latency-jobs", type=int, help="jobs of the latency run (300)")
    p.add_argument("--interval-ms", type=float, default=20.0, help="latency pacing (20 ms)")
    p.add_argument("--payload-jobs", type=int, help="1 MiB jobs (200; quick 30)")
    p.add_argument("--startup-runs", type=int, help="start-up samples per system (3)")
    p.add_argument(
        "--time-cap",
        type=float,
        help="seconds a processing run may take after its first job (20; quick 8)",
    )
    p.add_argument("--batch", type=int, default=1000, help="bulk-enqueue batch size (1000)")
    p.add_argument(
        "--prefetch", type=int, default=100, help="Conveyor's --prefetch for its workers (100)"
    )
    p.add_argument("--only", help=f"comma-separated systems to run (of {', '.join(SYSTEM_KEYS)})")
    p.add_argument("--skip", help="comma-separated systems to leave out")
    p.add_argument("--postgres-dsn", help="measure Conveyor's PostgreSQL store on this server")
    p.add_argument(
        "--install-redis",
        action="store_true",
        help="apt-get install redis-server when it is not on PATH (make bench passes this)",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the JSON goes")
    p.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="the Markdown page to update")
    p.add_argument(
        "--no-docs",
        action="store_true",
        help="do not update the docs page (the default for --quick and for partial runs)",
    )
    p.add_argument(
        "--write-docs",
        action="store_true",
        help="update the docs page even for --quick or partial runs",
    )
    p.add_argument(
        "--keep-workdir", action="store_true", help="keep worker logs and databases for a look"
    )
    return p


def options_from(args: argparse.Namespace) -> Any:
    """Resolve --quick defaults and explicit counts into workload Options."""
    from bench.workloads import Options

    base = QUICK if args.quick else FULL
    values = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}
    return Options(
        jobs=values["jobs"],
        rss_jobs=values["rss_jobs"],
        latency_jobs=values["latency_jobs"],
        interval=args.interval_ms / 1000,
        payload_jobs=values["payload_jobs"],
        startup_runs=values["startup_runs"],
        time_cap=values["time_cap"],
        batch=args.batch,
        prefetch=args.prefetch,
    )


def selected(args: argparse.Namespace) -> list[str]:
    """System keys to run, in table order."""
    only = {s.strip() for s in args.only.split(",")} if args.only else set(SYSTEM_KEYS)
    skip = {s.strip() for s in args.skip.split(",")} if args.skip else set()
    unknown = (only | skip) - set(SYSTEM_KEYS)
    if unknown:
        raise SystemExit(f"unknown system(s): {', '.join(sorted(unknown))}")
    return [k for k in SYSTEM_KEYS if k in only and k not in skip]


def command_line(argv: list[str]) -> str:
    """The exact command, as make ran it when it did."""
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(ROOT)
    direct = shlex.join([str(python), "-m", "bench", *argv])
    via = os.environ.get("BENCH_VIA")
    return f"{via} (runs: {direct})" if via else direct


def source_state() -> str:
    """The commit measured, and whether src/ had uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "not a git checkout"
    dirty = git("status", "--porcelain", "--", "src")
    return f"{commit}" + (" with uncommitted changes in src/" if dirty else "")


def log(message: str) -> None:
    """A progress line on stderr."""
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"{stamp} {message}", file=sys.stderr, flush=True)


def on_term(signum: int, frame: object) -> None:
    """SIGTERM behaves like Ctrl-C, so every finally block stops what it started."""
    raise KeyboardInterrupt


def start_postgres(keys: list[str], stack: contextlib.ExitStack) -> str | None:
    """A private PostgreSQL cluster for the Conveyor PostgreSQL row (the tests' helper)."""
    if "conveyor-postgresql" not in keys:
        return None
    try:
        from tests.servers import postgres_server

        server = stack.enter_context(postgres_server())
    except Exception as exc:  # no server binaries, no psycopg: the row says why
        log(f"postgresql: not started ({exc})")
        return None
    log(f"postgresql: private cluster on 127.0.0.1:{server.port}")
    return server.dsn


def start_redis(args: argparse.Namespace) -> tuple[Any, str]:
    """The private redis-server (or None and why)."""
    from bench.redis_server import (
        RedisServer,
        RedisUnavailable,
        find_server,
        install_server,
        server_version,
    )

    try:
        binary = install_server() if args.install_redis else find_server()
        if binary is None:
            return None, "redis-server is not on PATH (make bench installs Debian's package)"
        server = RedisServer(binary)
        server.start()
    except RedisUnavailable as exc:
        return None, str(exc)
    return server, f"redis-server {server_version(binary)}, private, 127.0.0.1:{server.port}"


def conveyor_mode() -> str:
    """How 'N processes' ran Conveyor: the supervisor's -c, or separate worker processes."""
    from bench.systems.conveyor_sys import supports_concurrency

    if supports_concurrency():
        return "worker -c N (prefork supervisor)"
    return "N separate `conveyor worker` processes (this version has no -c)"


def build_systems(keys: list[str], postgres_dsn: str | None) -> list[Any]:
    """Adapters for the selected systems."""
    from bench.systems import PEERS, conveyor_systems

    systems = conveyor_systems(postgres_dsn) + [peer() for peer in PEERS]
    return [s for s in systems if s.key in keys]


def run_system(system: Any, ctx: Any, opts: Any) -> dict[str, Any]:
    """Open, run every workload, close: one entry of the results."""
    from bench.systems import Unavailable
    from bench.workloads import Runner

    entry: dict[str, Any] = {"key": system.key, "title": system.title}
    log(f"[{system.key}] starting")
    try:
        system.open(ctx)
    except Unavailable as exc:
        log(f"[{system.key}] not run: {exc}")
        return {**entry, "status": "unavailable", "reason": str(exc)}
    except Exception as exc:
        log(f"[{system.key}] could not start: {type(exc).__name__}: {exc}")
        return {**entry, "status": "unavailable", "reason": f"{type(exc).__name__}: {exc}"}
    entry["version"] = system.version
    started = time.perf_counter()
    try:
        figures = Runner(system, ctx, opts, lambda m: log(f"[{system.key}] {m}")).run_all()
    finally:
        try:
            system.close()
        except Exception as exc:
            log(f"[{system.key}] closing failed: {type(exc).__name__}: {exc}")
    entry.update(status="ok", figures=figures, seconds=time.perf_counter() - started)
    return entry


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; 0 unless the harness itself broke (timings never fail a run)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        import psutil  # noqa: F401
    except ImportError:
        print(
            "the harness needs psutil (and the peers): run `make bench`, or "
            "pip install -e '.[bench]' in this environment",
            file=sys.stderr,
        )
        return 2
    from bench import procs, report, targets
    from bench.machine import describe
    from bench.systems import Context

    keys = selected(args)
    opts = options_from(args)
    began = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    results: dict[str, Any] = {}
    redis = None
    redis_text = ""
    stack = contextlib.ExitStack()
    workloads_s = 0.0
    interrupted = False
    machine = describe()
    source = source_state()
    try:
        os.environ[procs.RUN_MARKER] = procs.RUN_ID  # the redis-server carries it too
        redis, redis_text = start_redis(args)
        log(f"redis: {redis_text}")
        ctx = Context(
            redis_url=redis.url if redis else None,
            redis_reason=redis_text,
            workdir=workdir,
            cores=int(machine["cores"]),  # type: ignore[call-overload]
            prefetch=opts.prefetch,
        )
        postgres_dsn = args.postgres_dsn or start_postgres(keys, stack)
        workloads_began = time.perf_counter()
        for system in build_systems(keys, postgres_dsn):
            results[system.key] = run_system(system, ctx, opts)
        workloads_s = time.perf_counter() - workloads_began
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stack.close()
        if redis is not None:
            redis.stop()
        killed = procs.sweep()
        if killed:
            log(f"killed leftover processes of this run: {killed}")
        signal.signal(signal.SIGTERM, previous)
        if args.keep_workdir:
            log(f"worker logs and databases kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if interrupted:
        log("interrupted: every worker and the redis-server this run started were stopped")
        return 130
    duration = time.perf_counter() - began
    now = dt.datetime.now(dt.UTC)
    meta = {
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command_line(argv),
        "machine": machine,
        "machine_line": f"{machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB, "
        f"{machine['python']}",
        "redis": redis_text,
        "source": source,
        "conveyor_worker": conveyor_mode(),
        "options": {k: v for k, v in vars(opts).items()},
        "duration_s": duration,
        "workloads_s": workloads_s,
        "quick": args.quick,
    }
    verdicts = targets.evaluate(results)
    report.print_table(results, verdicts, meta)
    report.write_json(args.json, results, verdicts, meta)
    log(f"JSON: {args.json}")
    partial = args.quick or set(keys) != set(SYSTEM_KEYS)
    if args.write_docs or not (args.no_docs or partial):
        report.update_docs(args.docs, report.markdown(results, verdicts, meta), DOCS_TEMPLATE)
        log(f"docs: {args.docs}")
    log(f"done in {duration / 60:.1f} min")
    return 0


DOCS_TEMPLATE = """# Benchmarks

`make bench` runs the same workloads on Conveyor and on Celery, Dramatiq, RQ, Huey and
Taskiq, and rewrites the section below with its table. See bench/README.md for what each
workload measures and how.
"""
