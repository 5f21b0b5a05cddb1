"""Records in the file store: one file per ``(namespace, key)``.

A record lives at ``records/<sha256(namespace)>/<sha256(key)>`` (see
:func:`conveyor.stores.file.layout.record_path`), so any namespace or key (any Unicode
but NUL) maps to a safe file name; the namespace, key, version, expiry and value are kept
inside the file (see :func:`encode_record`). An expired record's file stays until it is
deleted, re-created (its version counts) or pruned.

Writes (:func:`put`, :func:`delete`, :func:`drop_expired`) run inside a
:class:`~conveyor.stores.file.transaction.Transaction` under the store's exclusive lock
and are committed through its journal, so each compare-and-set is atomic across
processes and durable when it returns. Reads (:func:`get`, :func:`list_live`) take no
lock, like the driver's other reads: a record file only ever appears complete, by
``rename``, and a write that returned is already in place. A writer that died mid-commit
leaves its record old (a put or delete touches one file; a prune only removes records
that already read as absent) until the next writer replays the journal, which it does
before judging any compare-and-set.
"""

from __future__ import annotations

import json
from typing import Any

from conveyor.errors import StoreError
from conveyor.stores.base import Record
from conveyor.stores.file import layout
from conveyor.stores.file.journal import Directory
from conveyor.stores.file.transaction import Transaction
from conveyor.stores.records import compare_and_set, deletable, is_live, live

FORMAT = 1
"""Version of the record file format (the ``"v"`` field of its header)."""


def encode_record(record: Record) -> bytes:
    """One JSON header line (ASCII, so never a raw newline), then the value's raw bytes."""
    header = {
        "v": FORMAT,
        "namespace": record.namespace,
        "key": record.key,
        "version": record.version,
        "expires_at": record.expires_at,
    }
    return (
        json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode() + b"\n" + record.value
    )


def decode_record(data: bytes) -> Record:
    """Inverse of :func:`encode_record`."""
    head, newline, value = data.partition(b"\n")
    if not newline:
        raise StoreError("a record file has no header line")
    header: dict[str, Any] = json.loads(head)
    if header.get("v") != FORMAT:
        raise StoreError(f"record file format {header.get('v')!r} is unknown (upgrade Conveyor)")
    expires = header["expires_at"]
    return Record(
        namespace=str(header["namespace"]),
        key=str(header["key"]),
        value=value,
        version=int(header["version"]),
        expires_at=None if expires is None else float(expires),
    )


def _decode_at(data: bytes | None, namespace: str, key: str) -> Record | None:
    """The record in a file read for ``(namespace, key)``, or None if there is no file."""
    if data is None:
        return None
    record = decode_record(data)
    if record.namespace != namespace or record.key != key:
        raise StoreError(
            f"record file {layout.record_path(namespace, key)} holds "
            f"{record.namespace!r}/{record.key!r}, not {namespace!r}/{key!r}"
        )
    return record


# reads (no lock) -------------------------------------------------------------------------
def get(directory: Directory, namespace: str, key: str, now: float) -> Record | None:
    """The live record, or None."""
    data = directory.read(layout.record_path(namespace, key))
    return live(_decode_at(data, namespace, key), now)


def list_live(directory: Directory, namespace: str, prefix: str, now: float) -> list[Record]:
    """Live records of ``namespace`` whose key starts with ``prefix`` (literally), by key."""
    folder = layout.records_dir(namespace)
    found: list[Record] = []
    for name in directory.listdir(folder):
        if not layout.is_record_name(name):
            continue
        data = directory.read(f"{folder}/{name}")  # None: deleted since the listing
        if data is None:
            continue
        record = decode_record(data)
        if (
            record.namespace == namespace
            and record.key.startswith(prefix)
            and is_live(record.expires_at, now)
        ):
            found.append(record)
    found.sort(key=lambda r: r.key)
    return found


# writes (in a transaction, under the lock) -----------------------------------------------
def put(tx: Transaction, proposed: Record, expect_version: int | None, now: float) -> Record | None:
    """Compare-and-set (see :meth:`conveyor.stores.base.Store.put_record`)."""
    rel = layout.record_path(proposed.namespace, proposed.key)
    stored = _decode_at(tx.read_bytes(rel), proposed.namespace, proposed.key)
    record = compare_and_set(stored, proposed, expect_version, now)
    if record is not None:
        tx.write_bytes(rel, encode_record(record))
    return record


def delete(tx: Transaction, namespace: str, key: str, expect_version: int | None) -> bool:
    """Delete the record, live or expired (only at ``expect_version`` when given)."""
    rel = layout.record_path(namespace, key)
    if not deletable(_decode_at(tx.read_bytes(rel), namespace, key), expect_version):
        return False
    tx.remove(rel)
    return True


def drop_expired(tx: Transaction, now: float) -> int:
    """Delete every expired record (for prune); return how many.

    Namespace directories are left in place, even empty: removing one could race with a
    writer in another process that already created it for a new record."""
    dropped = 0
    for folder in tx.dir.listdir(layout.RECORDS_DIR):
        if not layout.is_record_name(folder):
            continue
        for name in tx.dir.listdir(f"{layout.RECORDS_DIR}/{folder}"):
            if not layout.is_record_name(name):
                continue
            rel = f"{layout.RECORDS_DIR}/{folder}/{name}"
            data = tx.read_bytes(rel)
            if data is not None and not is_live(decode_record(data).expires_at, now):
                tx.remove(rel)
                dropped += 1
    return dropped
