"""Tests for the payload codec: serializer rules, frame integrity, encryption, keys."""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime
import decimal
import enum
import json
import os
import pickle
import random
import tracemalloc
import uuid
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.codec import Codec, Keyring, generate_key
from conveyor.codec import frame as frame_mod
from conveyor.codec.compression import decompress
from conveyor.codec.serializers import MAX_DEPTH_LIMIT
from conveyor.errors import (
    ConfigurationError,
    CorruptPayload,
    PayloadTooComplex,
    PayloadTooLarge,
    SerializationError,
    UnknownKey,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
KEY_C = bytes(range(200, 232))
B64_A = base64.b64encode(KEY_A).decode()
B64_B = base64.urlsafe_b64encode(KEY_B).decode()

SEALED_KEYRING = Keyring({"k1": KEY_A}, "k1")
PLAIN = Codec()
SEALED = Codec(keyring=SEALED_KEYRING)
AAD = b"job-0001"
SMALL_VALUE = {"user": {"name": "ada", "id": 7}, "items": [1, 2.5, None, True, "x"]}
BIG_VALUE = {"rows": [{"id": i, "name": f"row {i}"} for i in range(200)]}

PLAIN_FRAMES = [PLAIN.encode(SMALL_VALUE, aad=AAD), PLAIN.encode(BIG_VALUE, aad=AAD)]
SEALED_FRAMES = [SEALED.encode(SMALL_VALUE, aad=AAD), SEALED.encode(BIG_VALUE, aad=AAD)]
ALL_FRAMES = PLAIN_FRAMES + SEALED_FRAMES

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flags_of(frame: bytes) -> int:
    return frame[3]


def with_crc(data: bytes) -> bytes:
    """Append a valid CRC so that a test reaches the checks behind it."""
    return data + zlib.crc32(data).to_bytes(4, "big")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -1,
        1.5,
        -0.25,
        "",
        "plain",
        [],
        {},
        "héllo wörld ✓ 日本語",
        "emoji 🎉👩‍👩‍👧 and flags 🇫🇷",
        "RTL: שלום עולם مرحبا بالعالم",
        2**53 + 1,
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        [1, [2, [3, [4, {"deep": [None, False, {"x": "y"}]}]]]],
        {"user": {"name": "ada", "tags": ["a", "b"]}, "n": [1e300, -1e-300, 0.1]},
        {"weird key": 1, "": 2, "with\nnewline": 3, "ключ": 4},
    ],
)
@pytest.mark.parametrize("codec", [PLAIN, SEALED], ids=["plain", "encrypted"])
def test_round_trip(codec: Codec, value: object) -> None:
    assert codec.decode(codec.encode(value, aad=AAD), aad=AAD) == value


TEXT_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(TEXT_CHARS),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(TEXT_CHARS), children, max_size=5)
    ),
    max_leaves=30,
)


@FUZZ
@given(value=JSON_VALUES)
def test_round_trip_any_json_value(value: object) -> None:
    assert SEALED.decode(SEALED.encode(value, aad=AAD), aad=AAD) == value
    assert PLAIN.loads(PLAIN.dumps(value)) == value


class Colour(enum.IntEnum):
    RED = 1


class Mode(enum.StrEnum):
    FAST = "fast"


class Ratio(float):
    pass


Point = collections.namedtuple("Point", "x y")


def test_supported_non_json_types_become_json_values() -> None:
    moment = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)
    offset = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    value = [
        (1, 2),
        moment,
        datetime.datetime(2024, 1, 1, tzinfo=offset),
        datetime.date(2024, 2, 29),
        uuid.UUID(int=1),
        decimal.Decimal("1.10"),
        Colour.RED,
        Mode.FAST,
        Ratio(0.5),
        Point(1, 2),
        collections.OrderedDict(a=1),
    ]
    assert PLAIN.loads(PLAIN.dumps(value)) == [
        [1, 2],
        "2024-05-06T07:08:09.123456+00:00",
        "2024-01-01T00:00:00+05:30",
        "2024-02-29",
        "00000000-0000-0000-0000-000000000001",
        "1.10",
        1,
        "fast",
        0.5,
        [1, 2],
        {"a": 1},
    ]


