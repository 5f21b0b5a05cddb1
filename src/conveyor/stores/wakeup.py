"""A local wake-up channel: enqueuers poke waiting workers through Unix datagram sockets.

Every waiting thread binds one non-blocking ``AF_UNIX``/``SOCK_DGRAM`` socket in a
directory next to the database (``<db>.wake/``) the first time it waits, and keeps it
bound: a byte sent while it is busy stays queued, so a waiter never misses a
notification sent after it first bound. After committing new work, an enqueuer sends
one byte to every socket in the directory. The listing is cached and re-read only when
the directory's ``st_mtime_ns`` moves, so when nobody waits an enqueue costs one
``stat``. Sockets whose owner died refuse the datagram and are unlinked by the sender.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import select
import socket
import tempfile
import threading
import time
import weakref

# sun_path holds 108 bytes including the terminating NUL.
_SUN_PATH_MAX = 107
# Longest socket name we create: "<pid>-<8 hex>.sock" with a 7-digit pid.
_NAME_MAX = len("1234567-0123abcd.sock")
# Directory timestamps come from a coarse kernel clock (one tick, a few ms). A listing is
# trusted only once it was taken clearly after the directory's last change; before that,
# a new socket could appear without moving st_mtime_ns.
_MTIME_GRANULARITY_NS = 50_000_000
_SUFFIX = ".sock"


def wake_directory(db_path: str) -> str:
    """The directory for ``db_path``'s sockets: ``<db>.wake``, or a hashed one in the temp
    dir when that would make socket paths too long for ``AF_UNIX``."""
    real = os.path.realpath(db_path)
    directory = real + ".wake"
    if len(os.fsencode(directory)) + 1 + _NAME_MAX <= _SUN_PATH_MAX:
        return directory
    import hashlib  # only for over-long paths

    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:24]
    return os.path.join(tempfile.gettempdir(), f"conveyor-wake-{digest}")


def directory_mtime_ns(path: str) -> int:
    """When the directory last gained or lost an entry (one ``stat``)."""
    return os.stat(path).st_mtime_ns


def _dispose(sock: socket.socket, path: str, owner_pid: int) -> None:
    """Close a waiter's socket; remove its file only in the process that bound it."""
    sock.close()
    if os.getpid() == owner_pid:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class _Waiter:
    """One thread's bound socket."""

    __slots__ = ("__weakref__", "_finalizer", "closed", "path", "pid", "sock")

    def __init__(self, directory: str) -> None:
        self.pid = os.getpid()
        self.closed = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        try:
            self.path = self._bind(directory)
        except BaseException:
            self.sock.close()
            raise
        self._finalizer = weakref.finalize(self, _dispose, self.sock, self.path, self.pid)

    def _bind(self, directory: str) -> str:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        while True:
            path = os.path.join(directory, f"{self.pid}-{os.urandom(4).hex()}{_SUFFIX}")
            try:
                self.sock.bind(path)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            return path

    def wait(self, timeout: float) -> bool:
        """Block until a byte arrives or ``timeout``; drain every pending byte."""
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        ready = poller.poll(max(0, math.ceil(timeout * 1000)))
        if self.closed:
            self.dispose()
            return False
        return bool(ready) and self._drain()

    def _drain(self) -> bool:
        got = False
        while True:
            try:
                data = self.sock.recv(64)
            except (BlockingIOError, InterruptedError):
                return got
            if not data:
                # A shut-down socket reads as empty: the channel was closed meanwhile.
                return got
            got = True

    def interrupt(self) -> None:
        """Wake the owner thread out of ``poll`` without closing the fd it polls."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        if os.getpid() == self.pid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def dispose(self) -> None:
        """Close the socket (and unlink its file if this process bound it)."""
        self._finalizer()


class WakeChannel:
    """Wake-ups between the processes and threads that share one database file."""

    def __init__(self, db_path: str) -> None:
        self.directory = wake_directory(db_path)
        self._local = threading.local()
        self._waiters: weakref.WeakSet[_Waiter] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._sender: tuple[int, socket.socket] | None = None
        # (directory st_mtime_ns, socket paths) of the last listing we can trust.
        self._listing: tuple[int, list[str]] | None = None

    # waiting ------------------------------------------------------------------------------
    def wait(self, timeout: float) -> bool:
        """Block until notified (True) or ``timeout`` seconds pass (False). Never polls."""
        waiter: _Waiter | None = getattr(self._local, "waiter", None)
        if waiter is None or waiter.pid != os.getpid() or waiter.closed:
            if waiter is not None and waiter.pid != os.getpid():
                # Inherited through fork: the parent still owns the address; drop our fd.
                waiter.dispose()
            waiter = _Waiter(self.directory)
            self._local.waiter = waiter
            with self._lock:
                self._waiters.add(waiter)
        return waiter.wait(timeout)

    # notifying ----------------------------------------------------------------------------
    def notify(self) -> None:
        """Send one byte to every waiting socket; cheap (one ``stat``) when nobody waits."""
        paths = self._targets()
        if not paths:
            return
        sender = self._sender_socket()
        for path in paths:
            try:
                sender.sendto(b"\x01", path)
            except (BlockingIOError, InterruptedError):
                continue  # its queue is full: it has wake-ups pending already
            except ConnectionRefusedError:
                # Nobody is bound there any more: the owner died without cleaning up.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                self._listing = None
            except (FileNotFoundError, NotADirectoryError):
                self._listing = None
            except OSError:
                continue  # not a socket, or not ours to write: not a waiter

    def _targets(self) -> list[str]:
        try:
            mtime = directory_mtime_ns(self.directory)
        except FileNotFoundError:
            return []
        cached = self._listing
        if cached is not None and cached[0] == mtime:
            return cached[1]
        listed_at = time.time_ns()
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        paths = [os.path.join(self.directory, n) for n in names if n.endswith(_SUFFIX)]
        trusted = listed_at - mtime > _MTIME_GRANULARITY_NS
        self._listing = (mtime, paths) if trusted else None
        return paths

    def _sender_socket(self) -> socket.socket:
        sender = self._sender
        pid = os.getpid()
        if sender is not None and sender[0] == pid:
            return sender[1]
        with self._lock:
            sender = self._sender
            if sender is None or sender[0] != pid:
                if sender is not None:
                    sender[1].close()  # inherited through fork; closing our copy is harmless
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
                self._sender = sender = (pid, sock)
            return sender[1]

    # lifecycle ----------------------------------------------------------------------------
    def after_fork(self) -> None:
        """In a fresh child: a lock another thread held at fork time would never be freed."""
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release this process's sockets and wake its blocked waiters (they return False)."""
        pid = os.getpid()
        mine = getattr(self._local, "waiter", None)
        with self._lock:
            waiters = list(self._waiters)
            self._waiters = weakref.WeakSet()
        for waiter in waiters:
            if waiter.pid == pid:
                waiter.interrupt()
        if mine is not None:
            mine.dispose()
            self._local.waiter = None
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            sender[1].close()
        self._listing = None
