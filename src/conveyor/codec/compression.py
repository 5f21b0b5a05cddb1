"""zlib compression with a bounded inflate.

Frames come from storage, which an attacker (or a bug) may have written, so
inflating never produces more than the caller's limit: a small "zip bomb" body
that would expand to gigabytes is refused after ``limit + 1`` bytes.
"""

from __future__ import annotations

import zlib

from conveyor.errors import CorruptPayload

__all__ = ["compress", "decompress"]


def compress(data: bytes, level: int = 1) -> bytes:
    """Deflate ``data`` in the zlib format; level 1 favours enqueue latency over ratio."""
    return zlib.compress(data, level)


def decompress(data: bytes, limit: int) -> bytes:
    """Inflate a zlib stream, producing at most ``limit`` bytes.

    Raises:
        CorruptPayload: The stream is invalid, truncated, followed by extra bytes,
            or inflates past ``limit``.
    """
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CorruptPayload(f"compressed body is invalid: {exc}") from None
    if len(out) > limit:
        raise CorruptPayload(f"compressed body inflates past {limit} bytes; refused")
    if not inflater.eof:
        raise CorruptPayload("compressed body is truncated")
    if inflater.unused_data:
        raise CorruptPayload("compressed body is followed by unexpected bytes")
    return out
