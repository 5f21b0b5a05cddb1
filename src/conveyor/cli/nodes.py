"""``conveyor nodes`` and ``conveyor workers``: the worker nodes registered in the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from conveyor import admin
from conveyor.cli import render
from conveyor.cli.options import DURATION

if TYPE_CHECKING:
    from conveyor.cli import CliState

F = TypeVar("F", bound=Callable[..., Any])

NODE_STATE_STYLES = {"running": "green", "paused": "yellow", "stopping": "magenta"}
WORKER_STATE_STYLES = {"starting": "cyan", "idle": "bright_black", "busy": "yellow"}


def stale_option(fn: F) -> F:
    """The ``--stale-after`` option: heartbeat age past which a row is marked stale."""
    option = click.option(
        "--stale-after",
        type=DURATION,
        default=admin.STALE_AFTER,
        show_default="30s",
        help="Mark nodes and workers stale when their last heartbeat is older than this.",
    )
    return option(fn)


@click.command()
@stale_option
@render.output_option
@click.pass_obj
def nodes(state: CliState, stale_after: float, output: str) -> None:
    """One row per worker node: host, queues, state, last heartbeat and busy workers."""
    app = state.app()
    store = app.store
    rows = admin.node_rows(store, store.now(), stale_after)
    if output == "json":
        state.emit_json({"nodes": [row.to_dict() for row in rows]})
        return
    nodes_table(rows, warn_above=app.settings.clock_offset_warning)


@click.command()
@stale_option
@render.output_option
@click.pass_obj
def workers(state: CliState, stale_after: float, output: str) -> None:
    """One row per worker process of every node: state, current job, counts and memory."""
    store = state.app().store
    rows = admin.worker_rows(store, store.now(), stale_after)
    if output == "json":
        state.emit_json({"workers": [row.to_dict() for row in rows]})
        return
    workers_table(rows)


def nodes_table(rows: Sequence[admin.NodeRow], *, warn_above: float = 1.0) -> None:
    """The nodes as a Rich table, stale ones and clocks off by more than ``warn_above``
    seconds flagged in red."""
    from rich.markup import escape

    out = render.console()
    if not rows:
        out.print("no nodes registered (no worker is running)")
        return
    table = render.table_of(
        "id=",
        "host~",
        "pid>",
        "queues~",
        "capabilities~",
        "concurrency>",
        "state",
        "started (UTC)=",
        "heartbeat>=",
        "workers>",
        "busy>",
        "clock>=",
    )
    for row in rows:
        node = row.node
        table.add_row(
            escape(node.id),
            escape(node.host),
            str(node.pid),
            escape(", ".join(node.queues)),
            escape(", ".join(node.capabilities)) or "-",
            str(node.concurrency),
            _styled(node.state, NODE_STATE_STYLES),
            render.short_time(row.started_at),
            _heartbeat(row.heartbeat_age, row.stale),
            str(len(node.workers)),
            str(row.busy),
            _offset(node.clock_offset, warn_above),
        )
    out.print(table)
    stale = sum(1 for row in rows if row.stale)
    out.print(f"{_count(len(rows), 'node')}" + (f", [red]{stale} stale[/]" if stale else ""))


def workers_table(rows: Sequence[admin.WorkerRow]) -> None:
    """The workers of every node as a Rich table, stale ones flagged in red."""
    from rich.markup import escape

    out = render.console()
    if not rows:
        out.print("no workers registered (no worker is running)")
        return
    table = render.table_of(
        "node=",
        "worker=",
        "pid>",
        "state",
        "current job=",
        "processed>",
        "failed>",
        "RSS MiB>",
        "heartbeat>=",
    )
    for row in rows:
        worker = row.worker
        table.add_row(
            escape(row.node_id),
            escape(worker.id),
            str(worker.pid),
            _styled(worker.state, WORKER_STATE_STYLES),
            escape(worker.current_job or "-"),
            str(worker.processed),
            f"[red]{worker.failed}[/]" if worker.failed else "0",
            f"{row.rss_mib:.1f}",
            _heartbeat(row.heartbeat_age, row.stale),
        )
    out.print(table)
    busy = sum(1 for row in rows if row.worker.state == "busy")
    out.print(f"{_count(len(rows), 'worker')}, {busy} busy")


def _styled(state: str, styles: dict[str, str]) -> str:
    from rich.markup import escape

    return f"[{styles.get(state, 'white')}]{escape(state)}[/]"


def _heartbeat(age: float, stale: bool) -> str:
    text = f"{render.age(age)} ago"
    return f"[red]{text} (stale)[/]" if stale else text


def _offset(offset: float | None, warn_above: float) -> str:
    """The node's clock against the store server's (positive: the node is ahead)."""
    if offset is None:
        return "-"
    text = f"{offset:+.3f}s"
    return f"[red]{text}[/]" if abs(offset) > warn_above else text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
