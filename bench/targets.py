"""The issue's performance targets, checked against the same run's figures.

Benchmarks report figures; nothing here fails a run. Each target becomes a verdict:
✓ or ✗ with the ratio of the measured value to the target (for "at least" targets a
ratio below 1 misses; for "at most" targets a ratio above 1 misses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Results = dict[str, dict[str, Any]]
PEERS = ("celery", "dramatiq", "rq", "huey", "taskiq")
STORES = ("sqlite", "redis", "postgresql")


@dataclass
class Check:
    """One comparison: ``value`` against ``target`` (``at_least`` or at most)."""

    what: str
    value: float
    target: float
    at_least: bool
    unit: str

    @property
    def met(self) -> bool:
        """Whether the figure meets its target."""
        return self.value >= self.target if self.at_least else self.value <= self.target

    @property
    def ratio(self) -> float:
        """Measured / target."""
        return self.value / self.target if self.target else float("inf")

    def text(self) -> str:
        """``✓ 1.30x (sqlite)`` style."""
        mark = "✓" if self.met else "✗"
        return f"{mark} {self.ratio:.2f}x {self.what}".rstrip()

    def miss(self) -> str:
        """A plain sentence for a missed target."""
        if self.at_least:
            short = (1 - self.ratio) * 100
            return (
                f"{self.what}: {fmt(self.value)} {self.unit} against ≥ {fmt(self.target)} "
                f"{self.unit}: reaches {self.ratio:.2f}x of the target ({short:.0f} % short)"
            )
        over = (self.ratio - 1) * 100
        return (
            f"{self.what}: {fmt(self.value)} {self.unit} against ≤ {fmt(self.target)} "
            f"{self.unit}: {self.ratio:.2f}x the limit ({over:.0f} % over)"
        )


@dataclass
class Verdict:
    """A target row: its text, and the checks that could be made in this run."""

    figure: str
    target: str
    checks: list[Check] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Parts of the target that could not be checked, and why."""

    @property
    def met(self) -> bool | None:
        """All checks met (None when nothing could be checked)."""
        return all(c.met for c in self.checks) if self.checks else None

    def text(self) -> str:
        """Every check's mark and ratio, then what could not be checked."""
        parts = [c.text() for c in self.checks] + [f"- {m}" for m in self.missing]
        return "; ".join(parts) if parts else "-"


def fmt(value: float) -> str:
    """Thousands separators for big numbers, 3 significant digits for small ones."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def value(results: Results, key: str, figure: str, field_name: str = "rate") -> float | None:
    """One measured number, or None when the system or figure has none."""
    system = results.get(key)
    if not system or system.get("status") != "ok":
        return None
    found = system["figures"].get(figure, {}).get(field_name)
    return float(found) if isinstance(found, int | float) else None


def stores_run(results: Results) -> list[str]:
    """Conveyor's stores with figures in this run."""
    return [s for s in STORES if results.get(f"conveyor-{s}", {}).get("status") == "ok"]


def absent(results: Results, store: str) -> str:
    """Why a store has no figures."""
    entry = results.get(f"conveyor-{store}", {})
    return str(entry.get("reason", "not run"))


def per_store(
    results: Results,
    figure: str,
    field_name: str,
    limits: dict[str, float],
    *,
    at_least: bool,
    unit: str,
    report_absent: bool = True,
) -> tuple[list[Check], list[str]]:
    """One check per measured store; one 'not measured' note naming the other stores."""
    checks, missing, unmeasured = [], [], []
    ran = stores_run(results)
    for store, limit in limits.items():
        if store not in ran:
            unmeasured.append(store)
            continue
        got = value(results, f"conveyor-{store}", figure, field_name)
        if got is None:
            missing.append(f"{store}: no figure")
            continue
        checks.append(Check(store, got, limit, at_least, unit))
    if unmeasured and report_absent:
        missing.append(f"not measured: {', '.join(unmeasured)}")
    return checks, missing


def fastest_peer(results: Results, figure: str, field_name: str = "rate") -> tuple[str, float]:
    """The best peer figure of this run ('' when no peer ran)."""
    best = ("", 0.0)
    for peer in PEERS:
        got = value(results, peer, figure, field_name)
        if got is not None and got > best[1]:
            best = (peer, got)
    return best