def test_dumps_is_compact() -> None:
    assert PLAIN.dumps({"a": [1, 2], "b": None}) == b'{"a":[1,2],"b":null}'


# --------------------------------------------------------------------------- rejections


@dataclasses.dataclass
class User:
    name: str


class Plain(enum.Enum):
    A = "a"


NAIVE = "naive datetime; attach a timezone (e.g. datetime.now(timezone.utc))"
INT_RANGE = "integer out of the 64-bit range; pass it as a string"


@pytest.mark.parametrize(
    ("value", "what", "path", "reason"),
    [
        ((1, {"items": [0, 0, 0, {1, 2}]}), "args", "args[1].items[3]", "convert to a list"),
        ({"user": {"name": b"ada"}}, "kwargs", "kwargs.user.name", "encode bytes as base64"),
        ({"user": {"weird key": float("nan")}}, "kwargs", 'kwargs.user["weird key"]', "nan"),
        ([1, float("inf")], "args", "args[1]", "inf"),
        ([float("-inf")], "args", "args[0]", "not finite"),
        ([2**64], "args", "args[0]", INT_RANGE),
        ([-(2**63) - 1], "args", "args[0]", INT_RANGE),
        ({"when": datetime.datetime(2024, 1, 1)}, "kwargs", "kwargs.when", NAIVE),
        (["ok", "a\x00b"], "args", "args[1]", "NUL character"),
        ({"s": "x\ud800y"}, "kwargs", "kwargs.s", "lone surrogate (U+D800)"),
        ({"a": {3: "x"}}, "kwargs", "kwargs.a", "dict key 3 (int) is not a string"),
        ({"a": {"b\x00": 1}}, "kwargs", "kwargs.a", "dict key 'b\\x00': string contains a NUL"),
        ({Mode.FAST: 1}, "kwargs", "kwargs", "not a plain str"),
        ([object()], "args", "args[0]", "object is not JSON-serializable"),
        ([lambda: 1], "args", "args[0]", "pass data, not code"),
        ([User("ada")], "args", "args[0]", "dataclasses.asdict"),
        ([Plain.A], "args", "args[0]", "member.value"),
        ([frozenset()], "args", "args[0]", "convert to a list"),
        ([bytearray(b"x")], "args", "args[0]", "base64"),
        ([datetime.time(1, 2)], "args", "args[0]", "isoformat"),
        ([[[], [{"k": [1, 2, {5}]}]]], "args", "args[0][1][0].k[2]", "set"),
        ({"2x": {"ok": [None, set()]}}, "kwargs", 'kwargs["2x"].ok[1]', "set"),
    ],
)
def test_rejections_name_the_path(value: object, what: str, path: str, reason: str) -> None:
    with pytest.raises(SerializationError) as info:
        PLAIN.dumps(value, what=what)
    assert info.value.path == path
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{path}: ")


def test_rejected_type_is_named() -> None:
    with pytest.raises(SerializationError, match=r"args\[0\]: set is not JSON-serializable"):
        PLAIN.dumps([{1}])
    with pytest.raises(SerializationError, match=r"test_codec\.User is not JSON-serializable"):
        PLAIN.dumps([User("ada")])


def test_rejection_of_repeated_object_points_at_first_occurrence() -> None:
    bad = {1}
    with pytest.raises(SerializationError) as info:
        PLAIN.dumps([0, bad, 2, bad])
    assert info.value.path == "args[1]"


def test_encode_validates_before_sealing() -> None:
    with pytest.raises(SerializationError, match=r"^kwargs\.x: "):
        SEALED.encode({"x": float("nan")}, what="kwargs")


def test_long_keys_are_shortened_in_paths() -> None:
    key = "k" * 500
    with pytest.raises(SerializationError) as info:
        PLAIN.dumps({key: {1}}, what="kwargs")
    assert len(info.value.path) < 60
    assert info.value.path.startswith('kwargs["kkk')


