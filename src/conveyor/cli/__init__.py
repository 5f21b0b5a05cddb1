"""The ``conveyor`` command: one Click group, one module per noun.

The CLI holds no logic. Each command parses its options, builds settings (flags >
``CONVEYOR_*`` environment > ``conveyor.toml``/``[tool.conveyor]``), calls the App,
:mod:`conveyor.admin` or the worker, and renders the result with
:mod:`conveyor.cli.render`. Every option can also be set by an environment
variable, shown in ``--help``.

Exit codes: 0 success, 1 an operational error (store, missing job), 2 bad input
(usage, invalid job or configuration).
"""

from __future__ import annotations

import os
from typing import Any

import click

from conveyor import __version__, admin
from conveyor.app import App
from conveyor.cli import render
from conveyor.cli.bench import bench
from conveyor.cli.dlq import dlq
from conveyor.cli.enqueue import enqueue
from conveyor.cli.info import info, migrate
from conveyor.cli.jobs import jobs
from conveyor.cli.nodes import nodes, workers
from conveyor.cli.prune import prune
from conveyor.cli.queues import queues
from conveyor.cli.scaling import scaling
from conveyor.cli.schedule import schedule, scheduler
from conveyor.cli.worker import worker
from conveyor.config import AppSettings, build, read_file_settings
from conveyor.errors import ConfigurationError, ConveyorError, InvalidJob
from conveyor.logs import configure_logging

__all__ = ["CliState", "main"]

USAGE_EXIT = 2
ERROR_EXIT = 1


class CliState:
    """What the group's options give every command: the app (loaded lazily) and its store."""

    def __init__(self, app_spec: str | None, store_dsn: str | None) -> None:
        self.app_spec = app_spec
        self.store_dsn = store_dsn
        self._app: App | None = None

    def app(self, *, need_tasks: bool = False) -> App:
        """The user's App from ``--app``, or a bare App on ``--store`` when tasks are not needed.

        Raises:
            click.UsageError: ``need_tasks`` and no ``--app`` was given.
        """
        if need_tasks and not self.app_spec:
            raise click.UsageError(
                "this command needs your tasks: pass --app module:attribute "
                "(e.g. --app myproject.tasks:app) or set CONVEYOR_APP"
            )
        if self._app is None:
            if self.app_spec:
                self._app = admin.load_app(self.app_spec)
                if self.store_dsn:
                    admin.use_store(self._app, self.store_dsn)
            else:
                self._app = App(store=self.store_dsn)
        return self._app

    @property
    def has_app(self) -> bool:
        """True when ``--app`` was given."""
        return bool(self.app_spec)

    def close(self) -> None:
        """Close the store if one was opened."""
        if self._app is not None:
            self._app.close()


def exit_code(exc: ConveyorError) -> int:
    """2 for bad input (invalid job, configuration), 1 for everything else."""
    return USAGE_EXIT if isinstance(exc, InvalidJob | ConfigurationError) else ERROR_EXIT


class ConveyorGroup(click.Group):
    """A group that turns expected Conveyor errors into one ``error: …`` line."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; print ConveyorErrors without a traceback."""
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            render.print_error(str(exc))
            ctx.exit(exit_code(exc))


@click.group(
    cls=ConveyorGroup,
    context_settings={
        "auto_envvar_prefix": "CONVEYOR",
        "show_default": True,
        "help_option_names": ["-h", "--help"],
    },
)
@click.option(
    "-A",
    "--app",
    "app_spec",
    envvar="CONVEYOR_APP",
    show_envvar=True,
    metavar="MODULE:ATTR",
    help="Your App, e.g. myproject.tasks:app (a module alone means MODULE:app). "
    "Needed by worker and enqueue.",
)
@click.option(
    "--store",
    envvar="CONVEYOR_STORE",
    show_envvar=True,
    metavar="DSN",
    help="Store DSN (overrides the app's), e.g. sqlite:///conveyor.db. "
    "Default: the app's store, else sqlite:///conveyor.db.",
)
@click.option(
    "--log-level",
    envvar="CONVEYOR_LOG_LEVEL",
    show_envvar=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    help="Log level of conveyor.* loggers (stderr). Default: INFO.",
)
@click.option(
    "--log-format",
    envvar="CONVEYOR_LOG_FORMAT",
    show_envvar=True,
    type=click.Choice(["text", "json"]),
    help="Logs as text lines or one JSON object per line. Default: text.",
)
@click.version_option(__version__, prog_name="conveyor", allow_from_autoenv=False)
@click.pass_context
def main(
    ctx: click.Context,
    app_spec: str | None,
    store: str | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Conveyor: durable background jobs. Run workers, enqueue and manage jobs."""
    settings = build(
        AppSettings,
        flags={"log_level": log_level, "log_format": log_format},
        env=os.environ,
        file=read_file_settings(),
    )
    configure_logging(settings.log_level, settings.log_format)
    state = CliState(app_spec, store)
    ctx.obj = state
    ctx.call_on_close(state.close)


def show_envvars(command: click.Command) -> None:
    """List each option's environment variable in ``--help`` (explicit or automatic)."""
    for param in command.params:
        if isinstance(param, click.Option) and not param.is_eager:
            param.show_envvar = True
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            show_envvars(sub)


for _command in (
    worker,
    enqueue,
    jobs,
    queues,
    scaling,
    nodes,
    workers,
    dlq,
    info,
    migrate,
    schedule,
    scheduler,
    prune,
):
    main.add_command(_command)
main.add_command(bench)
show_envvars(main)

conveyor = main
"""Alias: ``conveyor.cli.conveyor`` is the same group as ``main``."""