def processing(results: Results) -> Verdict:
    limits = {"sqlite": 10_000.0, "redis": 10_000.0, "postgresql": 5_000.0}
    checks, missing = per_store(
        results, "processing_1", "rate", limits, at_least=True, unit="jobs/s"
    )
    peer, best = fastest_peer(results, "processing_1")
    sqlite = value(results, "conveyor-sqlite", "processing_1")
    if peer and sqlite is not None:
        checks.append(Check(f"sqlite vs 10x {peer}", sqlite, 10 * best, True, "jobs/s"))
    elif sqlite is not None:
        missing.append("no peer ran: 10x the fastest peer not checked")
    return Verdict(
        "processing_1",
        "SQLite, Redis ≥ 10,000/s; PostgreSQL ≥ 5,000/s; SQLite ≥ 10x the fastest peer",
        checks,
        missing,
    )


def scaling(results: Results) -> Verdict:
    checks, missing = [], []
    for store in STORES:
        one = value(results, f"conveyor-{store}", "processing_1")
        many = value(results, f"conveyor-{store}", "processing_best")
        if one and many is not None:
            checks.append(Check(f"{store} vs 1.7x one process", many, 1.7 * one, True, "jobs/s"))
        elif store == "sqlite":
            missing.append(f"sqlite: {absent(results, store)}")
    return Verdict("processing_best", "`-c 2` on 2 cores ≥ 1.7x one process", checks, missing)


def enqueue_single(results: Results) -> Verdict:
    limits = {"sqlite": 5_000.0, "redis": 5_000.0}
    checks, missing = per_store(
        results, "enqueue_single", "rate", limits, at_least=True, unit="jobs/s"
    )
    if "postgresql" in stores_run(results):
        missing.append("postgresql: ≥ 80 % of one commit per job needs a raw-commit baseline")
    return Verdict(
        "enqueue_single",
        "SQLite, Redis ≥ 5,000/s; PostgreSQL ≥ 80 % of one commit per job",
        checks,
        missing,
    )


def enqueue_bulk(results: Results) -> Verdict:
    limits = {"sqlite": 50_000.0, "redis": 50_000.0, "postgresql": 15_000.0}
    checks, missing = per_store(
        results, "enqueue_bulk", "rate", limits, at_least=True, unit="jobs/s"
    )
    return Verdict(
        "enqueue_bulk", "SQLite, Redis ≥ 50,000/s; PostgreSQL ≥ 15,000/s", checks, missing
    )


def latency(results: Results) -> Verdict:
    limits = {"sqlite": 2.0, "redis": 2.0, "postgresql": 2.0}
    checks, missing = per_store(results, "latency", "p99_ms", limits, at_least=False, unit="ms")
    huey = value(results, "huey", "latency", "p99_ms")
    for store in stores_run(results):
        got = value(results, f"conveyor-{store}", "latency", "p99_ms")
        if got is None:
            continue
        if huey is None:
            missing.append("Huey did not run: 'below Huey' not checked")
            break
        checks.append(Check(f"{store} vs Huey's p99", got, huey, False, "ms"))
    return Verdict("latency_p99", "p99 ≤ 2 ms (every store) and below Huey's", checks, missing)


def rss(results: Results) -> Verdict:
    checks, missing = [], []
    for store in stores_run(results):
        figure = results[f"conveyor-{store}"]["figures"].get("rss", {})
        if "bytes" not in figure:
            missing.append(f"{store}: no RSS reading")
            continue
        after = figure.get("after_jobs", 0)
        label = store if after >= 20_000 else f"{store} (after {after:,} jobs)"
        checks.append(Check(label, figure["bytes"] / 1e6, 30.0, False, "MB"))
    return Verdict("rss", "one child, after 20k jobs ≤ 30 MB", checks, missing)


def startup(results: Results) -> Verdict:
    checks, missing = per_store(
        results,
        "startup",
        "median_s",
        {"sqlite": 0.250, "redis": 0.250, "postgresql": 0.250},
        at_least=False,
        unit="s",
        report_absent=False,
    )
    return Verdict("startup", "≤ 250 ms", checks, missing)


def payload(results: Results) -> Verdict:
    limits = {"sqlite": 300.0, "redis": 300.0, "postgresql": 300.0}
    checks, missing = per_store(
        results, "payload", "rate", limits, at_least=True, unit="jobs/s", report_absent=False
    )
    return Verdict("payload", "compressed + encrypted ≥ 300 jobs/s", checks, missing)


EVALUATORS: tuple[Callable[[Results], Verdict], ...] = (
    enqueue_single,
    enqueue_bulk,
    processing,
    scaling,
    latency,
    rss,
    startup,
    payload,
)


def evaluate(results: Results) -> dict[str, Verdict]:
    """Every target's verdict, keyed by the figure it applies to."""
    verdicts = [fn(results) for fn in EVALUATORS]
    return {v.figure: v for v in verdicts}
