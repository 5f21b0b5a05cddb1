"""One table (Rich in the terminal, Markdown in docs/benchmarks.md) and the JSON file."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.targets import Results, Verdict, fmt

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure and how to show it."""

    label: str
    figure: str
    field: str
    render: Callable[[float], str]
    target: str
    """Key of the target verdict shown on this row ('' for none)."""


def rate(value: float) -> str:
    return f"{value:,.0f}"


def ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


ROWS = (
    Row("enqueue, one call per job (jobs/s)", "enqueue_single", "rate", rate, "enqueue_single"),
    Row("enqueue, bulk API (jobs/s)", "enqueue_bulk", "rate", rate, "enqueue_bulk"),
    Row("processing, 1 process, c=1 (jobs/s)", "processing_1", "rate", rate, "processing_1"),
    Row("processing, best setting (jobs/s)", "processing_best", "rate", rate, "processing_best"),
    Row("enqueue→start p50 (ms)", "latency", "p50_ms", ms, ""),
    Row("enqueue→start p95 (ms)", "latency", "p95_ms", ms, ""),
    Row("enqueue→start p99 (ms)", "latency", "p99_ms", ms, "latency_p99"),
    Row("worker RSS (MB)", "rss", "bytes", lambda b: f"{b / 1e6:.1f}", "rss"),
    Row(
        "start-up to first job (ms)", "startup", "median_s", lambda s: f"{s * 1000:,.0f}", "startup"
    ),
    Row("1 MiB payloads (jobs/s)", "payload", "rate", rate, "payload"),
)


class Notes:
    """Numbered footnotes, deduplicated."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def ref(self, text: str) -> int:
        if text not in self.items:
            self.items.append(text)
        return self.items.index(text) + 1


def cell(system: dict[str, Any], row: Row, notes: Notes) -> str:
    """The text of one cell: a number, or n/a / error with a footnote."""
    if system["status"] != "ok":
        if row.figure == "enqueue_single":
            return f"not run [{notes.ref(system['title'] + ': ' + system['reason'])}]"
        return "-"
    figure = system["figures"].get(row.figure, {})
    if "na" in figure:
        return f"n/a [{notes.ref(system['title'] + ': ' + figure['na'])}]"
    if "error" in figure:
        return f"error [{notes.ref(system['title'] + ' ' + row.figure + ': ' + figure['error'])}]"
    got = figure.get(row.field)
    if not isinstance(got, int | float):
        return "-"
    text = row.render(got)
    if figure.get("capped"):
        done, jobs = figure.get("done"), figure.get("jobs")
        why = (
            f"{system['title']} {row.figure}: stopped at the time cap after {done:,} of "
            f"{jobs:,} jobs; the rate is over the jobs done"
        )
        text += f" [{notes.ref(why)}]"
    elif row.figure == "rss" and figure.get("after_jobs"):
        text += "" if figure["after_jobs"] < 20_000 else " (20k)"
    return text


def shown(results: Results) -> list[dict[str, Any]]:
    """Columns: every peer and every Conveyor store that ran (absent stores become notes)."""
    return [
        r for r in results.values() if r["status"] == "ok" or not r["key"].startswith("conveyor")
    ]


def grid(
    results: Results, verdicts: dict[str, Verdict]
) -> tuple[list[str], list[list[str]], Notes]:
    """Header and rows of the one table, with its footnotes."""
    notes = Notes()
    columns = shown(results)
    header = ["figure", *[c["key"] for c in columns], "target (Conveyor)", "met?"]
    body = []
    for row in ROWS:
        verdict = verdicts.get(row.target)
        body.append(
            [
                row.label,
                *[cell(c, row, notes) for c in columns],
                verdict.target if verdict else "",
                verdict.text() if verdict else "",
            ]
        )
    return header, body, notes


def settings_lines(results: Results) -> list[str]:
    """How each system was run (worker commands, bulk API)."""
    lines = []
    for r in results.values():
        if r["status"] != "ok":
            if r["key"].startswith("conveyor"):
                lines.append(f"{r['title']}: not measured: {r['reason']}")
            continue
        f = r["figures"]
        parts = [f"{r['title']} {r['version']}"]
        single = f.get("processing_1", {}).get("setting")
        best = f.get("processing_best", {}).get("setting")
        if single:
            parts.append(f"1 process: `{single}`")
        if best:
            parts.append(f"best: `{best}`")
        bulk = f.get("enqueue_bulk", {}).get("api")
        if bulk:
            parts.append(f"bulk: `{bulk}`")
        lines.append("; ".join(parts))
        for name, figure in f.items():
            if name.startswith("processing_1_") and "rate" in figure:
                lines.append(variant_line(r["title"], figure))
    return lines


def variant_line(title: str, figure: dict[str, Any]) -> str:
    """A one-process run with another setting (Conveyor without its supervisor)."""
    rss = figure.get("job_process_rss_bytes")
    rss_text = f", RSS {rss / 1e6:.1f} MB" if rss else ""
    return (
        f"{title} with `{figure['setting']}`: {figure['rate']:,.0f} jobs/s over "
        f"{figure['done']:,} jobs{rss_text}, first job {figure['startup_s'] * 1000:,.0f} ms "
        "after the spawn"
    )


def misses(verdicts: dict[str, Verdict]) -> list[str]:
    """Plain sentences for every missed target, named by the table row."""
    labels = {row.target: row.label for row in ROWS if row.target}
    return [
        f"{labels.get(key, key)}, {c.miss()}"
        for key, v in verdicts.items()
        for c in v.checks
        if not c.met
    ]


def backlog_notes(results: Results) -> list[str]:
    """Latency runs where the worker is slower than the pacing: the backlog grows."""
    lines = []
    for r in results.values():
        if r["status"] != "ok":
            continue
        rate = r["figures"].get("processing_1", {}).get("rate")
        interval = r["figures"].get("latency", {}).get("interval_s")
        if rate and interval and rate < 1 / interval:
            lines.append(
                f"{r['title']} runs {rate:,.0f} jobs/s with one process, fewer than one job per "
                f"{interval * 1000:.0f} ms: its latency figures include a growing backlog"
            )
    return lines


def print_table(results: Results, verdicts: dict[str, Verdict], meta: dict[str, Any]) -> None:
    """The one table, in the terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 200))
    header, body, notes = grid(results, verdicts)
    table = Table(title=f"Conveyor benchmarks, {meta['date']} ({meta['machine_line']})")
    for index, name in enumerate(header):
        table.add_column(
            name,
            justify="left" if index in (0, len(header) - 2, len(header) - 1) else "right",
            overflow="fold",
        )
    for line in body:
        table.add_row(*line)
    console.print(table)
    for number, text in enumerate(notes.items, 1):
        console.print(f"[{number}] {text}", highlight=False, markup=False)
    for line in backlog_notes(results) + settings_lines(results):
        console.print(f"- {line}", highlight=False, markup=False)
    missed = misses(verdicts)
    if missed:
        console.print("Targets missed:", style="bold")
        for line in missed:
            console.print(f"  ✗ {line}", highlight=False, markup=False)


