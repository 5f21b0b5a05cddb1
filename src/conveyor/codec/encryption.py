"""AES-256-GCM encryption of payload bodies, with a key ring for rotation.

A key ring holds several keys by id; new frames are sealed under the *active*
key and the key id travels in the frame, so frames written before a rotation
still open as long as their key stays in the ring. Key material never appears
in messages or ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from conveyor.errors import ConfigurationError, CorruptPayload, UnknownKey

if TYPE_CHECKING:
    # cryptography costs ~15 MiB of RSS; it is imported only when a key ring is built.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEY_BYTES", "NONCE_BYTES", "TAG_BYTES", "Keyring", "generate_key"]

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
_KEY_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
_ID_RULE: Final = "use 1 to 32 characters from A-Z, a-z, 0-9, '_' and '-'"
_GENERATE: Final = "generate one with conveyor.codec.generate_key()"


def generate_key() -> str:
    """Return a fresh random 256-bit key as URL-safe base64, ready for a key spec."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


class Keyring:
    """AES-256-GCM keys by id; one of them, the active key, seals new frames.

    Args:
        keys: Key id -> 32 raw key bytes.
        active: Id of the key that encrypts new payloads.

    Raises:
        ConfigurationError: Empty ring, malformed id, key not 32 bytes, or
            ``active`` not among the keys.
    """

    __slots__ = ("_active", "_ciphers")

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        if not keys:
            raise ConfigurationError(f"the key ring is empty; {_GENERATE}")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys.items():
            _check_id(key_id)
            if not isinstance(key, bytes | bytearray):
                raise ConfigurationError(f"key {key_id!r} must be bytes, not {type(key).__name__}")
            if len(key) != KEY_BYTES:
                raise ConfigurationError(
                    f"key {key_id!r} is {len(key)} bytes; AES-256-GCM needs exactly "
                    f"{KEY_BYTES}; {_GENERATE}"
                )
            ciphers[key_id] = AESGCM(bytes(key))
        if active not in ciphers:
            raise ConfigurationError(
                f"active key id {active!r} is not in the key ring (ids: {', '.join(ciphers)})"
            )
        self._ciphers = ciphers
        self._active = active

    @classmethod
    def from_string(cls, spec: str) -> Keyring:
        """Parse ``"k2:BASE64,k1:BASE64"``; the first key is the active one.

        Keys are standard or URL-safe base64 of 32 bytes, padding optional.
        Whitespace around entries, ids and keys is ignored, so a spec can be
        wrapped over several lines.

        Raises:
            ConfigurationError: Empty spec, entry without ``:``, malformed or
                duplicate id, invalid base64 or wrong key length. The message
                names the key id or entry number, never the key material.
        """
        if not isinstance(spec, str):
            raise ConfigurationError(f"key spec must be a string, not {type(spec).__name__}")
        entries = [entry.strip() for entry in spec.split(",")]
        entries = [entry for entry in entries if entry]
        if not entries:
            raise ConfigurationError(
                f"the key spec is empty; expected 'ID:BASE64KEY[,ID:BASE64KEY...]'; {_GENERATE}"
            )
        keys: dict[str, bytes] = {}
        for number, entry in enumerate(entries, start=1):
            key_id, sep, material = entry.partition(":")
            key_id = key_id.strip()
            if not sep:
                raise ConfigurationError(
                    f"key spec entry #{number} has no ':'; expected ID:BASE64KEY"
                )
            _check_id(key_id, number)
            if key_id in keys:
                raise ConfigurationError(f"key id {key_id!r} appears twice in the key spec")
            keys[key_id] = _decode_key(key_id, material)
        return cls(keys, next(iter(keys)))

    @property
    def active_id(self) -> str:
        """Id of the key that seals new frames."""
        return self._active

    @property
    def ids(self) -> list[str]:
        """All key ids, in the order given (the active one first when from a spec)."""
        return list(self._ciphers)

    def encrypt(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """Seal ``plaintext`` under the active key.

        Returns:
            ``(key id, nonce + ciphertext + tag)``; the 12-byte nonce is random,
            which is safe for far more than 2**32 frames per key.
        """
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._active].encrypt(nonce, plaintext, aad)
        return self._active, nonce + sealed

    def decrypt(self, key_id: str, body: bytes, aad: bytes) -> bytes:
        """Open a body sealed by :meth:`encrypt` under ``key_id``.

        Raises:
            UnknownKey: ``key_id`` is not in the ring.
            CorruptPayload: The body is too short or fails authentication (wrong
                key, altered bytes, or different associated data).
        """
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKey(key_id)
        if len(body) < NONCE_BYTES + TAG_BYTES:
            raise CorruptPayload("encrypted body is shorter than nonce and tag")
        try:
            return cipher.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)
        except _invalid_tag():
            raise CorruptPayload(
                f"payload failed authentication under key {key_id!r}: wrong key, altered "
                "bytes, or a payload moved from another job"
            ) from None

    def __repr__(self) -> str:
        return f"Keyring(active={self._active!r}, ids={self.ids!r})"


def _check_id(key_id: object, number: int | None = None) -> None:
    """Refuse a malformed key id; long ids are not echoed (they may be key material)."""
    if isinstance(key_id, str) and _KEY_ID.fullmatch(key_id):
        return
    where = f" (entry #{number})" if number is not None else ""
    if isinstance(key_id, str) and len(key_id) <= 32:
        raise ConfigurationError(f"key id {key_id!r}{where} is invalid; {_ID_RULE}")
    if isinstance(key_id, str):
        raise ConfigurationError(f"key id{where} is {len(key_id)} characters, too long; {_ID_RULE}")
    raise ConfigurationError(f"key id{where} must be a str, not {type(key_id).__name__}")


def _decode_key(key_id: str, material: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not, to exactly 32 bytes."""
    text = "".join(material.split()).rstrip("=")
    text = text.replace("-", "+").replace("_", "/")
    if not text:
        raise ConfigurationError(f"key {key_id!r} is empty; {_GENERATE}")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"key {key_id!r} is not valid base64 (standard or URL-safe alphabet)"
        ) from None
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"key {key_id!r} decodes to {len(key)} bytes; AES-256-GCM needs exactly "
            f"{KEY_BYTES}; {_GENERATE}"
        )
    return key


def _invalid_tag() -> type[Exception]:
    """cryptography's InvalidTag (imported on first decrypt, like the cipher itself)."""
    from cryptography.exceptions import InvalidTag

    return InvalidTag
