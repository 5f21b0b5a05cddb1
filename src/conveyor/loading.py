"""Finding the user's App from a ``module:attribute`` string (``--app``).

Kept apart from :mod:`conveyor.admin` so that a worker child imports only this.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from conveyor.app import App
from conveyor.errors import ConfigurationError


def load_app(spec: str) -> App:
    """Import ``module:attribute`` (or ``module``, meaning ``module:app``) and return the App.

    The current directory is put first on ``sys.path`` so that ``conveyor --app
    tasks:app`` finds ``./tasks.py``. ``attribute`` may be dotted (``pkg.mod:obj.app``).

    Raises:
        ConfigurationError: The module or attribute does not exist, or is not an App.
    """
    module_name, _, attribute = spec.strip().partition(":")
    attribute = attribute or "app"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise ConfigurationError(
            f"--app {spec!r}: expected 'module:attribute', e.g. 'myproject.tasks:app'"
        )
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_prefix(exc.name, module_name):
            raise ConfigurationError(
                f"--app {spec!r}: no module named {exc.name!r} (searched the current "
                f"directory {cwd} and sys.path; check the name or set PYTHONPATH)"
            ) from exc
        raise ConfigurationError(import_failure(spec, module_name, exc)) from exc
    except Exception as exc:
        raise ConfigurationError(import_failure(spec, module_name, exc)) from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(
                f"--app {spec!r}: module {module_name!r} has no attribute {attribute!r}; "
                f"point at your App, e.g. '{module_name}:app'"
            ) from None
    if not isinstance(target, App):
        raise ConfigurationError(
            f"--app {spec!r}: {module_name}:{attribute} is a {type(target).__name__}, "
            "not a conveyor.App"
        )
    return target


def import_failure(spec: str, module_name: str, exc: BaseException) -> str:
    """One line naming what the import raised, then the user's own frames only.

    The frames of the import machinery and of this module are dropped: they say nothing
    about the user's code and would bury the line that raised.
    """
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_machinery(f)]
    *where, what = traceback.format_exception_only(exc)
    lines = [f"--app {spec!r}: importing {module_name!r} raised {what.strip()}"]
    lines.extend(line.rstrip("\n") for line in where)  # a SyntaxError's file, line, caret
    if frames:
        lines.append("Traceback (your code, most recent call last):")
        lines.extend(line.rstrip("\n") for line in traceback.format_list(frames))
    return "\n".join(lines)


def _is_machinery(frame: traceback.FrameSummary) -> bool:
    """A frame of ``importlib`` (frozen or not) or of this module."""
    name = frame.filename
    return name.startswith("<frozen ") or name == __file__ or f"{os.sep}importlib{os.sep}" in name


def _is_prefix(missing: str, module_name: str) -> bool:
    """True if ``missing`` is ``module_name`` or one of its parent packages."""
    return module_name == missing or module_name.startswith(missing + ".")
