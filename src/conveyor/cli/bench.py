"""``conveyor bench``: run the repository's benchmark harness (``python -m bench``).

The harness lives in the source checkout (``bench/``), not in the installed package:
this command finds it, prefers its own environment (``bench/.venv``, which ``make
bench`` creates with the peers installed), and passes every argument through, so
``conveyor bench --quick --only conveyor-sqlite`` is ``python -m bench --quick --only
conveyor-sqlite``. Without the peers installed their rows say so; nothing fails on timing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

HARNESS = Path("bench") / "harness.py"
VENV_PYTHON = Path("bench") / ".venv" / "bin" / "python"


def find_checkout(start: Path | None = None) -> Path | None:
    """The directory holding ``bench/harness.py``: the working directory or a parent of it,
    else the checkout this package was installed from (editable installs)."""
    here = (start or Path.cwd()).resolve()
    package_root = Path(__file__).resolve().parents[3]
    for candidate in (here, *here.parents, package_root):
        if (candidate / HARNESS).is_file():
            return candidate
    return None


def harness_command(root: Path, args: tuple[str, ...]) -> list[str]:
    """``python -m bench ARGS`` with bench/.venv's interpreter when it exists."""
    venv = root / VENV_PYTHON
    python = str(venv) if venv.exists() else sys.executable
    return [python, "-m", "bench", *args]


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Benchmark Conveyor against Celery, Dramatiq, RQ, Huey and Taskiq (``make bench``).

    Every argument goes to the harness; ``conveyor bench --help`` lists them.
    """
    root = find_checkout()
    if root is None:
        raise click.UsageError(
            "the benchmark harness (bench/harness.py) is in Conveyor's source checkout; "
            "run this from the repository, or use `make bench` there"
        )
    code = subprocess.call(harness_command(root, args), cwd=root)
    ctx.exit(code)
