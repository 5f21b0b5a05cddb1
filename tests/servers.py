"""Private Redis and PostgreSQL servers for the tests, on 127.0.0.1 and free ports.

Each server lives in its own temporary directory and is stopped by its pid when the
test session ends. ``initdb`` refuses to run as root, so as root the cluster belongs
to an unprivileged user made for it. Locally a missing server skips the tests that
need it, with the reason; under ``CI=true`` it fails them (``make test`` installs
both from Debian packages first).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PG_USER = "conveyor-test"


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerUnavailable(RuntimeError):
    """Raised instead of skipping when pytest is not running (e.g. ``make bench``)."""


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where every server must start."""
    if "pytest" not in sys.modules:
        raise ServerUnavailable(reason)
    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _wait_for_port(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(
        f"server did not listen on {port}: {log.read_text(errors='replace')[-2000:]}"
    )


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class RedisServer:
    """A running private redis-server."""

    port: int
    proc: subprocess.Popen[bytes]
    directory: Path
    appendonly: bool = True

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def restart(self) -> None:
        """Stop and start again on the same port and data (for fault tests)."""
        _stop(self.proc)
        self.proc = _start_redis_process(self.port, self.directory, appendonly=self.appendonly)


def _die_with(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``sig`` to the server when the process
    that started it dies, so a test run killed before its teardown (a timeout, Ctrl-C
    twice, kill -9) leaves no server behind. Runs after ``Popen(user=…)`` changed the
    credentials (which would clear it). None where ``prctl`` is not available."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def arm() -> None:
        libc.prctl(pr_set_pdeathsig, sig, 0, 0, 0)

    return arm


def _start_redis_process(
    port: int, directory: Path, *, appendonly: bool = True
) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary is not None
    log = directory / "redis.log"
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
            "--logfile",
            str(log),
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with(signal.SIGTERM),
    )
    log.touch()
    _wait_for_port(port, proc, log)
    return proc


@contextlib.contextmanager
def redis_server(*, appendonly: bool = True) -> Iterator[RedisServer]:
    """Start redis-server in a temp dir (AOF on unless ``appendonly=False``: then nothing
    survives a restart, as ``--save ""`` keeps no snapshot); stop it by pid afterwards."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    directory = Path(tempfile.mkdtemp(prefix="conveyor-redis-"))
    port = free_port()
    server = RedisServer(
        port, _start_redis_process(port, directory, appendonly=appendonly), directory, appendonly
    )
    try:
        yield server
    finally:
        _stop(server.proc)
        shutil.rmtree(directory, ignore_errors=True)


def _pg_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    found = shutil.which("initdb") or (candidates[0] if candidates else None)
    return Path(found).parent if found else None


@dataclass
class PostgresServer:
    """A running private PostgreSQL cluster."""

    port: int
    proc: subprocess.Popen[bytes]
    directory: Path
    bindir: Path
    run_as: str | None

    @property
    def dsn(self) -> str:
        """DSN of the ``postgres`` database as the cluster's superuser."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def restart(self) -> None:
        """Fast shutdown and start again (for fault tests)."""
        _stop(self.proc, signal.SIGINT)
        self.proc = _start_postgres_process(self)


def _ensure_user() -> str | None:
    """The unprivileged owner of the cluster when we are root, else None (run as us)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_USER,
            ],
            check=True,
            capture_output=True,
        )
    return PG_USER


def _gid(user: str | None) -> int | None:
    return pwd.getpwnam(user).pw_gid if user else None


def _start_postgres_process(server: PostgresServer) -> subprocess.Popen[bytes]:
    log = server.directory / "postgres.log"
    log.touch()
    if server.run_as:
        shutil.chown(log, server.run_as)
    log_file = log.open("ab")
    # Popen(user=…) makes the postgres process itself the child, so stopping it by
    # pid stops the server (a runuser wrapper would not pass the signal on).
    proc = subprocess.Popen(
        [
            str(server.bindir / "postgres"),
            "-D",
            str(server.directory / "data"),
            "-p",
            str(server.port),
            "-k",
            str(server.directory),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        user=server.run_as,
        group=_gid(server.run_as),
        extra_groups=[] if server.run_as else None,
        preexec_fn=_die_with(signal.SIGINT),  # PostgreSQL's fast shutdown
    )
    log_file.close()
    _wait_for_port(server.port, proc, log)
    _wait_for_logins(server.port, proc, log)
    return proc


def _wait_for_logins(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> None:
    """The port opens before recovery ends ("the database system is starting up")."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(f"postgresql://{PG_USER}@127.0.0.1:{port}/postgres").close()
            return
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"postgres does not accept logins: {log.read_text(errors='replace')[-2000:]}"
                ) from None
            time.sleep(0.05)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb a throwaway cluster in a temp dir and start it; stop it by pid afterwards."""
    bindir = _pg_bindir()
    if bindir is None:
        unavailable(
            "PostgreSQL server binaries (initdb) are not installed (apt-get install postgresql)"
        )
    assert bindir is not None
    user = _ensure_user()
    directory = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
    os.chmod(directory, 0o755)
    if user:
        shutil.chown(directory, user)
    init = subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(directory / "data"),
            "-U",
            PG_USER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        capture_output=True,
        text=True,
        user=user,
        group=_gid(user),
        extra_groups=[] if user else None,
        cwd=directory,
    )
    if init.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        unavailable(f"initdb failed: {init.stderr[-1000:]}")
    server = PostgresServer(free_port(), None, directory, bindir, user)  # type: ignore[arg-type]
    server.proc = _start_postgres_process(server)
    try:
        yield server
    finally:
        _stop(server.proc, signal.SIGINT)
        shutil.rmtree(directory, ignore_errors=True)
