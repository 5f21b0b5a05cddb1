"""Shared rules of the records primitive (see :class:`conveyor.stores.base.Record`).

Drivers call :func:`check_record` at the boundary and :func:`is_live` to judge expiry,
so every driver refuses the same input with the same message. :class:`RecordTable` is
the in-memory table the memory store (and any driver that holds records in a Python
dict under its own lock) uses.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from conveyor.errors import InvalidOption
from conveyor.stores.base import RECORD_VALUE_MAX, Record

NAME_MAX = 512
"""Longest namespace or key, in characters."""


def check_record(
    namespace: str,
    key: str,
    value: bytes | None = None,
    *,
    expect_version: int | None = None,
    expires_at: float | None = None,
) -> None:
    """Refuse malformed record arguments with a message naming the field.

    Raises:
        InvalidOption: an empty or over-long namespace/key, a value that is not bytes or
            is larger than :data:`RECORD_VALUE_MAX`, a bad version or expiry.
    """
    for field, text in (("namespace", namespace), ("key", key)):
        if not isinstance(text, str) or not text or len(text) > NAME_MAX or "\0" in text:
            raise InvalidOption(
                field, f"must be a non-empty string of at most {NAME_MAX} characters without NUL"
            )
    if value is not None:
        if not isinstance(value, bytes):
            raise InvalidOption("value", f"must be bytes, not {type(value).__name__}")
        if len(value) > RECORD_VALUE_MAX:
            raise InvalidOption("value", f"is {len(value)} bytes; the limit is {RECORD_VALUE_MAX}")
    bad_version = isinstance(expect_version, bool) or not isinstance(expect_version, int)
    if expect_version is not None and (bad_version or expect_version < 1):
        raise InvalidOption("expect_version", f"must be a positive integer, not {expect_version!r}")
    if expires_at is not None and (
        isinstance(expires_at, bool)
        or not isinstance(expires_at, int | float)
        or not math.isfinite(expires_at)
    ):
        raise InvalidOption("expires_at", f"must be a finite epoch time, not {expires_at!r}")


def is_live(expires_at: float | None, now: float) -> bool:
    """True while a record with this expiry still counts (it expires *at* ``expires_at``)."""
    return expires_at is None or expires_at > now


def live(row: Record | None, now: float) -> Record | None:
    """``row`` while it counts, else None."""
    return row if row is not None and is_live(row.expires_at, now) else None


def compare_and_set(
    stored: Record | None, proposed: Record, expect_version: int | None, now: float
) -> Record | None:
    """``proposed`` as it is to be written over ``stored`` (live or expired), or None on
    conflict: with no ``expect_version`` only when no live record exists, else only over
    that version. The version (``proposed``'s is ignored) counts on from the stored
    record, expired or not."""
    current = live(stored, now)
    if expect_version is None and current is not None:
        return None
    if expect_version is not None and (current is None or current.version != expect_version):
        return None
    version = (stored.version if stored is not None else 0) + 1
    expiry = None if proposed.expires_at is None else float(proposed.expires_at)
    return dataclasses.replace(proposed, version=version, expires_at=expiry)


def deletable(stored: Record | None, expect_version: int | None) -> bool:
    """True when ``stored`` exists and is at ``expect_version`` (when given)."""
    return stored is not None and (expect_version is None or stored.version == expect_version)


@dataclass(slots=True)
class RecordTable:
    """Records in a dict, for drivers that serialise access with their own lock."""

    rows: dict[tuple[str, str], Record]

    @classmethod
    def empty(cls) -> RecordTable:
        """A table without records."""
        return cls({})

    def get(self, namespace: str, key: str, now: float) -> Record | None:
        """The live record, or None."""
        return live(self.rows.get((namespace, key)), now)

    def put(self, proposed: Record, expect_version: int | None, now: float) -> Record | None:
        """Compare-and-set (see :meth:`conveyor.stores.base.Store.put_record`)."""
        where = (proposed.namespace, proposed.key)
        record = compare_and_set(self.rows.get(where), proposed, expect_version, now)
        if record is not None:
            self.rows[where] = record
        return record

    def delete(self, namespace: str, key: str, expect_version: int | None) -> bool:
        """Delete (only at ``expect_version`` when given)."""
        if not deletable(self.rows.get((namespace, key)), expect_version):
            return False
        del self.rows[(namespace, key)]
        return True

    def list(self, namespace: str, prefix: str, now: float) -> list[Record]:
        """Live records of the namespace whose key starts with ``prefix``, by key."""
        return sorted(
            (
                r
                for (ns, key), r in self.rows.items()
                if ns == namespace and key.startswith(prefix) and is_live(r.expires_at, now)
            ),
            key=lambda r: r.key,
        )

    def drop_expired(self, now: float) -> int:
        """Delete expired records; return how many."""
        doomed = [k for k, r in self.rows.items() if not is_live(r.expires_at, now)]
        for k in doomed:
            del self.rows[k]
        return len(doomed)