def nested_lists(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_very_deep_nesting_is_too_complex_not_recursion_error() -> None:
    with pytest.raises(PayloadTooComplex) as info:
        PLAIN.dumps([nested_lists(100_000)])
    assert info.value.limit == 64
    assert info.value.path == "args" + "[0]" * 64


def test_depth_limit_is_exact() -> None:
    codec = Codec(max_depth=3)
    assert codec.dumps([[[1]]]) == b"[[[1]]]"
    assert codec.dumps({"a": {"b": [1]}}) == b'{"a":{"b":[1]}}'
    with pytest.raises(PayloadTooComplex) as info:
        codec.dumps([[[[1]]]])
    assert info.value.path == "args[0][0][0]"
    with pytest.raises(PayloadTooComplex) as info:
        codec.dumps({"a": {"b": {"c": {}}}}, what="kwargs")
    assert info.value.path == "kwargs.a.b.c"


def test_cycle_is_too_complex() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(PayloadTooComplex):
        PLAIN.dumps(loop)


def test_largest_depth_setting_is_encodable() -> None:
    codec = Codec(max_depth=MAX_DEPTH_LIMIT)
    value = nested_lists(MAX_DEPTH_LIMIT)
    assert codec.loads(codec.dumps(value)) == value
    with pytest.raises(PayloadTooComplex):
        codec.dumps([value])


@pytest.mark.parametrize("data", [b"", b"{", b"nan", b"\xff\xfe", b'{"a":1}x'])
def test_loads_invalid_json_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptPayload):
        PLAIN.loads(data)


# --------------------------------------------------------------------------- size and compression


def test_size_limit_is_inclusive() -> None:
    codec = Codec(max_payload_bytes=100, max_decoded_bytes=200)
    assert codec.decode(codec.encode("x" * 100)) == "x" * 100
    with pytest.raises(PayloadTooLarge) as info:
        codec.encode("x" * 101)
    assert (info.value.size, info.value.limit) == (101, 100)


def test_seal_caps_the_whole_payload_at_max_decoded_bytes() -> None:
    codec = Codec(max_payload_bytes=100, max_decoded_bytes=200)
    at_cap = b"x" * 200
    assert codec.open(codec.seal(at_cap)) == at_cap
    with pytest.raises(PayloadTooLarge, match="max_decoded_bytes") as info:
        codec.seal(b"x" * 201)
    assert (info.value.size, info.value.limit) == (201, 200)


def test_size_limit_applies_to_encoded_arguments() -> None:
    codec = Codec(max_payload_bytes=10)
    assert codec.decode(codec.encode(["12345"])) == ["12345"]  # '["12345"]' is 9 bytes
    with pytest.raises(PayloadTooLarge):
        codec.encode(["1234567890"])


def test_compression_above_threshold() -> None:
    data = b'{"text":"' + b"abc" * 1000 + b'"}'
    sealed = PLAIN.seal(data)
    assert flags_of(sealed) & frame_mod.COMPRESSION_FLAGS
    assert len(sealed) < len(data) // 10
    assert PLAIN.open(sealed) == data


def test_no_compression_at_or_below_threshold() -> None:
    codec = Codec(compress_above=64)
    for data in (b"a" * 10, b"a" * 64):
        sealed = codec.seal(data)
        assert flags_of(sealed) & frame_mod.COMPRESSION_FLAGS == 0
        assert codec.open(sealed) == data
    assert flags_of(codec.seal(b"a" * 65)) & frame_mod.COMPRESSION_FLAGS


def test_incompressible_body_is_stored_raw() -> None:
    data = random.Random(1).randbytes(4096)
    sealed = PLAIN.seal(data)
    assert flags_of(sealed) & frame_mod.COMPRESSION_FLAGS == 0
    assert PLAIN.open(sealed) == data


def test_compression_level_is_used() -> None:
    rng = random.Random(2)
    records = [{"id": i, "name": rng.choice(["alpha", "beta", "gamma"]) * 3} for i in range(5000)]
    data = json.dumps(records).encode()
    for method in ("zstd", "zlib"):
        fast = Codec(compression_level=1, compression=method).seal(data)
        best = Codec(compression_level=9, compression=method).seal(data)
        assert len(best) < len(fast)
        assert Codec().open(best) == data


