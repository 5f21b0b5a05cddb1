"""How long pruning a million completed jobs takes, and what a worker feels meanwhile.

``python -m bench.prune`` (with ``.venv`` or ``bench/.venv``) fills a fresh SQLite file
and a private PostgreSQL cluster (the tests' helper; skipped when the server binaries are
missing) with ``--jobs`` completed jobs finished two days ago, plus a few recent and
pending ones that must survive, then runs one pruning pass (``conveyor.maintenance.
pruner.prune``: ``--batch`` jobs per transaction) while a thread enqueues, claims and
completes jobs on the same store. It prints the pass's total time, rows per second and
longest transaction, and the worker's longest claim-and-complete round trip during it.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.ids import IdGenerator
from conveyor.job import NewJob
from conveyor.maintenance.pruner import PruneReport, prune
from conveyor.maintenance.retention import Retention
from conveyor.stores import open_store
from conveyor.stores.base import ClaimParams, Completion, JobQuery, PruneParams, PruneResult, Store

DAY = 86400.0
IDS = IdGenerator()
SURVIVORS = 1000
"""Recent completed jobs and pending jobs added beside the old ones; none may go."""

# One statement fills the table: ids shaped like UUIDs, finish times spread over an hour
# two days ago, each row as a completed job with a small result.
_SQLITE_FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO jobs (id, queue, task, payload, state, attempt, run_at, result,
                  created_at, started_at, finished_at)
SELECT printf('%08x-0000-7000-8000-%012x', i, i), 'default', 'bench.noop', x'00',
       'completed', 1, :t - i * 0.0036, x'01', :t - i * 0.0036, :t - i * 0.0036,
       :t - i * 0.0036
FROM n
"""
_POSTGRES_FILL = """
INSERT INTO jobs (id, queue, task, payload, state, attempt, run_at, result,
                  created_at, started_at, finished_at)
SELECT lpad(to_hex(i), 8, '0') || '-0000-7000-8000-' || lpad(to_hex(i), 12, '0'),
       'default', 'bench.noop', '\\x00'::bytea, 'completed', 1, %(t)s - i * 0.0036,
       '\\x01'::bytea, %(t)s - i * 0.0036, %(t)s - i * 0.0036, %(t)s - i * 0.0036
FROM generate_series(1, %(count)s) AS i
"""


class TimedStore:
    """The store, with the duration of every ``prune`` call (one transaction) kept."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.durations: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def prune(self, params: PruneParams) -> PruneResult:
        t0 = time.perf_counter()
        try:
            return self._store.prune(params)
        finally:
            self.durations.append(time.perf_counter() - t0)


@dataclass
class Worker:
    """A thread that claims and completes jobs on the store until stopped."""

    store: Store
    rounds: int = 0
    longest: float = 0.0
    error: BaseException | None = None

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                job = NewJob(id=IDS.new(), queue="live", task="bench.noop", payload=b"")
                self.store.enqueue([job])
                t0 = time.perf_counter()
                leases = self.store.claim(ClaimParams(queues=["live"], worker_id="bench"))
                self.store.complete([Completion(lease) for lease in leases])
                self.longest = max(self.longest, time.perf_counter() - t0)
                self.rounds += 1
        except BaseException as exc:  # reported by the caller
            self.error = exc


def fill(store: Store, dsn: str, count: int) -> float:
    """Insert ``count`` old completed jobs in one statement; return the seconds it took."""
    t0 = time.perf_counter()
    old = store.now() - 2 * DAY
    if dsn.startswith("sqlite"):
        _fill_sqlite(dsn.removeprefix("sqlite:///").split("?")[0], count, old)
    else:
        _fill_postgres(dsn, count, old)
    for i in range(SURVIVORS):
        queue = "kept" if i % 2 else "done"
        store.enqueue([NewJob(id=IDS.new(), queue=queue, task="bench.noop", payload=b"")])
    while leases := store.claim(ClaimParams(queues=["done"], worker_id="fill", limit=100)):
        store.complete([Completion(lease) for lease in leases])
    return time.perf_counter() - t0


def _fill_sqlite(path: str, count: int, finished: float) -> None:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(_SQLITE_FILL, {"count": count, "t": finished})


def _fill_postgres(dsn: str, count: int, finished: float) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute(_POSTGRES_FILL, {"count": count, "t": finished})
        conn.execute("ANALYZE jobs")


def measure(name: str, dsn: str, count: int, batch: int) -> dict[str, Any]:
    """Fill, then prune while a worker runs; the figures of one store."""
    store = open_store(dsn)
    try:
        store.migrate()
        filled = fill(store, dsn, count)
        print(f"{name}: {count:,} completed jobs inserted in {filled:.1f}s", flush=True)
        worker = Worker(store)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        timed = TimedStore(store)
        report: PruneReport = prune(timed, Retention(completed=DAY), batch=batch)
        stop.set()
        thread.join()
        if worker.error is not None:
            raise worker.error
        left = store.search(JobQuery(limit=1)).total
        survivors = SURVIVORS + worker.rounds
        if report.jobs != count or left != survivors:
            raise SystemExit(f"{name}: pruned {report.jobs}, {left} left; expected {count}")
        return {
            "store": name,
            "jobs": report.jobs,
            "seconds": report.seconds,
            "rows_per_second": report.jobs / report.seconds,
            "batches": report.batches,
            "longest_transaction": report.longest_batch,
            "median_transaction": statistics.median(timed.durations),
            "p99_transaction": statistics.quantiles(timed.durations, n=100, method="inclusive")[98],
            "worker_rounds": worker.rounds,
            "worker_longest_round": worker.longest,
        }
    finally:
        store.close()


@contextlib.contextmanager
def postgres(dsn: str | None) -> Iterator[str | None]:
    """The given DSN, or a private cluster (None when the binaries are missing)."""
    if dsn:
        yield dsn
        return
    try:
        from tests.servers import postgres_server

        with postgres_server() as server:
            yield server.dsn
    except Exception as exc:  # no initdb, no psycopg: the table says why
        print(f"postgresql: not measured ({exc})", flush=True)
        yield None


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print one line per store."""
    parser = argparse.ArgumentParser(prog="python -m bench.prune", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="old completed jobs")
    parser.add_argument("--batch", type=int, default=1000, help="jobs per transaction")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="one store only")
    parser.add_argument("--postgres-dsn", help="use this server instead of a private one")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="conveyor-prune-") as tmp:
        if args.only in (None, "sqlite"):
            dsn = f"sqlite:///{Path(tmp) / 'prune.db'}"
            rows.append(measure("sqlite", dsn, args.jobs, args.batch))
        if args.only in (None, "postgresql"):
            with postgres(args.postgres_dsn) as pg:
                if pg is not None:
                    rows.append(measure("postgresql", pg, args.jobs, args.batch))
    print(
        f"{'store':<11} {'jobs':>9} {'total':>8} {'rows/s':>9} {'batches':>7} "
        f"{'median tx':>9} {'p99 tx':>8} {'longest tx':>10} "
        f"{'worker rounds':>13} {'longest round':>13}"
    )
    for r in rows:
        print(
            f"{r['store']:<11} {r['jobs']:>9,} {r['seconds']:>7.1f}s {r['rows_per_second']:>9,.0f} "
            f"{r['batches']:>7} {r['median_transaction'] * 1000:>7.1f}ms "
            f"{r['p99_transaction'] * 1000:>6.1f}ms {r['longest_transaction'] * 1000:>8.1f}ms "
            f"{r['worker_rounds']:>13,} {r['worker_longest_round'] * 1000:>11.1f}ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
