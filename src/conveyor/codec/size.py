"""How much of a payload is the user's data, for the ``max_payload_bytes`` limit.

A user who passes a 1 MiB string expects a 1 MiB limit to accept it, so the limit
counts the data and not what JSON and Conveyor wrap around it: a string argument
counts its UTF-8 bytes (not its quotes, not its escapes: ``"`` is 1 byte, not 2),
any other argument its JSON text. The brackets and commas of the call, keyword
names and the job's envelope (chain link, conditions) do not count. The whole
encoded payload is bounded separately by ``max_decoded_bytes``, which is also the
cap on inflating a stored frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

__all__ = ["call_data_size", "value_data_size"]


def value_data_size(value: object, encoded: bytes) -> int:
    """Bytes of data in one value given its JSON (a string counts its UTF-8 text)."""
    if isinstance(value, str):
        return _text_size(value)
    return len(encoded)


def call_data_size(
    args: Sequence[object],
    encoded_args: bytes,
    kwargs: Mapping[str, object],
    encoded_kwargs: bytes,
) -> int:
    """Bytes of data in a call, from the JSON of its argument list and keyword dict.

    Subtracts what JSON adds around the arguments (brackets, commas, keyword names,
    a string's quotes and escapes), computed per argument: the bytes are not read again.
    """
    size = len(encoded_args) - 2 - max(len(args) - 1, 0)
    for value in args:
        if isinstance(value, str):
            size += _text_size(value) - _json_size(value)
    if kwargs:
        size += len(encoded_kwargs) - 2 - (len(kwargs) - 1)
        for name, value in kwargs.items():
            size -= _json_size(name) + 1  # "name":
            if isinstance(value, str):
                size += _text_size(value) - _json_size(value)
    return size


def _text_size(text: str) -> int:
    """UTF-8 length of ``text``."""
    return len(text) if text.isascii() else len(text.encode())


def _json_size(text: str) -> int:
    """Length of ``text`` as a JSON string, quotes and escapes included."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2  # printable ASCII without quote or backslash: no escapes
    return len(orjson.dumps(text))