def markdown(results: Results, verdicts: dict[str, Verdict], meta: dict[str, Any]) -> str:
    """The generated section of docs/benchmarks.md."""
    header, body, notes = grid(results, verdicts)
    m = meta["machine"]
    out = [
        BEGIN,
        f"## Latest run: {meta['date']}",
        "",
        f"- Command: `{meta['command']}` ({meta['duration_s'] / 60:.1f} min in all, "
        f"of which the workloads {meta['workloads_s'] / 60:.1f} min)",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, "
        f"{m['python']}, {m['os']}",
        f"- Conveyor: {meta['source']}; N processes ran as {meta['conveyor_worker']}",
        f"- Redis: {meta['redis']}",
        f"- Options: {', '.join(f'{k}={v}' for k, v in meta['options'].items())}",
        "",
        "| " + " | ".join(header) + " |",
        "|"
        + "|".join(
            "---" if i in (0, len(header) - 2, len(header) - 1) else "---:"
            for i in range(len(header))
        )
        + "|",
    ]
    for line in body:
        out.append("| " + " | ".join(text.replace("|", "\\|") for text in line) + " |")
    out.append("")
    for number, text in enumerate(notes.items, 1):
        out.append(f"{number}. {text}")
    backlog = backlog_notes(results)
    out += ([""] + [f"- {line}" for line in backlog]) if backlog else []
    out += ["", "How each system ran:", ""]
    out += [f"- {line}" for line in settings_lines(results)]
    missed = misses(verdicts)
    out += ["", "### Targets missed in this run", ""]
    out += [f"- ✗ {line}" for line in missed] if missed else ["None."]
    out += ["", END]
    return "\n".join(out)


def update_docs(path: Path, section: str, template: str) -> None:
    """Replace the generated section of ``path`` (or write ``template`` around it)."""
    text = path.read_text(encoding="utf-8") if path.exists() else template
    if BEGIN in text and END in text:
        before = text[: text.index(BEGIN)]
        after = text[text.index(END) + len(END) :]
        text = before + section + after
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def write_json(
    path: Path, results: Results, verdicts: dict[str, Verdict], meta: dict[str, Any]
) -> None:
    """Every raw figure, the verdicts and the run's metadata."""
    data = {
        "meta": meta,
        "systems": results,
        "targets": {
            key: {
                "target": v.target,
                "met": v.met,
                "checks": [
                    {
                        "what": c.what,
                        "value": c.value,
                        "target": c.target,
                        "at_least": c.at_least,
                        "unit": c.unit,
                        "ratio": c.ratio,
                        "met": c.met,
                    }
                    for c in v.checks
                ],
                "not_checked": v.missing,
            }
            for key, v in verdicts.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")


__all__ = ["fmt", "markdown", "print_table", "update_docs", "write_json"]
