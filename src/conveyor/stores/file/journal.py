"""Atomic, crash-safe changes to a directory of files, one writer at a time.

Every state change runs as a :class:`Transaction` while its process holds an exclusive
``flock`` on ``<root>/lock`` (threads of one process queue on a ``threading.Lock``
first). A transaction reads through its own pending writes and, at commit:

1. writes the whole change set (relative path -> new bytes, or removal) to a journal:
   write, ``fsync``, rename to ``<root>/journal``, ``fsync`` of the root directory;
2. applies it: each file is written to ``tmp/``, ``fsync``'ed and renamed over its
   destination, removals are unlinked, then every touched directory is ``fsync``'ed;
3. unlinks the journal.

A process that dies anywhere in step 2 leaves the journal behind; the next holder of the
lock replays it (the operations are idempotent), so a batch is applied entirely or not at
all even across a crash. Readers that take no lock see each file either old or new,
never partly written, because files only ever appear by ``rename``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator

from conveyor.stores.file.layout import JOURNAL_FILE, LOCK_FILE, TMP_DIR, PathEscape

Ops = dict[str, bytes | None]
"""Relative path -> new content, or None to remove the file."""


class Directory:
    """The root directory: path checks, atomic writes, the writer lock and the journal."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._pid = 0
        self._fd = -1
        self._lock = threading.Lock()
        self._known_dirs: set[str] = set()

    # paths ------------------------------------------------------------------------------
    def path(self, rel: str) -> str:
        """The absolute path of ``rel``; refuses anything resolving outside the root."""
        if rel.startswith("/") or "\x00" in rel or ".." in rel.split("/"):
            raise PathEscape(f"refusing store path {rel!r}: it would leave {self.root}")
        full = os.path.join(self.root, rel)
        real = os.path.realpath(full)
        if os.path.commonpath([self.root, real]) != self.root or real == self.root:
            raise PathEscape(f"refusing store path {rel!r}: it resolves to {real}")
        return full

    def read(self, rel: str) -> bytes | None:
        """A file's content, or None when it does not exist."""
        try:
            with open(self.path(rel), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def listdir(self, rel: str) -> list[str]:
        """Entry names of a directory (empty when it does not exist)."""
        try:
            return os.listdir(self.path(rel))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def makedirs(self, rel: str) -> str:
        """Create a directory (0700) below the root; return its absolute path."""
        full = self.root if rel in ("", ".") else self.path(rel)
        if full not in self._known_dirs:
            os.makedirs(full, mode=0o700, exist_ok=True)
            self._known_dirs.add(full)
        return full

    # locking ----------------------------------------------------------------------------
    def _ensure(self) -> None:
        pid = os.getpid()
        if self._pid == pid and self._fd >= 0:
            return
        if self._pid != pid:
            # a forked child: the parent's descriptor and thread lock are not ours
            self._lock = threading.Lock()
        self._fd = os.open(
            os.path.join(self.root, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        self._pid = pid

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Be the only writer (in every process) while the block runs."""
        self._ensure()
        with self._lock:
            fd = self._fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.path.lexists(os.path.join(self.root, JOURNAL_FILE)):
                    self.recover()
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close this process's lock descriptor; the next use reopens it."""
        if self._pid != os.getpid():
            self._fd = -1  # inherited through fork: the next use reopens (and resets the lock)
            return
        with self._lock:
            if self._pid == os.getpid() and self._fd >= 0:
                os.close(self._fd)
            self._fd = -1

    # committing -------------------------------------------------------------------------
    def commit(self, ops: Ops) -> None:
        """Apply ``ops`` atomically and durably (call with the lock held)."""
        if not ops:
            return
        entries = [
            [rel, None if data is None else base64.b64encode(data).decode()]
            for rel, data in ops.items()
        ]
        body = json.dumps(entries, separators=(",", ":")).encode()
        record = hashlib.sha256(body).hexdigest().encode() + b"\n" + body
        self._write_file(JOURNAL_FILE, record, sync=True)
        _fsync_dir(self.root)
        self._apply(ops)
        os.unlink(os.path.join(self.root, JOURNAL_FILE))

    def recover(self) -> None:
        """Replay a journal left by a writer that died mid-commit; clear stray temp files."""
        journal = os.path.join(self.root, JOURNAL_FILE)
        ops = _read_journal(journal)
        if ops is not None:
            self._apply(ops)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(journal)
        _fsync_dir(self.root)
        self.clear_tmp()

    def clear_tmp(self) -> None:
        """Remove temp files of writers that died (call with the lock held)."""
        for name in self.listdir(TMP_DIR):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.root, TMP_DIR, name))

    def write_durably(self, rel: str, data: bytes) -> None:
        """One file, written completely or not at all, and its directory synced."""
        self._write_file(rel, data, sync=True)
        _fsync_dir(os.path.dirname(self.path(rel)))

    def _apply(self, ops: Ops) -> None:
        touched: set[str] = set()
        for rel, data in ops.items():
            full = self.path(rel)
            parent = os.path.dirname(full)
            if data is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(full)
            else:
                self.makedirs(os.path.relpath(parent, self.root))
                # empty files are index markers: nothing to flush but their directory entry
                self._write_file(rel, data, sync=bool(data))
            touched.add(parent)
        for directory in sorted(touched):
            _fsync_dir(directory)

    def _write_file(self, rel: str, data: bytes, *, sync: bool) -> None:
        """write -> fsync -> rename (the caller syncs the directory)."""
        final = self.path(rel)
        tmp = os.path.join(self.root, TMP_DIR, f"{os.getpid()}-{os.urandom(6).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _read_journal(path: str) -> Ops | None:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None
    check, _, body = raw.partition(b"\n")
    if hashlib.sha256(body).hexdigest().encode() != check:
        return None  # torn: it was never renamed into place complete, so nothing was applied
    entries = json.loads(body)
    return {str(rel): None if data is None else base64.b64decode(data) for rel, data in entries}


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
