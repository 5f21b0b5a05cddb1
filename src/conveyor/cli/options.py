"""Option plumbing shared by every command: duration values, the global options
accepted after a subcommand, and the one rule for environment variable names.

The rule: an option's variable is ``CONVEYOR_<FLAG>`` when its flag names a setting
(a field of a settings class, also read from ``conveyor.toml``; e.g. ``--queues`` ->
``CONVEYOR_QUEUES``) or is a global option of ``conveyor`` itself (``--app``,
``--store``, ``--log-level``); every other option's variable is
``CONVEYOR_<COMMAND>_<FLAG>``, the command path and the long flag name upper-cased
with ``-`` as ``_`` (``conveyor jobs list --state`` -> ``CONVEYOR_JOBS_LIST_STATE``).
:func:`apply_envvar_rule` gives every option without one its variable, so commands
added later follow the rule without listing it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click
from click.decorators import FC

from conveyor.config import known_file_keys
from conveyor.durations import parse_duration

ENV_PREFIX = "CONVEYOR"

GLOBAL_MARK = "_conveyor_global"
"""Attribute set on the copies of ``--app``/``--store`` added to subcommands."""


class DurationType(click.ParamType[float]):
    """Seconds, or a number with a unit: 90, 90s, 15m, 2h, 3d."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """Seconds, or a usage error that explains the accepted forms."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationType()


def queues_option(help: str) -> Callable[[FC], FC]:
    """``-Q/--queues SPEC`` (``CONVEYOR_QUEUES``), with what it means to this command."""
    return click.option("-Q", "--queues", metavar="SPEC", help=help)


def flag_name(option: click.Option) -> str:
    """The option's first long flag without dashes (``--stale-after`` -> ``stale-after``),
    else its parameter name."""
    for opt in option.opts:
        if opt.startswith("--"):
            return opt[2:]
    return option.name or ""


def expected_envvar(path: Sequence[str], option: click.Option) -> str:
    """The environment variable ``option`` of the command at ``path`` must have."""
    flag = flag_name(option).upper().replace("-", "_")
    if not path or flag.lower() in known_file_keys():
        return f"{ENV_PREFIX}_{flag}"
    command = "_".join(part.upper().replace("-", "_") for part in path)
    return f"{ENV_PREFIX}_{command}_{flag}"


def is_global_copy(param: click.Parameter) -> bool:
    """True for the ``--app``/``--store`` copies on subcommands (they read no variable:
    the group's options read ``CONVEYOR_APP``/``CONVEYOR_STORE``)."""
    return bool(getattr(param, GLOBAL_MARK, False))


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command of the tree with its path (``()`` for the root)."""
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            found.extend(walk(sub, (*path, name)))
    return found


def apply_envvar_rule(root: click.Group) -> None:
    """Give every option without a variable the rule's one, and show it in ``--help``."""
    for path, command in walk(root):
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_eager or is_global_copy(param):
                continue
            if param.envvar is None:
                param.envvar = expected_envvar(path, param)
            param.show_envvar = True


def _set_state(attribute: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    """A callback that stores a given value on the CLI state (``ctx.obj``)."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is not None and ctx.obj is not None:
            setattr(ctx.obj, attribute, value)

    return callback


def add_global_options(root: click.Group) -> None:
    """Accept ``--app`` and ``--store`` after every subcommand too
    (``conveyor worker --app mod:app``, ``conveyor jobs list --store sqlite:///x.db``).

    The group's callback has made the CLI state before a subcommand parses its own
    options, so these only overwrite what the group's options (or variables) set.
    """
    for path, command in walk(root):
        if not path:
            continue
        names = {opt for p in command.params for opt in getattr(p, "opts", ())}
        copies = []
        if not names & {"-A", "--app"}:
            copies.append(
                click.Option(
                    ["-A", "--app"],
                    metavar="MODULE:ATTR",
                    expose_value=False,
                    allow_from_autoenv=False,
                    callback=_set_state("app_spec"),
                    help="Your App (same as `conveyor --app`).",
                )
            )
        if "--store" not in names:
            copies.append(
                click.Option(
                    ["--store"],
                    metavar="DSN",
                    expose_value=False,
                    allow_from_autoenv=False,
                    callback=_set_state("store_dsn"),
                    help="Store DSN (same as `conveyor --store`).",
                )
            )
        for copy in copies:
            setattr(copy, GLOBAL_MARK, True)
        command.params.extend(copies)
