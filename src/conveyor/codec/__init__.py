"""Payload codec: job arguments <-> stored frames.

Encoding is ``dumps`` (validated JSON), the data limit (``max_payload_bytes``, on
the user's data; see :mod:`conveyor.codec.size`), then ``seal`` (the cap on the
whole payload, optional zstd/zlib, optional AES-256-GCM, framed with a CRC; see
:mod:`conveyor.codec.frame`).
Decoding is the inverse and turns every failure into :class:`CorruptPayload`,
so a damaged or foreign row quarantines its job instead of crashing a worker.
"""

from __future__ import annotations

from conveyor.codec import frame as _frame
from conveyor.codec.compression import (
    METHODS,
    compress,
    decompress,
    zstd_compress,
    zstd_decompress,
)
from conveyor.codec.encryption import Keyring, generate_key
from conveyor.codec.serializers import MAX_DEPTH_LIMIT, dumps, loads
from conveyor.codec.size import value_data_size
from conveyor.errors import ConfigurationError, CorruptPayload, PayloadTooLarge, UnknownKey

__all__ = ["Codec", "Keyring", "generate_key"]

#: Frames may inflate this far past ``max_decoded_bytes`` so that lowering the
#: cap a little does not quarantine jobs already stored under the old one.
INFLATE_SLACK = 64 * 1024

#: ``max_decoded_bytes`` when not given: this many times ``max_payload_bytes``,
#: room for the JSON around the data (quotes, brackets, keyword names, envelope).
DECODED_FACTOR = 4


