"""``conveyor enqueue TASK``: store one job of a registered task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
import orjson

from conveyor.cli import render
from conveyor.cli.options import DURATION

if TYPE_CHECKING:
    from conveyor.cli import CliState


def _json_option(value: str | None, option: str, kind: type[Any]) -> Any:
    """Parse ``value`` as JSON of type ``kind`` (list or dict), or fail as a usage error."""
    if value is None:
        return kind()
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})", param_hint=option) from None
    if not isinstance(parsed, kind):
        expected = (
            "a JSON array, e.g. '[1, \"a\"]'"
            if kind is list
            else "a JSON object, e.g. '{\"a\": 1}'"
        )
        raise click.BadParameter(
            f"must be {expected}, got {type(parsed).__name__}", param_hint=option
        )
    return parsed


def _priority(value: str | None) -> int | str | None:
    """An integer, or a level name (critical/high/normal/low) checked by the app."""
    if value is None:
        return None
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        return text


@click.command()
@click.argument("task")
@click.option("--args", "args_json", metavar="JSON", help="Positional arguments: a JSON array.")
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments: a JSON object.")
@click.option("--queue", help="Queue (default: the task's).")
@click.option("--priority", help="Integer (higher runs first) or critical/high/normal/low.")
@click.option("--delay", type=DURATION, help="Run after this long: 30, 90s, 15m, 2h.")
@click.option("--max-attempts", type=int, help="Attempts before the DLQ (default: the task's).")
@click.option(
    "--timeout", type=DURATION, help="Soft timeout: 30, 90s, 15m, 2h (default: the task's)."
)
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option(
    "--depends-on", "depends_on", multiple=True, metavar="ID", help="Job id (repeatable)."
)
@click.option("--idempotency-key", help="Same key + same arguments returns the first job.")
@click.option(
    "--idempotency-for", type=DURATION, help="How long --idempotency-key is remembered: 1d."
)
@click.option("--unique-key", help="At most one active job holds this key.")
@click.option(
    "--unique-for", type=DURATION, help="Hold --unique-key this long past the job: 1h, 1d."
)
@render.output_option
@click.pass_obj
def enqueue(
    state: CliState,
    task: str,
    args_json: str | None,
    kwargs_json: str | None,
    queue: str | None,
    priority: str | None,
    delay: float | None,
    max_attempts: int | None,
    timeout: float | None,
    tags: tuple[str, ...],
    depends_on: tuple[str, ...],
    idempotency_key: str | None,
    idempotency_for: float | None,
    unique_key: str | None,
    unique_for: float | None,
    output: str,
) -> None:
    """Enqueue a job of TASK (its registered name) and print its id."""
    args = _json_option(args_json, "--args", list)
    kwargs = _json_option(kwargs_json, "--kwargs", dict)
    options: dict[str, Any] = {
        "queue": queue,
        "priority": _priority(priority),
        "delay": delay,
        "max_attempts": max_attempts,
        "timeout": timeout,
        "idempotency_key": idempotency_key,
        "idempotency_for": idempotency_for,
        "unique_key": unique_key,
        "unique_for": unique_for,
    }
    options = {key: value for key, value in options.items() if value is not None}
    if tags:
        options["tags"] = tags
    if depends_on:
        options["depends_on"] = depends_on
    app = state.app(need_tasks=True)
    handle = app.enqueue(task, args, kwargs, **options)
    if output == "json":
        job = handle.get()
        state.emit_json({"id": handle.id, "duplicate": handle.duplicate, "state": job.state.value})
        return
    click.echo(f"{handle.id} (duplicate)" if handle.duplicate else handle.id)
