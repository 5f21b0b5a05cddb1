"""Fixtures of the CLI tests: a small app module and a SQLite store in ``tmp_path``."""

from __future__ import annotations

import logging
import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conveyor import App, admin
from conveyor.cli import main

MODULE = "cli_test_app"

APP_SOURCE = textwrap.dedent(
    '''
    """The app the CLI tests load with --app."""

    import time
    from pathlib import Path

    from conveyor import App

    app = App("sqlite:///" + str(Path(__file__).with_name("jobs.db")))
    not_an_app = 42


    @app.task(name="t.add", queue="high", priority=5)
    def add(a, b):
        return a + b


    @app.task(name="t.greet")
    def greet(name, punctuation="!"):
        return f"hello {name}{punctuation}"


    @app.task(name="t.boom", max_attempts=1, tags=["fragile"])
    def boom():
        raise ValueError("kaboom")


    @app.task(name="t.sleepy", timeout=120)
    def sleepy(seconds):
        time.sleep(seconds)
        return "rested"
    '''
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CONVEYOR_* setting of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def restore_process_state() -> Iterator[None]:
    """Undo what an in-process ``conveyor`` run changes in this process: the ``conveyor``
    logger (configured by every command) and the SIGALRM handler (set by a worker)."""
    logger = logging.getLogger("conveyor")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    alarm = signal.getsignal(signal.SIGALRM)
    try:
        yield
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
        signal.signal(signal.SIGALRM, alarm)


@dataclass
class Project:
    """A directory with ``cli_test_app.py`` and its store ``jobs.db``."""

    path: Path
    runner: CliRunner

    @property
    def db(self) -> Path:
        """The SQLite file of the app."""
        return self.path / "jobs.db"

    @property
    def dsn(self) -> str:
        """The store DSN of the app."""
        return f"sqlite:///{self.db}"

    @property
    def app(self) -> App:
        """The same App object the CLI loads (the module is cached in sys.modules)."""
        return admin.load_app(MODULE)

    def cli(self, *args: str, app: bool = True, **kwargs: Any) -> Result:
        """Run ``conveyor [--app cli_test_app] ARGS`` in-process."""
        argv = ["--app", MODULE, *args] if app else list(args)
        return self.runner.invoke(main, argv, catch_exceptions=False, **kwargs)

    def enqueue(self, task: str, *args: Any, **options: Any) -> str:
        """Enqueue through the library; return the job id."""
        return self.app.enqueue(task, args, **options).id

    def run_worker(self, queues: str = "high,default") -> Result:
        """Run a burst worker in-process until the queues are drained."""
        result = self.cli("worker", "--solo", "--burst", "-Q", queues, "--poll-interval", "0.05")
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A fresh app module and store; the working directory is the project."""
    (tmp_path / f"{MODULE}.py").write_text(APP_SOURCE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(MODULE, None)
    proj = Project(tmp_path, CliRunner())
    existing = App(proj.dsn)  # the user's store exists: read commands refuse a missing one
    existing.store.migrate()
    existing.close()
    try:
        yield proj
    finally:
        module = sys.modules.pop(MODULE, None)
        if module is not None:
            module.app.close()


def errors(result: Result) -> str:
    """What a command printed on stderr besides its ``store: …`` header line."""
    return "".join(
        line for line in result.stderr.splitlines(keepends=True) if not line.startswith("store: ")
    )


def subprocess_env(path: Path) -> dict[str, str]:
    """The environment of a ``python -m conveyor`` child: no CONVEYOR_*, the project on
    PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env