def test_one_mebibyte_payload_with_compression_and_encryption() -> None:
    rng = random.Random(3)
    words = ["conveyor", "job", "lease", "retry", "queue", "worker", "ünïcode", "🎉"]
    text = " ".join(rng.choice(words) for _ in range(200_000))
    encoded = text.encode()[: 1 << 20].decode(errors="ignore")
    value = encoded + "x" * ((1 << 20) - len(encoded.encode()))
    assert len(SEALED.dumps(value)) == (1 << 20) + 2  # the quotes are not data
    sealed = SEALED.encode(value, aad=AAD)
    assert flags_of(sealed) == frame_mod.FLAG_ZSTD | frame_mod.FLAG_ENCRYPTED
    assert len(sealed) < 1 << 19
    assert SEALED.decode(sealed, aad=AAD) == value
    with pytest.raises(PayloadTooLarge):
        SEALED.encode(value + "y", aad=AAD)


# --------------------------------------------------------------------------- frame layout


def test_plain_frame_layout() -> None:
    sealed = PLAIN.seal(b"[1]")
    assert sealed == with_crc(b"CV\x01\x00\x00[1]")


def test_encrypted_frame_layout() -> None:
    sealed = SEALED.seal(b"[1]", aad=AAD)
    assert sealed[:7] == b"CV\x01\x02\x02k1"
    assert len(sealed) == 7 + 12 + 3 + 16 + 4
    assert sealed == with_crc(sealed[:-4])


def test_header_is_authenticated_even_with_valid_crc() -> None:
    sealed = SEALED.seal(b"x" * 5000, aad=AAD)
    assert flags_of(sealed) == frame_mod.FLAG_ZSTD | frame_mod.FLAG_ENCRYPTED
    stripped = sealed[:3] + b"\x02" + sealed[4:-4]  # claim "not compressed", fix the CRC
    with pytest.raises(CorruptPayload, match="authentication"):
        SEALED.open(with_crc(stripped), aad=AAD)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"XY\x01\x00\x00[1]", "bad magic"),
        (b"CV\x02\x00\x00[1]", "version 2"),
        (b"CV\x01\x08\x00[1]", "unknown flag bits"),
        (b"CV\x01\x05\x00[1]", "two compressions"),
        (b"CV\x01\x04\x00[1]", "compressed body is invalid"),
        (b"CV\x01\x80\x00[1]", "unknown flag bits"),
        (b"CV\x01\x00\x02k1[1]", "key id"),
        (b"CV\x01\x02\x00[1]", "key id"),
        (b"CV\x01\x02\x09k1", "truncated"),
        (b"CV\x01\x02\x02k.[1]", "malformed"),
        (b"CV\x01\x01\x00[1]", "compressed body is invalid"),
        (b"CV\x01\x01\x00" + zlib.compress(b"[1]")[:-2], "truncated"),
        (b"CV\x01\x01\x00" + zlib.compress(b"[1]") + b"!", "unexpected bytes"),
    ],
)
def test_malformed_frames_with_valid_crc(raw: bytes, message: str) -> None:
    with pytest.raises(CorruptPayload, match=message):
        SEALED.open(with_crc(raw), aad=AAD)


def test_bad_crc_is_detected_before_anything_else() -> None:
    sealed = bytearray(PLAIN.seal(b"[1]"))
    sealed[-1] ^= 1
    with pytest.raises(CorruptPayload, match="checksum"):
        PLAIN.open(bytes(sealed))


def test_valid_frame_with_non_json_body_fails_decode() -> None:
    sealed = with_crc(b"CV\x01\x00\x00" + pickle.dumps({"a": 1}))
    assert PLAIN.open(sealed).startswith(b"\x80")
    with pytest.raises(CorruptPayload, match="not valid JSON"):
        PLAIN.decode(sealed)


def test_open_accepts_bytes_like_frames() -> None:
    sealed = SEALED.encode([1], aad=AAD)
    views: list[Any] = [memoryview(sealed), bytearray(sealed)]
    for view in views:
        assert SEALED.decode(view, aad=AAD) == [1]


# --------------------------------------------------------------------------- corruption


