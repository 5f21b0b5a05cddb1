"""A private redis-server for one benchmark run: loopback, a free port, a temp dir, no disk.

Never a system service: the server is a child process of the harness, started with
``--save '' --appendonly no`` and stopped by its pid (always, also on failure).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class RedisUnavailable(RuntimeError):
    """redis-server is missing and could not be installed, or did not start."""


def find_server() -> str | None:
    """Path of redis-server on PATH (Debian puts it in /usr/bin), or None."""
    return shutil.which("redis-server")


def install_server() -> str:
    """Install Debian's redis-server package (root; no service is started: policy-rc.d)."""
    found = find_server()
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise RedisUnavailable("redis-server is not on PATH and apt-get is not available")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")
    steps = (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
    )
    for cmd in steps:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RedisUnavailable(f"{' '.join(cmd)} failed: {' | '.join(tail)}")
    found = find_server()
    if not found:
        raise RedisUnavailable("apt-get installed redis-server but it is not on PATH")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_version(binary: str) -> str:
    """``redis-server --version`` as one short string."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    for part in out.stdout.split():
        if part.startswith("v="):
            return part[2:]
    return out.stdout.strip()


@dataclass
class RedisServer:
    """One private redis-server process; use as a context manager."""

    binary: str
    port: int = 0
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-redis-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        self.port = self.port or free_port()
        log = open(self.directory / "redis.log", "wb")  # noqa: SIM115 - closed by the child
        cmd = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisUnavailable(f"redis-server exited at start: {self.log_tail()}")
            if self.ping():
                return
            time.sleep(0.02)
        raise RedisUnavailable(f"redis-server did not answer within {timeout}s: {self.log_tail()}")

    def ping(self) -> bool:
        """True when the server answers PING (plain RESP over a socket, no client library)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def log_tail(self) -> str:
        """The last lines of the server's log."""
        try:
            lines = (self.directory / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:]) or "(empty log)"

    def stop(self) -> None:
        """Stop the server by its pid (TERM, then KILL) and remove its directory."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
