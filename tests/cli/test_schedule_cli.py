"""``conveyor schedule preview``: the JSON form other tools rely on, the table, refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from click.testing import CliRunner

from conveyor.cli import main


def preview(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["schedule", "preview", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "cron", "interval", "expected"),
    [
        (
            ["30 2 * * *", "--tz", "Europe/Berlin", "--after", "2026-03-28T12:00:00+00:00"],
            "30 2 * * *",
            None,
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"],
        ),
        (
            ["0 * * * *", "--tz", "America/New_York", "--after", "2026-11-01T04:30:00Z"],
            "0 * * * *",
            None,
            ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"],
        ),
        (
            ["every 90 seconds", "--after", "2026-06-01T00:00:00+00:00"],
            None,
            90,
            ["2026-06-01T00:01:30+00:00", "2026-06-01T00:03:00+00:00", "2026-06-01T00:04:30+00:00"],
        ),
        (
            ["every sunday at midnight in Australia/Sydney", "--after", "2026-10-01T00:00:00Z"],
            "0 0 * * 0",
            None,
            ["2026-10-04T00:00:00+10:00", "2026-10-11T00:00:00+11:00", "2026-10-18T00:00:00+11:00"],
        ),
        (
            ["@daily", "--tz", "UTC", "--after", "2026-06-01T10:00:00+02:00"],
            "0 0 * * *",
            None,
            ["2026-06-02T00:00:00+00:00", "2026-06-03T00:00:00+00:00", "2026-06-04T00:00:00+00:00"],
        ),
    ],
)
def test_preview_json(
    args: list[str], cron: str | None, interval: int | None, expected: list[str]
) -> None:
    code, out, err = preview(*args, "-n", "3", "-o", "json")
    assert code == 0, err
    data = orjson.loads(out)
    assert list(data) == ["cron", "interval_seconds", "description", "next"]
    assert data["cron"] == cron
    assert data["interval_seconds"] == interval
    assert isinstance(data["description"], str) and data["description"]
    assert data["next"] == expected
    after = datetime.fromisoformat(args[args.index("--after") + 1])
    for text in data["next"]:
        moment = datetime.fromisoformat(text)
        assert moment.utcoffset() is not None
        assert moment.astimezone(UTC) > after.astimezone(UTC)


def test_preview_defaults_to_now_and_five() -> None:
    before = datetime.now(UTC)
    code, out, err = preview("every minute", "-o", "json")
    assert code == 0, err
    data = orjson.loads(out)
    assert len(data["next"]) == 5
    first = datetime.fromisoformat(data["next"][0])
    assert first > before
    assert (first - before).total_seconds() <= 61
    assert first.utcoffset() is not None and first.utcoffset().total_seconds() == 0


def test_preview_n_sets_the_count() -> None:
    code, out, _ = preview("@hourly", "--after", "2026-01-01T00:00:00Z", "-n", "17", "-o", "json")
    assert code == 0
    assert len(orjson.loads(out)["next"]) == 17


def test_preview_table() -> None:
    code, out, err = preview(
        "every weekday at 9:30", "--tz", "Europe/Berlin", "--after", "2026-06-05T08:00:00Z"
    )
    assert code == 0, err
    assert "At 09:30 on Monday through Friday" in out
    assert "30 9 * * 1-5" in out
    assert "2026-06-08 09:30:00 +0200 (Mon)" in out
    assert "2026-06-08 07:30:00" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["every 90 seconds", "--after", "2026-06-01T00:00:00"], "--after: '2026-06-01T00:00:00'"),
        (["every 90 seconds", "--after", "yesterday"], "is not ISO 8601"),
        (["@daily", "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["daily at 9:30 in Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["daily at 9:30 in Europe/Berlin", "--tz", "Asia/Tokyo"], "--tz: 'Asia/Tokyo' differs"),
        (["61 * * * *"], "minute field: 61 is out of range 0-59"),
        (["0 0 30 2 *"], "never fires"),
        (["whenever"], "accepted forms"),
    ],
)
def test_preview_refusals_exit_2(args: list[str], message: str) -> None:
    code, out, err = preview(*args, "-o", "json")
    assert code == 2
    assert out == ""
    assert message in err


def test_same_zone_in_text_and_tz_is_fine() -> None:
    code, out, err = preview(
        "daily at 9:30 in Europe/Berlin",
        "--tz",
        "Europe/Berlin",
        "--after",
        "2026-01-01T00:00:00Z",
        "-n",
        "1",
        "-o",
        "json",
    )
    assert code == 0, err
    assert orjson.loads(out)["next"] == ["2026-01-01T09:30:00+01:00"]


def test_count_out_of_range_is_a_usage_error() -> None:
    code, _, err = preview("@daily", "-n", "0")
    assert code == 2
    assert "-n" in err


def test_preview_of_a_one_off() -> None:
    code, out, _ = preview(
        "once on 2026-03-29 at 2:30",
        "--tz",
        "Europe/Berlin",
        "--after",
        "2026-03-01T00:00:00Z",
        "-n",
        "3",
        "-o",
        "json",
    )
    assert code == 0
    assert orjson.loads(out) == {
        "cron": None,
        "interval_seconds": None,
        "description": "Once, on 2026-03-29 at 02:30",
        "next": ["2026-03-29T03:00:00+02:00"],
    }
    code, out, _ = preview(
        "once at 2026-01-01 00:00", "--after", "2026-06-01T00:00:00Z", "-o", "json"
    )
    assert code == 0 and orjson.loads(out)["next"] == []
