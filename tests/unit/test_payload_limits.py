"""The payload limits: ``max_payload_bytes`` counts the user's data, not Conveyor's
envelope; ``max_decoded_bytes`` caps the whole payload and what a stored frame may
inflate to (zip bombs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from conveyor import App, ConfigurationError, CorruptPayload, JobState, PayloadTooLarge
from conveyor.codec import Codec
from conveyor.codec import frame as frame_mod
from conveyor.config import AppSettings, WorkerSettings
from conveyor.stores.base import JobQuery
from conveyor.stores.memory import MemoryStore
from conveyor.worker.consumer import Worker

MIB = 1 << 20


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[App]:
    app = App(f"sqlite:///{tmp_path / 'jobs.db'}", settings=AppSettings())
    yield app
    app.close()


def stored(app: App) -> int:
    return app.store.search(JobQuery(limit=1)).total


def burst(app: App) -> None:
    Worker(app, WorkerSettings(burst=True, poll_interval=0.05)).run()


def test_one_mebibyte_string_round_trips_through_a_worker_on_sqlite(sqlite_app: App) -> None:
    @sqlite_app.task
    def echo(text: str) -> str:
        return text

    text = "x" * MIB
    handle = echo.enqueue(text)
    burst(sqlite_app)
    info = handle.get()
    assert info.state is JobState.COMPLETED, info.errors
    assert info.result == text
    assert info.payload().args == [text]


def test_one_mebibyte_keyword_argument_and_letters_are_accepted(sqlite_app: App) -> None:
    @sqlite_app.task
    def size(*, data: str) -> int:
        return len(data)

    letters = bytes(range(65, 91)).decode() * (MIB // 26) + "A" * (MIB % 26)
    handle = size.enqueue(data=letters)
    burst(sqlite_app)
    assert handle.get().result == MIB


def test_one_byte_above_a_mebibyte_is_refused_naming_the_setting(sqlite_app: App) -> None:
    @sqlite_app.task
    def echo(text: str) -> str:
        return text

    with pytest.raises(PayloadTooLarge) as info:
        echo.enqueue("x" * (MIB + 1))
    message = str(info.value)
    assert f"{MIB + 1} bytes" in message
    assert "max_payload_bytes" in message and "CONVEYOR_MAX_PAYLOAD_BYTES" in message
    assert (info.value.size, info.value.limit, info.value.setting) == (
        MIB + 1,
        MIB,
        "max_payload_bytes",
    )
    assert stored(sqlite_app) == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "size"),
    [
        ((), {}, 0),
        (("abc",), {}, 3),
        ((1, "ab"), {}, 3),
        ((["ab"],), {}, 6),  # inside an argument the JSON counts: ["ab"]
        (('a\n"b',), {}, 4),  # a string counts its text, not its JSON escapes
        ((["a\n"],), {}, 7),  # inside an argument the JSON counts: ["a\n"]
        (("ü\u0001",), {}, 3),  # UTF-8 bytes, not the \u0001 escape
        (("'\\é",), {}, 4),
        ((), {"data": '{"k": "v"}'}, 10),  # JSON text in a string: its length
        ((), {"text": "abc"}, 3),
        ((1,), {"x": [1, 2], "y": None}, 10),  # 1 + [1,2] + null
        ((), {"é": "ü"}, 2),  # non-ASCII keys do not count either; ü is 2 bytes
    ],
)
def test_what_counts_as_data(args: tuple[Any, ...], kwargs: dict[str, Any], size: int) -> None:
    codec = Codec(max_payload_bytes=max(size, 1), max_decoded_bytes=4096)
    app = App(MemoryStore(), settings=AppSettings(), codec=codec)

    @app.task
    def anything(*a: Any, **k: Any) -> None: ...

    anything.enqueue(*args, **kwargs)  # exactly at the limit is fine
    if size:
        codec = Codec(max_payload_bytes=size - 1, max_decoded_bytes=4096)
        small = App(MemoryStore(), settings=AppSettings(), codec=codec)
        task = small.task(name="anything")(anything.fn)
        with pytest.raises(PayloadTooLarge, match=f"arguments: {size} bytes"):
            task.enqueue(*args, **kwargs)


def test_result_of_a_mebibyte_is_accepted() -> None:
    codec = Codec()
    text = "r" * MIB
    assert codec.decode(codec.encode(text, what="result")) == text
    with pytest.raises(PayloadTooLarge, match="result: 1048577 bytes"):
        codec.encode(text + "r", what="result")


def test_whole_payload_is_capped_by_max_decoded_bytes() -> None:
    codec = Codec(max_payload_bytes=100, max_decoded_bytes=150)
    app = App(MemoryStore(), settings=AppSettings(), codec=codec)

    @app.task
    def many(*args: str) -> None: ...

    many.enqueue(*["x"] * 20)  # 20 bytes of data in 100 bytes of JSON
    with pytest.raises(PayloadTooLarge, match="max_decoded_bytes") as info:
        many.enqueue(*[""] * 60)  # no data at all, but 181 bytes of JSON
    assert info.value.setting == "max_decoded_bytes"


def test_decoded_cap_defaults_to_four_times_the_data_limit() -> None:
    assert Codec().max_decoded_bytes == 4 * MIB
    assert Codec(max_payload_bytes=10).max_decoded_bytes == 40
    settings = AppSettings(max_payload_bytes=2 * MIB, max_decoded_bytes=0)
    assert App(MemoryStore(), settings=settings).codec.max_decoded_bytes == 8 * MIB
    settings = AppSettings(max_decoded_bytes=3 * MIB)
    assert App(MemoryStore(), settings=settings).codec.max_decoded_bytes == 3 * MIB


def test_decoded_cap_below_the_data_limit_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="max_decoded_bytes"):
        AppSettings(max_payload_bytes=MIB, max_decoded_bytes=MIB - 1)
    with pytest.raises(ConfigurationError, match="max_decoded_bytes"):
        Codec(max_payload_bytes=100, max_decoded_bytes=99)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_MAX_PAYLOAD_BYTES", str(2 * MIB))
    monkeypatch.setenv("CONVEYOR_MAX_DECODED_BYTES", str(5 * MIB))
    app = App("memory://")
    assert (app.codec.max_payload_bytes, app.codec.max_decoded_bytes) == (2 * MIB, 5 * MIB)


def test_zip_bomb_in_a_stored_job_is_refused_on_decode(sqlite_app: App) -> None:
    @sqlite_app.task
    def echo(text: str) -> str:
        return text

    handle = echo.enqueue("small")
    job = sqlite_app.store.get(handle.id)
    assert job is not None
    body = b'{"a":["' + b"0" * (64 * MIB) + b'"],"k":{}}'
    bomb = frame_mod.build(
        frame_mod.build_header(frame_mod.FLAG_ZSTD),
        zstandard.ZstdCompressor(level=3).compress(body),
    )
    assert len(bomb) < 64 * 1024
    with pytest.raises(CorruptPayload, match="inflates past"):
        sqlite_app.decode_payload(dataclasses.replace(job, payload=bomb))


def test_benchmark_payload_of_json_text_fits_the_default_limit() -> None:
    from bench.payload import make_payload

    text = make_payload()
    assert len(text.encode()) == MIB and '"' in text
    app = App(MemoryStore(), settings=AppSettings())

    @app.task
    def payload(data: str) -> None: ...

    handle = payload.enqueue(text)
    assert handle.get().payload().args == [text]
