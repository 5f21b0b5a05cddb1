"""How records (:class:`conveyor.stores.base.Record`) are laid out in Redis, and back.

Each namespace is one hash, ``{prefix}:records:{namespace}``, whose field is the key and
whose value is ``{version}:{expires_at}:{value}`` (``expires_at`` empty when the record
never expires; the value is raw bytes and may contain ``:``). A record that can expire is
also in the sorted set ``{prefix}:record_expiry`` (member ``{namespace}\\0{key}``, score
its expiry) so prune finds expired records without reading every namespace. Expired
records stay until deleted or pruned, so their version still counts when the key is
created again; the logical expiry is judged by the store's clock, never by Redis TTLs.
Namespaces and keys are sent as UTF-8 (``surrogatepass``), so any text without NUL works.
The node registry is kept here too, as the namespace ``node`` (see
:class:`~conveyor.stores.front.StoreFront`).
"""

from __future__ import annotations

from collections.abc import Mapping

from conveyor.stores.base import Record
from conveyor.stores.records import is_live
from conveyor.stores.redis import codec
from conveyor.stores.redis.connection import RedisConnection, guard


def encode(text: str) -> bytes:
    """A namespace or key as the bytes stored in Redis."""
    return text.encode("utf-8", "surrogatepass")


def decode_text(raw: bytes | str) -> str:
    """Inverse of :func:`encode`."""
    return raw if isinstance(raw, str) else raw.decode("utf-8", "surrogatepass")


def _raw(reply: bytes | str) -> bytes:
    """A reply as bytes (the client does not decode responses; typed loosely by redis-py)."""
    return reply if isinstance(reply, bytes) else encode(reply)


def hash_key(prefix: str, namespace: str) -> bytes:
    """The hash that holds the records of ``namespace``."""
    return encode(f"{prefix}:records:") + encode(namespace)


def decode(namespace: str, key: str, packed: bytes) -> Record:
    """A record from its packed hash value."""
    version, expires, value = packed.split(b":", 2)
    return Record(namespace, key, value, int(version), float(expires) if expires else None)


def live(namespace: str, key: str, packed: bytes | str | None, now: float) -> Record | None:
    """The record if it exists and has not expired at ``now``."""
    if packed is None:
        return None
    record = decode(namespace, key, _raw(packed))
    return record if is_live(record.expires_at, now) else None


def live_in(
    namespace: str, fields: Mapping[bytes | str, bytes | str], prefix: str, now: float
) -> list[Record]:
    """The live records of a namespace hash whose key starts with ``prefix``, by key."""
    found = []
    for raw_key, packed in fields.items():
        key = decode_text(raw_key)
        if key.startswith(prefix):
            record = live(namespace, key, packed, now)
            if record is not None:
                found.append(record)
    found.sort(key=lambda r: r.key)
    return found


class RedisRecords(RedisConnection):
    """The records hooks: plain reads, compare-and-set writes in ``records.lua``."""

    def _get_record(self, namespace: str, key: str, now: float) -> Record | None:
        """The live record, or None (expiry judged by the store's clock)."""
        client = self._redis()
        with guard():
            packed = client.hget(hash_key(self.prefix, namespace), encode(key))
        return live(namespace, key, packed, now)

    def _put_record(
        self, proposed: Record, expect_version: int | None, now: float
    ) -> Record | None:
        """Compare-and-set in one script."""
        version = self._run(
            "records",
            [
                "put",
                encode(proposed.namespace),
                encode(proposed.key),
                codec.num(now),
                proposed.value,
                _version_arg(expect_version),
                "" if proposed.expires_at is None else codec.num(proposed.expires_at),
            ],
        )
        if version is None:
            return None
        expiry = None if proposed.expires_at is None else float(proposed.expires_at)
        return Record(proposed.namespace, proposed.key, proposed.value, int(version), expiry)

    def _delete_record(self, namespace: str, key: str, expect_version: int | None) -> bool:
        """Delete the record, live or expired (at ``expect_version`` when given)."""
        args: list[str | bytes] = [
            "delete",
            encode(namespace),
            encode(key),
            _version_arg(expect_version),
        ]
        return bool(int(self._run("records", args)))

    def _list_records(self, namespace: str, prefix: str, now: float) -> list[Record]:
        """Live records of the namespace whose key starts with ``prefix``, by key."""
        client = self._redis()
        with guard():
            fields = client.hgetall(hash_key(self.prefix, namespace))
        return live_in(namespace, fields, prefix, now)


def _version_arg(expect_version: int | None) -> str:
    return "" if expect_version is None else str(expect_version)