class Codec:
    """Turns job arguments into frames and back.

    Args:
        keyring: Encrypts new frames under its active key; ``None`` writes
            plaintext frames (encrypted frames then fail with ``UnknownKey``).
        compress_above: Bodies longer than this many bytes are compressed (kept
            only when that makes them smaller).
        max_payload_bytes: Most bytes of user data accepted by :meth:`encode` and
            :meth:`check_size`: the JSON of the value(s), a string without its
            quotes (see :mod:`conveyor.codec.size`). Default 1 MiB.
        max_decoded_bytes: Most bytes of a whole serialized payload: :meth:`seal`
            refuses more, and :meth:`open` refuses a frame that inflates past it
            (a "zip bomb"). Default ``None``: four times ``max_payload_bytes``.
        compression_level: level 0-9 (zlib) or 1-9 (zstd); 1 keeps enqueue fast.
        compression: ``"zstd"`` (default: three times faster to decompress) or
            ``"zlib"`` (stdlib only). Frames of either kind are always readable.
        max_depth: Deepest nesting of lists/dicts accepted by :meth:`dumps`.

    Raises:
        ConfigurationError: A setting is out of range.
    """

    __slots__ = (
        "_compress_above",
        "_decoded_limit",
        "_keyring",
        "_level",
        "_limit",
        "_max_depth",
        "_method",
    )

    def __init__(
        self,
        *,
        keyring: Keyring | None = None,
        compress_above: int = 1024,
        max_payload_bytes: int = 1 << 20,
        max_decoded_bytes: int | None = None,
        compression_level: int = 1,
        max_depth: int = 64,
        compression: str = "zstd",
    ) -> None:
        if keyring is not None and not isinstance(keyring, Keyring):
            raise ConfigurationError(
                f"keyring must be a Keyring or None, not {type(keyring).__name__}"
            )
        self._keyring = keyring
        self._compress_above = _setting("compress_above", compress_above, 0, 1 << 62)
        self._limit = _setting("max_payload_bytes", max_payload_bytes, 1, (1 << 31) - 1)
        if max_decoded_bytes is None:
            max_decoded_bytes = min(DECODED_FACTOR * self._limit, (1 << 31) - 1)
        self._decoded_limit = _setting(
            "max_decoded_bytes", max_decoded_bytes, self._limit, (1 << 31) - 1
        )
        self._level = _setting("compression_level", compression_level, 0, 9)
        self._max_depth = _setting("max_depth", max_depth, 1, MAX_DEPTH_LIMIT)
        if compression not in METHODS:
            raise ConfigurationError(
                f"compression must be one of {', '.join(METHODS)}, got {compression!r}"
            )
        self._method = compression

    @property
    def max_payload_bytes(self) -> int:
        """Most bytes of user data a payload may carry."""
        return self._limit

    @property
    def max_decoded_bytes(self) -> int:
        """Most bytes a whole payload may have, serialized or inflated."""
        return self._decoded_limit

    @property
    def encrypted(self) -> bool:
        """Whether new frames are encrypted."""
        return self._keyring is not None

    def describe(self) -> dict[str, str]:
        """Human-readable settings for ``conveyor info`` and logs (no key material)."""
        if self._keyring is None:
            encryption = "off"
        else:
            ids = ",".join(self._keyring.ids)
            encryption = f"aes-256-gcm (active key {self._keyring.active_id}; keys {ids})"
        return {
            "serializer": "json",
            "compression": f"{self._method}>{self._compress_above}B",
            "encryption": encryption,
            "limits": (
                f"max_payload_bytes={self._limit} (data), "
                f"max_decoded_bytes={self._decoded_limit} (whole payload)"
            ),
        }

    def dumps(self, value: object, *, what: str = "args") -> bytes:
        """Validate and serialize ``value`` to compact JSON.

        Args:
            value: The arguments.
            what: Root of error paths, e.g. ``"args"`` gives ``args[1].items[3]``.

        Raises:
            SerializationError: A value JSON cannot carry faithfully.
            PayloadTooComplex: Nesting deeper than ``max_depth``.
        """
        return dumps(value, what=what, max_depth=self._max_depth)

    def loads(self, data: bytes) -> object:
        """Parse JSON bytes.

        Raises:
            CorruptPayload: Not valid JSON.
        """
        return loads(data)

    def check_size(self, size: int, *, what: str = "arguments") -> None:
        """Refuse ``size`` bytes of user data above ``max_payload_bytes`` (exactly at it
        is fine).

        Raises:
            PayloadTooLarge: Naming ``what``, the size and the setting to raise.
        """
        if size > self._limit:
            raise PayloadTooLarge(size, self._limit, what=what)

    def seal(self, data: bytes, *, aad: bytes = b"") -> bytes:
        """Wrap serialized bytes in a frame: compress, encrypt, add the checksum.

        Args:
            data: Serialized payload.
            aad: Context the frame is bound to (the job id); :meth:`open` must be
                given the same bytes. Only enforced when encrypting.

        Raises:
            PayloadTooLarge: ``len(data)`` is above ``max_decoded_bytes`` (the user's
                data is checked before, by :meth:`check_size`).
        """
        size = len(data)
        if size > self._decoded_limit:
            raise PayloadTooLarge(
                size, self._decoded_limit, what="encoded payload", setting="max_decoded_bytes"
            )
        flags = 0
        body = data
        if size > self._compress_above:
            zstd = self._method == "zstd"
            packed = (
                zstd_compress(body, max(self._level, 1)) if zstd else compress(body, self._level)
            )
            if len(packed) < size:
                body = packed
                flags |= _frame.FLAG_ZSTD if zstd else _frame.FLAG_COMPRESSED
        if self._keyring is None:
            return _frame.build(_frame.build_header(flags), body)
        flags |= _frame.FLAG_ENCRYPTED
        header = _frame.build_header(flags, self._keyring.active_id)
        _, body = self._keyring.encrypt(body, header + aad)
        return _frame.build(header, body)

    def open(self, frame: bytes, *, aad: bytes = b"") -> bytes:
        """Check and unwrap a frame made by :meth:`seal`.

        Raises:
            UnknownKey: Encrypted under a key id this codec does not have.
            CorruptPayload: Anything else wrong with the frame; no other
                exception type escapes.
        """
        try:
            return self._open(frame, aad)
        except CorruptPayload:
            raise
        except Exception as exc:
            raise CorruptPayload(f"frame cannot be opened: {type(exc).__name__}: {exc}") from exc

    def encode(self, value: object, *, aad: bytes = b"", what: str = "args") -> bytes:
        """Serialize ``value``, check its size and seal it; see :meth:`dumps`,
        :meth:`check_size` and :meth:`seal`."""
        data = self.dumps(value, what=what)
        self.check_size(value_data_size(value, data), what=what)
        return self.seal(data, aad=aad)

    def decode(self, frame: bytes, *, aad: bytes = b"") -> object:
        """Open and parse a frame; see :meth:`open` and :meth:`loads`."""
        return self.loads(self.open(frame, aad=aad))

    def _open(self, frame: bytes, aad: bytes) -> bytes:
        """Body of :meth:`open`, free to raise anything."""
        if not isinstance(frame, bytes | bytearray | memoryview):
            raise CorruptPayload(f"frame must be bytes, not {type(frame).__name__}")
        parsed = _frame.parse(bytes(frame))
        body = parsed.body
        if parsed.encrypted:
            if self._keyring is None:
                raise UnknownKey(parsed.key_id)
            body = self._keyring.decrypt(parsed.key_id, body, parsed.header + bytes(aad))
        if parsed.compressed:
            inflate = zstd_decompress if parsed.compression == "zstd" else decompress
            body = inflate(body, self._decoded_limit + INFLATE_SLACK)
        return body

    def __repr__(self) -> str:
        return f"Codec({self.describe()!r})"


def _setting(name: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is an int in ``[low, high]``, else ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, got {value}")
    return value