@FUZZ
@given(index=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
@pytest.mark.parametrize("sealed", ALL_FRAMES)
def test_any_bit_flip_is_detected(sealed: bytes, index: int, bit: int) -> None:
    damaged = bytearray(sealed)
    damaged[index % len(sealed)] ^= 1 << bit
    with pytest.raises(CorruptPayload):
        SEALED.open(bytes(damaged), aad=AAD)


@FUZZ
@given(index=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
@pytest.mark.parametrize("sealed", ALL_FRAMES)
def test_any_byte_replacement_is_detected(sealed: bytes, index: int, byte: int) -> None:
    position = index % len(sealed)
    damaged = bytearray(sealed)
    damaged[position] = byte if byte != sealed[position] else byte ^ 0xFF
    with pytest.raises(CorruptPayload):
        SEALED.open(bytes(damaged), aad=AAD)


@pytest.mark.parametrize("sealed", ALL_FRAMES)
def test_truncation_at_every_length_is_detected(sealed: bytes) -> None:
    for length in range(len(sealed)):
        with pytest.raises(CorruptPayload):
            SEALED.open(sealed[:length], aad=AAD)


@pytest.mark.parametrize("sealed", ALL_FRAMES)
def test_trailing_bytes_are_detected(sealed: bytes) -> None:
    with pytest.raises(CorruptPayload):
        SEALED.open(sealed + b"\x00", aad=AAD)


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"C",
        b"CV",
        pickle.dumps({"args": [1, 2], "kwargs": {}}),
        pickle.dumps(object),
        b'{"args":[1]}',
        os.urandom(64),
        random.Random(4).randbytes(1000),
        "CV\x01\x00\x00[1]",
        None,
        12,
    ],
)
def test_foreign_input_is_corrupt(junk: Any) -> None:
    with pytest.raises(CorruptPayload):
        SEALED.decode(junk, aad=AAD)
    with pytest.raises(CorruptPayload):
        PLAIN.decode(junk)


def test_never_leaks_other_exception_types() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        junk = b"CV\x01" + bytes([rng.randrange(4), rng.randrange(4)]) + rng.randbytes(40)
        junk = with_crc(junk)
        with pytest.raises(CorruptPayload):
            SEALED.decode(junk, aad=AAD)


# --------------------------------------------------------------------------- zip bombs


def bomb_frame(size: int) -> bytes:
    return with_crc(b"CV\x01\x01\x00" + zlib.compress(b"0" * size, 9))


def test_zip_bomb_is_refused() -> None:
    codec = Codec(max_payload_bytes=1024, max_decoded_bytes=4096)
    with pytest.raises(CorruptPayload, match="inflates past"):
        codec.open(bomb_frame(10 << 20))


