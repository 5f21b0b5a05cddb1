"""The ``conveyor`` command: one Click group, one module per noun.

The CLI holds no logic. Each command parses its options, builds settings (flags >
``CONVEYOR_*`` environment > the app's code > ``conveyor.toml``/``[tool.conveyor]`` >
defaults, see :mod:`conveyor.config`), calls the App,
:mod:`conveyor.admin` or the worker, and renders the result with
:mod:`conveyor.cli.render`. Every option can also be set by an environment
variable, shown in ``--help`` and named by one rule (:mod:`conveyor.cli.options`).
Every command that opens a store names it on stderr (``store: …``) and in ``-o json``
(``{"store": …, …}``, one object per command).

Exit codes: 0 success, 1 an operational error (store, missing job), 2 bad input
(usage, invalid job or configuration).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import click

from conveyor import __version__, admin
from conveyor.app import App
from conveyor.cli import render
from conveyor.cli.dlq import dlq
from conveyor.cli.enqueue import enqueue
from conveyor.cli.info import info, migrate
from conveyor.cli.jobs import jobs
from conveyor.cli.nodes import nodes, workers
from conveyor.cli.options import add_global_options, apply_envvar_rule
from conveyor.cli.prune import prune
from conveyor.cli.queues import queues
from conveyor.cli.scaling import scaling
from conveyor.cli.schedule import schedule, scheduler
from conveyor.cli.worker import worker
from conveyor.config import AppSettings, build, read_file_settings
from conveyor.errors import ConfigurationError, ConveyorError, InvalidJob
from conveyor.logs import configure_logging

__all__ = ["CliState", "main"]

log = logging.getLogger("conveyor.cli")

USAGE_EXIT = 2
ERROR_EXIT = 1


class CliState:
    """What the group's options give every command: the app (loaded lazily) and its store.

    ``app_spec`` comes from ``--app`` (before or after the subcommand), ``CONVEYOR_APP``
    or ``app = …`` in the settings file; ``store_dsn`` from ``--store`` or
    ``CONVEYOR_STORE``, which override the app's own store.
    """

    def __init__(self, app_spec: str | None, store_dsn: str | None) -> None:
        self.app_spec = app_spec
        self.store_dsn = store_dsn
        self._app: App | None = None

    def app(
        self, *, need_tasks: bool = False, create: bool | None = None, service: bool = False
    ) -> App:
        """The user's App from ``--app``, or a bare App on ``--store`` when tasks are not needed.

        Only commands that write (``create``; by default those that ``need_tasks``:
        worker, enqueue, scheduler) may create a store; the others refuse one that does
        not exist. The first call says on stderr which store is used: a plain line, or
        for a long-running ``service`` (worker, scheduler) a log record, so that every
        line a service writes follows ``--log-format`` and ``--quiet``.

        Raises:
            click.UsageError: ``need_tasks`` and no ``--app`` was given.
            ConfigurationError: The store does not exist and may not be created.
        """
        if need_tasks and not self.app_spec:
            raise click.UsageError(
                "this command needs your tasks: pass --app module:attribute "
                "(e.g. --app myproject.tasks:app), set CONVEYOR_APP, or put "
                'app = "myproject.tasks:app" in conveyor.toml'
            )
        if self._app is None:
            app = self._load()
            if not (need_tasks if create is None else create):
                admin.require_store(app)
            if service:
                log.info("store: %s", admin.store_label(app))
            else:
                click.echo(f"store: {admin.store_label(app)}", err=True)
            self._app = app
        return self._app

    def _load(self) -> App:
        if not self.app_spec:
            return App(store=self.store_dsn)
        app = admin.load_app(self.app_spec)
        if self.store_dsn:
            admin.use_store(app, self.store_dsn)
        return app

    @property
    def has_app(self) -> bool:
        """True when ``--app`` was given."""
        return bool(self.app_spec)

    @property
    def store_label(self) -> str:
        """The store the command used, for ``-o json`` (passwords hidden)."""
        return admin.store_label(self.app())

    def emit_json(self, data: Mapping[str, object]) -> None:
        """Print one JSON object: ``store`` first, then ``data``."""
        render.emit_json({"store": self.store_label, **data})

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
    "Needed by worker and enqueue. Also accepted after the command, and as app = … in "
    "conveyor.toml.",
)
@click.option(
    "--store",
    envvar="CONVEYOR_STORE",
    show_envvar=True,
    metavar="DSN",
    help="Store DSN (overrides the app's), e.g. sqlite:///jobs.db. Also accepted after the "
    "command. Default: the app's store, else store = … in conveyor.toml, else "
    "sqlite:///conveyor.db.",
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
    file = read_file_settings()
    settings = build(
        AppSettings,
        flags={"log_level": log_level, "log_format": log_format},
        env=os.environ,
        file=file,
    )
    configure_logging(settings.log_level, settings.log_format)
    state = CliState(app_spec or _file_app(file), store)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _file_app(file: Mapping[str, Any]) -> str | None:
    """``app = "module:attr"`` from the settings file, checked to be a string."""
    value = file.get("app")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise click.UsageError(
            f'app in the settings file must be a "module:attribute" string, got {value!r}'
        )
    return value


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
apply_envvar_rule(main)
add_global_options(main)

conveyor = main
"""Alias: ``conveyor.cli.conveyor`` is the same group as ``main``."""
