"""What differs between the SQL databases, in one small object per database.

Shared SQL is written with ``?`` placeholders and the dialect's fragments (id lists,
index hints, row locks, the fresh-token expression, …); :meth:`Dialect.bind` turns it
into the database's own placeholders once, when the statements are built. The methods
are the few steps each database does its own way (a batch heartbeat or completion,
key locks, the tag and text filters) and the codecs of list-valued columns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol, Self

from conveyor.job import JobError, Lease
from conveyor.stores.base import Completion


class Cursor(Protocol):
    """The DB-API cursor both drivers hand to the shared layer (sqlite3 and psycopg)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, query: Any, params: Any = ..., /) -> Self: ...

    def executemany(self, query: Any, params_seq: Any, /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Dialect(ABC):
    """SQL text fragments and the database-specific steps of the shared SQL layer."""

    name: str
    """The driver's name, in log messages and errors."""
    placeholder: str
    """The database's positional placeholder: ``?`` or ``%s``."""
    token: str
    """SQL expression of a fresh lease token."""
    json_param: str
    """A parameter holding JSON text, as the ``errors`` column takes it."""
    append_error: str
    """``errors = …`` appending one JSON error (one parameter) to a job's list."""
    skip_locked: str
    """Row locks of a claim-like read (``FOR UPDATE SKIP LOCKED``), or nothing."""
    row_lock: str
    """Lock of a row read before it is changed (``FOR UPDATE``), or nothing."""
    share_lock: str
    """Lock of dependency rows read at enqueue (ordered ``FOR SHARE``), or nothing."""
    dependents_lock: str
    """Order and lock of the dependents read when a job ends, or nothing."""
    indexed_by: bool
    """Whether statements name their index (SQLite's ``INDEXED BY`` makes a plan a promise)."""
    states_checked: bool
    """Whether the schema refuses unknown states (else a search for failed jobs also lists
    rows whose state no code knows: they read as failed, see :mod:`conveyor.stores.corrupt`)."""
    complete_chunk: int
    """Completions per batch statement."""
    inline_payload_max: int | None
    """Payloads longer than this live in ``job_payloads``; None keeps every one inline."""
    precheck_ids: bool
    """Whether enqueue looks for existing ids before inserting (a failed insert would
    abort the caller's whole transaction)."""
    integrity_error: type[Exception]
    """What the driver raises when an insert meets an existing primary key."""
    select_list: str
    """Columns to read a whole job, for ``SELECT`` and ``RETURNING``."""

    def bind(self, text: str) -> str:
        """Shared SQL (``?`` placeholders) in this database's placeholder style."""
        if self.placeholder == "?":
            return text
        if "%" in text:
            raise ValueError(f"a literal % in SQL for {self.name}: {text[:60]!r}")
        return text.replace("?", self.placeholder)

    def index(self, name: str) -> str:
        """``INDEXED BY name`` where the dialect names its indexes, else nothing."""
        return f" INDEXED BY {name}" if self.indexed_by else ""

    @abstractmethod
    def id_list(self, column: str) -> str:
        """``column`` is one of a list parameter (see :meth:`encode_ids`)."""

    @abstractmethod
    def claim_queue(self, claim_set: str) -> str:
        """The per-queue claim: ``claim_set`` on the first pending rows of one queue in
        claim order; parameters as :meth:`claim_queue_params` orders them."""

    @abstractmethod
    def claim_queue_params(
        self, claim_set: tuple[Any, ...], queue: str, limit: int
    ) -> tuple[Any, ...]:
        """:meth:`claim_queue`'s parameters: those of ``claim_set`` (expires, worker, now,
        now) and of the row choice, in the order the statement's text names them."""

    @abstractmethod
    def stage(self) -> str:
        """Due scheduled/retrying jobs to pending; parameters (now, limit)."""

    @abstractmethod
    def expired(self) -> str:
        """Processing jobs whose lease expired before the parameter (expire_before, limit)."""

    @abstractmethod
    def record_prefix(self) -> tuple[str, str]:
        """``WHERE`` text of a literal key prefix and the ``ORDER BY`` of record keys."""

    @abstractmethod
    def prefix_params(self, prefix: str) -> tuple[Any, ...]:
        """Parameters of :meth:`record_prefix`'s condition."""

    # codecs of list-valued columns --------------------------------------------------------
    @abstractmethod
    def encode_ids(self, ids: Sequence[str]) -> Any:
        """A list of ids as a parameter (None when empty)."""

    @abstractmethod
    def encode_tags(self, tags: Sequence[str]) -> Any:
        """A job's tags as stored (None when none); no tag contains a comma."""

    @abstractmethod
    def decode_ids(self, value: Any) -> tuple[str, ...]:
        """The ``depends_on`` column back to ids."""

    @abstractmethod
    def decode_tags(self, value: Any) -> tuple[str, ...]:
        """The ``tags`` column back to tags."""

    @abstractmethod
    def decode_errors(self, value: Any) -> tuple[JobError, ...]:
        """The ``errors`` column back to errors."""

    # database-specific steps ---------------------------------------------------------------
    @abstractmethod
    def renew(
        self, cur: Cursor, leases: Sequence[Lease], now: float, expires: float
    ) -> dict[tuple[str, str], bool]:
        """Extend the leases still held; (job id, token) -> cancel requested, per held one."""

    @abstractmethod
    def complete_batch(
        self, cur: Cursor, chunk: Sequence[Completion], now: float
    ) -> dict[str, bool]:
        """Complete held jobs of distinct ids; job id -> has dependents, per held one."""

    @abstractmethod
    def drop_key_holds(self, cur: Cursor, table: str, holds: Sequence[tuple[str, str]]) -> int:
        """Delete ``(key, job_id)`` rows of a key table; return how many."""

    @abstractmethod
    def lock_keys(self, cur: Cursor, keys: Sequence[str]) -> None:
        """Serialise enqueues of the same unique/idempotency keys (sorted ``keys``)."""

    @abstractmethod
    def tag_filter(self, tag: str) -> tuple[str, list[Any]]:
        """Search clause and parameters: jobs carrying ``tag``."""

    @abstractmethod
    def text_filter(self, text: str) -> tuple[str, list[Any]]:
        """Search clause and parameters: ``text`` in the id, task, queue, failure reason
        or an error message, case-insensitively and literally."""


def escape_like(text: str) -> str:
    """Make ``%``, ``_`` and the escape character itself match literally (``ESCAPE '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