def test_zip_bomb_inflation_is_bounded_in_memory() -> None:
    sealed = bomb_frame(64 << 20)  # ~64 KiB of body that inflates to 64 MiB
    tracemalloc.start()
    try:
        with pytest.raises(CorruptPayload):
            PLAIN.open(sealed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert PLAIN.max_decoded_bytes == 4 << 20
    assert peak < 3 * (4 << 20)  # bounded by the decoded cap (buffers double), not the bomb


def test_encrypted_zip_bomb_is_refused() -> None:
    roomy = Codec(keyring=SEALED_KEYRING, max_payload_bytes=8 << 20, max_decoded_bytes=32 << 20)
    sealed = roomy.seal(b"0" * (16 << 20), aad=AAD)
    assert len(sealed) < 1 << 17
    with pytest.raises(CorruptPayload, match="inflates past"):
        SEALED.open(sealed, aad=AAD)


def test_frames_slightly_above_a_lowered_limit_still_open() -> None:
    sealed = Codec(max_payload_bytes=4096, max_decoded_bytes=4096).seal(b"0" * 4096)
    lowered = Codec(max_payload_bytes=4000, max_decoded_bytes=4000)
    assert lowered.open(sealed) == b"0" * 4096


def test_decompress_exact_limit() -> None:
    packed = zlib.compress(b"a" * 100)
    assert decompress(packed, 100) == b"a" * 100
    with pytest.raises(CorruptPayload):
        decompress(packed, 99)


# --------------------------------------------------------------------------- encryption


def test_encrypted_frames_hide_the_payload() -> None:
    sealed = SEALED.encode({"secret": "hunter2"}, aad=AAD)
    assert b"hunter2" not in sealed
    assert SEALED.decode(sealed, aad=AAD) == {"secret": "hunter2"}


def test_encryption_is_randomised() -> None:
    assert SEALED.encode([1], aad=AAD) != SEALED.encode([1], aad=AAD)


def test_frame_moved_to_another_job_is_refused() -> None:
    sealed = SEALED.encode({"amount": 100}, aad=b"job-A")
    with pytest.raises(CorruptPayload) as info:
        SEALED.decode(sealed, aad=b"job-B")
    assert not isinstance(info.value, UnknownKey)
    with pytest.raises(CorruptPayload):
        SEALED.decode(sealed)


def test_unknown_key_id() -> None:
    other = Codec(keyring=Keyring({"k9": KEY_A}, "k9"))
    sealed = other.encode([1], aad=AAD)
    with pytest.raises(UnknownKey) as info:
        SEALED.decode(sealed, aad=AAD)
    assert info.value.key_id == "k9"
    with pytest.raises(UnknownKey, match="'k9'"):
        PLAIN.decode(sealed, aad=AAD)


def test_wrong_key_under_known_id() -> None:
    impostor = Codec(keyring=Keyring({"k1": KEY_B}, "k1"))
    sealed = impostor.encode([1], aad=AAD)
    with pytest.raises(CorruptPayload, match="authentication") as info:
        SEALED.decode(sealed, aad=AAD)
    assert not isinstance(info.value, UnknownKey)


def test_key_rotation() -> None:
    old = Codec(keyring=Keyring.from_string(f"k1:{B64_A}"))
    old_frame = old.encode({"v": "old"}, aad=AAD)
    rotated = Codec(keyring=Keyring.from_string(f"k2:{B64_B},k1:{B64_A}"))
    assert rotated.decode(old_frame, aad=AAD) == {"v": "old"}
    new_frame = rotated.encode({"v": "new"}, aad=AAD)
    assert new_frame[4:7] == b"\x02k2"
    assert rotated.decode(new_frame, aad=AAD) == {"v": "new"}
    with pytest.raises(UnknownKey):
        old.decode(new_frame, aad=AAD)


def test_plain_frames_still_open_once_encryption_is_on() -> None:
    assert SEALED.decode(PLAIN.encode([1, 2], aad=AAD), aad=AAD) == [1, 2]


def test_keyring_decrypt_direct() -> None:
    ring = Keyring({"a": KEY_A, "b": KEY_B}, "b")
    key_id, body = ring.encrypt(b"data", b"ctx")
    assert key_id == "b"
    assert len(body) == 12 + 4 + 16
    assert ring.decrypt("b", body, b"ctx") == b"data"
    with pytest.raises(CorruptPayload):
        ring.decrypt("a", body, b"ctx")
    with pytest.raises(CorruptPayload, match="shorter"):
        ring.decrypt("b", body[:27], b"ctx")
    with pytest.raises(UnknownKey):
        ring.decrypt("zz", body, b"ctx")


def test_describe_and_encrypted() -> None:
    assert PLAIN.describe() == {
        "serializer": "json",
        "compression": "zstd>1024B",
        "encryption": "off",
        "limits": "max_payload_bytes=1048576 (data), max_decoded_bytes=4194304 (whole payload)",
    }
    assert not PLAIN.encrypted
    codec = Codec(keyring=Keyring.from_string(f"k2:{B64_B},k1:{B64_A}"), compress_above=10)
    assert codec.encrypted
    assert codec.describe() == {
        "serializer": "json",
        "compression": "zstd>10B",
        "encryption": "aes-256-gcm (active key k2; keys k2,k1)",
        "limits": "max_payload_bytes=1048576 (data), max_decoded_bytes=4194304 (whole payload)",
    }
    assert B64_A not in repr(codec)


# --------------------------------------------------------------------------- key ring


def test_generate_key() -> None:
    first, second = generate_key(), generate_key()
    assert first != second
    assert len(base64.urlsafe_b64decode(first)) == 32
    ring = Keyring.from_string(f"k:{first}")
    assert ring.ids == ["k"]


def test_from_string_formats() -> None:
    unpadded_url = base64.urlsafe_b64encode(KEY_B).decode().rstrip("=")
    wrapped = B64_A[:20] + "\n   " + B64_A[20:]
    ring = Keyring.from_string(f"  new-key : {unpadded_url} ,\n old_1:{wrapped} , ")
    assert ring.active_id == "new-key"
    assert ring.ids == ["new-key", "old_1"]
    key_id, body = ring.encrypt(b"x", b"")
    assert Keyring({"new-key": KEY_B}, "new-key").decrypt(key_id, body, b"") == b"x"


def test_keyring_repr_hides_keys() -> None:
    ring = Keyring({"k1": KEY_A}, "k1")
    assert repr(ring) == "Keyring(active='k1', ids=['k1'])"


SHORT_KEY = base64.b64encode(b"s" * 16).decode()
LONG_KEY = base64.b64encode(b"l" * 48).decode()


@pytest.mark.parametrize(
    ("spec", "message", "secret"),
    [
        ("", "empty", None),
        ("  ,  , ", "empty", None),
        ("k1:!!notbase64$$", "'k1' is not valid base64", "!!notbase64$$"),
        (f"k1:{B64_A[:-3]}", "'k1'", B64_A[:-3]),
        (f"k1:{SHORT_KEY}", "'k1' decodes to 16 bytes", SHORT_KEY),
        (f"k1:{LONG_KEY}", "'k1' decodes to 48 bytes", LONG_KEY),
        (f"k1:{B64_A},k1:{B64_B}", "'k1' appears twice", B64_A),
        (f"k 1:{B64_A}", "key id 'k 1'", B64_A),
        (f"k.1:{B64_A}", "key id 'k.1'", B64_A),
        (f"{'x' * 33}:{B64_A}", "33 characters, too long", B64_A),
        (f":{B64_A}", "key id ''", B64_A),
        (f"k1:{B64_A},{B64_B}", "entry #2 has no ':'", B64_B),
        (f"{B64_B}:{B64_A}", "too long", B64_B),
        ("k1:", "'k1' is empty", None),
    ],
)
def test_from_string_errors(spec: str, message: str, secret: str | None) -> None:
    with pytest.raises(ConfigurationError) as info:
        Keyring.from_string(spec)
    assert message in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None
    if secret is not None:
        assert secret not in str(info.value)
        assert secret[:12] not in repr(info.value)


@pytest.mark.parametrize(
    ("keys", "active", "message"),
    [
        ({}, "k1", "empty"),
        ({"k1": b"short"}, "k1", "'k1' is 5 bytes"),
        ({"k1": KEY_A}, "k2", "active key id 'k2' is not in the key ring"),
        ({"bad id": KEY_A}, "bad id", "key id 'bad id'"),
        ({"k1": "0" * 32}, "k1", "must be bytes"),
    ],
)
def test_keyring_init_errors(keys: Any, active: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Keyring(keys, active)


def test_keyring_accepts_non_active_keys_in_any_order() -> None:
    ring = Keyring({"a": KEY_A, "b": KEY_B, "c": KEY_C}, "b")
    assert ring.active_id == "b"
    assert ring.ids == ["a", "b", "c"]


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("compress_above", -1),
        ("max_payload_bytes", 0),
        ("compression_level", 10),
        ("compression_level", -1),
        ("max_depth", 0),
        ("max_depth", MAX_DEPTH_LIMIT + 1),
        ("max_depth", True),
        ("max_payload_bytes", 1.5),
        ("keyring", "k1:abc"),
    ],
)
def test_codec_rejects_bad_settings(option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=option):
        Codec(**{option: value})  # type: ignore[arg-type]


def test_zlib_and_zstd_frames_both_open_whatever_the_writer_uses() -> None:
    data = b"abc" * 10_000
    for writer in ("zstd", "zlib"):
        sealed = Codec(compression=writer).seal(data)
        for reader in ("zstd", "zlib"):
            assert Codec(compression=reader).open(sealed) == data


def test_zstd_bomb_is_refused() -> None:
    import zstandard

    body = zstandard.ZstdCompressor(level=19).compress(b"0" * (8 << 20))
    frame = with_crc(b"CV\x01\x04\x00" + body)
    with pytest.raises(CorruptPayload, match="inflates past"):
        Codec(max_payload_bytes=1 << 20).open(frame)


def test_unknown_compression_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="compression must be one of"):
        Codec(compression="lzma")
