"""Frame layout: the envelope around every stored payload.

::

    offset  size  field
    0       2     magic b"CV"
    2       1     version (1)
    3       1     flags: bit0 = body is zlib-compressed, bit1 = body is encrypted,
                  bit2 = body is zstd-compressed (never with bit0); every other bit
                  must be 0
    4       1     key-id length N (0 exactly when the body is not encrypted)
    5       N     key id, ASCII, ^[A-Za-z0-9_-]{1,32}$
    5+N     ...   body
    end-4   4     CRC32 (big-endian) of every byte before it

The *header* is bytes ``0 .. 5+N``. When the body is encrypted, the AES-GCM
associated data is ``header + caller's aad`` (the job id), so flipping a flag,
swapping the key id or moving the ciphertext to another job fails
authentication. The CRC is checked before any other field is trusted: it is
the cheap corruption check for frames that are not encrypted.
"""

from __future__ import annotations

import re
import zlib
from typing import Final, NamedTuple

from conveyor.errors import CorruptPayload

__all__ = [
    "COMPRESSION_FLAGS",
    "FLAG_COMPRESSED",
    "FLAG_ENCRYPTED",
    "FLAG_ZSTD",
    "MAGIC",
    "VERSION",
    "Frame",
    "build",
    "build_header",
    "parse",
]

MAGIC: Final = b"CV"
VERSION: Final = 1
FLAG_COMPRESSED: Final = 0x01
FLAG_ENCRYPTED: Final = 0x02
FLAG_ZSTD: Final = 0x04
COMPRESSION_FLAGS: Final = FLAG_COMPRESSED | FLAG_ZSTD
_KNOWN_FLAGS: Final = FLAG_COMPRESSED | FLAG_ENCRYPTED | FLAG_ZSTD
_FIXED: Final = 5  # magic + version + flags + key-id length
_CRC: Final = 4
_KEY_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")


class Frame(NamedTuple):
    """A parsed frame; ``header`` is kept as bytes because it is authenticated."""

    flags: int
    key_id: str
    header: bytes
    body: bytes

    @property
    def compressed(self) -> bool:
        """Whether the body (after decryption) is compressed (zlib or zstd)."""
        return bool(self.flags & COMPRESSION_FLAGS)

    @property
    def compression(self) -> str:
        """``"zstd"``, ``"zlib"`` or ``""``."""
        if self.flags & FLAG_ZSTD:
            return "zstd"
        return "zlib" if self.flags & FLAG_COMPRESSED else ""

    @property
    def encrypted(self) -> bool:
        """Whether the body is AES-GCM encrypted under ``key_id``."""
        return bool(self.flags & FLAG_ENCRYPTED)


def build_header(flags: int, key_id: str = "") -> bytes:
    """Encode the header; the key id must be set exactly when the frame is encrypted.

    Raises:
        ValueError: Unknown flag bits, or a key id that does not match the flags
            or the allowed alphabet (a programming error, not bad data).
    """
    if flags & ~_KNOWN_FLAGS or not 0 <= flags <= 0xFF:
        raise ValueError(f"unknown frame flags {flags:#04x}")
    if bool(flags & FLAG_ENCRYPTED) != bool(key_id):
        raise ValueError("a key id is required exactly when the frame is encrypted")
    if key_id and not _KEY_ID.fullmatch(key_id):
        raise ValueError(f"invalid key id {key_id!r}")
    raw_id = key_id.encode("ascii")
    return MAGIC + bytes((VERSION, flags, len(raw_id))) + raw_id


def build(header: bytes, body: bytes) -> bytes:
    """Join header and body and append the CRC32 of both."""
    data = header + body
    return data + zlib.crc32(data).to_bytes(_CRC, "big")


def parse(frame: bytes) -> Frame:
    """Check and split a frame.

    Raises:
        CorruptPayload: Too short, checksum mismatch, not a Conveyor frame,
            unsupported version, unknown flags or an inconsistent key id.
    """
    if len(frame) < _FIXED + _CRC:
        raise CorruptPayload(f"frame is {len(frame)} bytes, shorter than any valid frame")
    data = frame[:-_CRC]
    if zlib.crc32(data) != int.from_bytes(frame[-_CRC:], "big"):
        if not frame.startswith(MAGIC):
            raise CorruptPayload("not a Conveyor frame (bad magic)")
        raise CorruptPayload("frame checksum mismatch; the stored bytes were altered")
    if not data.startswith(MAGIC):
        raise CorruptPayload("not a Conveyor frame (bad magic)")
    version, flags, id_len = data[2], data[3], data[4]
    if version != VERSION:
        raise CorruptPayload(f"unsupported frame version {version}; expected {VERSION}")
    if flags & ~_KNOWN_FLAGS:
        raise CorruptPayload(f"frame has unknown flag bits {flags:#04x}")
    if flags & COMPRESSION_FLAGS == COMPRESSION_FLAGS:
        raise CorruptPayload("frame claims two compressions at once")
    encrypted = bool(flags & FLAG_ENCRYPTED)
    if encrypted != (id_len > 0):
        raise CorruptPayload("frame key id does not match its encryption flag")
    end = _FIXED + id_len
    if len(data) < end:
        raise CorruptPayload("frame is truncated inside its key id")
    key_id = data[_FIXED:end].decode("latin-1")
    if encrypted and not _KEY_ID.fullmatch(key_id):
        raise CorruptPayload("frame key id is malformed")
    return Frame(flags, key_id, data[:end], data[end:])
