"""Cron and interval recurrences: fire times across DST, leap days, month ends; refusals."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.errors import InvalidJob
from conveyor.scheduler import CronExpr, Interval, ScheduleError, load_zone


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


FIRE_TIMES = [
    # Europe/Berlin: gap 2026-03-29 02:00 CET -> 03:00 CEST; overlap 2026-10-25 02:00-03:00.
    pytest.param(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+00:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        id="berlin-gap-fires-at-gap-end",
    ),
    pytest.param(
        "15,45 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+00:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:15:00+02:00"],
        id="berlin-two-gap-times-fire-once",
    ),
    pytest.param(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00+00:00",
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        id="berlin-overlap-first-occurrence-only",
    ),
    pytest.param(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-25T02:10:00+01:00",
        ["2026-10-26T02:30:00+01:00"],
        id="berlin-after-inside-second-occurrence",
    ),
    pytest.param(
        "0 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:30:00+00:00",
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
            "2026-10-25T04:00:00+01:00",
        ],
        id="berlin-hourly-overlap-each-instant",
    ),
    pytest.param(
        "0 * * * *",
        "Europe/Berlin",
        "2026-03-28T23:30:00+00:00",
        ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
        id="berlin-hourly-gap",
    ),
    pytest.param(
        "0 */2 * * *",
        "Europe/Berlin",
        "2026-03-28T22:30:00+00:00",
        ["2026-03-29T00:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
        id="berlin-every-2h-gap-not-skipped",
    ),
    pytest.param(
        "0 30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00+00:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        id="berlin-6-field-gap",
    ),
    # America/New_York: gap 2026-03-08 02:00 EST -> 03:00 EDT; overlap 2026-11-01 01:00-02:00.
    pytest.param(
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T12:00:00+00:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
        id="new-york-gap",
    ),
    pytest.param(
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00:00+00:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        id="new-york-overlap-first-occurrence-only",
    ),
    pytest.param(
        "0 * * * *",
        "America/New_York",
        "2026-11-01T04:30:00+00:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"],
        id="new-york-hourly-overlap-each-instant",
    ),
    # Australia/Sydney: overlap 2026-04-05 02:00-03:00; gap 2026-10-04 02:00 AEST -> 03:00 AEDT.
    pytest.param(
        "30 2 * * *",
        "Australia/Sydney",
        "2026-10-03T00:00:00+00:00",
        ["2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"],
        id="sydney-gap",
    ),
    pytest.param(
        "30 2 * * *",
        "Australia/Sydney",
        "2026-04-04T00:00:00+00:00",
        ["2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00"],
        id="sydney-overlap-first-occurrence-only",
    ),
    pytest.param(
        "*/30 * * * *",
        "Australia/Sydney",
        "2026-04-04T15:15:00+00:00",
        [
            "2026-04-05T02:30:00+11:00",
            "2026-04-05T02:00:00+10:00",
            "2026-04-05T02:30:00+10:00",
            "2026-04-05T03:00:00+10:00",
        ],
        id="sydney-half-hourly-overlap-in-utc-order",
    ),
    # Calendar.
    pytest.param(
        "0 0 29 2 *",
        "UTC",
        "2026-01-01T00:00:00+00:00",
        ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"],
        id="leap-day",
    ),
    pytest.param(
        "0 0 31 * *",
        "UTC",
        "2026-01-31T00:00:00+00:00",
        [
            "2026-03-31T00:00:00+00:00",
            "2026-05-31T00:00:00+00:00",
            "2026-07-31T00:00:00+00:00",
            "2026-08-31T00:00:00+00:00",
        ],
        id="month-end-skips-short-months",
    ),
    pytest.param(
        "0 0 L 2 *",
        "UTC",
        "2027-03-01T00:00:00+00:00",
        ["2028-02-29T00:00:00+00:00", "2029-02-28T00:00:00+00:00"],
        id="last-day-of-february",
    ),
    # Macros.
    pytest.param("@yearly", "UTC", "2026-06-01T00:00:00+00:00", ["2027-01-01T00:00:00+00:00"]),
    pytest.param("@annually", "UTC", "2026-06-01T00:00:00+00:00", ["2027-01-01T00:00:00+00:00"]),
    pytest.param("@monthly", "UTC", "2026-06-01T00:00:00+00:00", ["2026-07-01T00:00:00+00:00"]),
    pytest.param("@weekly", "UTC", "2026-06-01T00:00:00+00:00", ["2026-06-07T00:00:00+00:00"]),
    pytest.param("@daily", "UTC", "2026-06-01T10:00:00+00:00", ["2026-06-02T00:00:00+00:00"]),
    pytest.param("@midnight", "UTC", "2026-06-01T10:00:00+00:00", ["2026-06-02T00:00:00+00:00"]),
    pytest.param("@hourly", "UTC", "2026-06-01T10:00:00+00:00", ["2026-06-01T11:00:00+00:00"]),
    pytest.param(
        "@daily",
        "America/New_York",
        "2026-06-01T10:00:00+00:00",
        ["2026-06-02T00:00:00-04:00"],
        id="macro-in-zone",
    ),
    # Seconds and strictness.
    pytest.param(
        "*/20 * * * * *",
        "UTC",
        "2026-06-01T10:00:05+00:00",
        ["2026-06-01T10:00:20+00:00", "2026-06-01T10:00:40+00:00", "2026-06-01T10:01:00+00:00"],
        id="six-field-seconds",
    ),
    pytest.param(
        "0 12 * * *",
        "UTC",
        "2026-06-01T12:00:00+00:00",
        ["2026-06-02T12:00:00+00:00"],
        id="strictly-after-exact-fire-time",
    ),
    pytest.param(
        "0 12 * * *",
        "UTC",
        "2026-06-01T11:59:59.500000+00:00",
        ["2026-06-01T12:00:00+00:00"],
        id="after-with-microseconds",
    ),
    pytest.param(
        "30 9 * * mon-fri",
        "Europe/Berlin",
        "2026-06-05T08:00:00+00:00",
        ["2026-06-08T09:30:00+02:00", "2026-06-09T09:30:00+02:00"],
        id="weekday-names-skip-weekend",
    ),
]


@pytest.mark.parametrize(("expr", "zone", "after", "expected"), FIRE_TIMES)
def test_fire_times(expr: str, zone: str, after: str, expected: list[str]) -> None:
    tz = load_zone(zone)
    got = CronExpr.parse(expr).next_after(at(after), tz, len(expected))
    assert [moment.isoformat() for moment in got] == expected
    assert all(moment.tzinfo is tz for moment in got)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Sydney"])
def test_hourly_fires_each_utc_hour_exactly_once_over_a_year(zone: str) -> None:
    start = at("2026-01-01T00:00:00+00:00")
    got = CronExpr.parse("0 * * * *").next_after(start, load_zone(zone), 24 * 365)
    hours = [moment.astimezone(UTC) for moment in got]
    assert hours == [start + timedelta(hours=k + 1) for k in range(24 * 365)]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Sydney"])
@pytest.mark.parametrize("expr", ["30 2 * * *", "0 30 2 * * *", "30 1 * * *"])
def test_daily_wall_time_fires_once_per_local_day_over_a_year(expr: str, zone: str) -> None:
    tz = load_zone(zone)
    start = datetime(2026, 1, 1, 12, tzinfo=tz)
    got = CronExpr.parse(expr).next_after(start, tz, 365)
    days = [moment.date() for moment in got]
    assert days == [start.date() + timedelta(days=k + 1) for k in range(365)]
    utc = [moment.astimezone(UTC) for moment in got]
    assert all(earlier < later for earlier, later in itertools.pairwise(utc))


def test_next_after_from_each_result_walks_the_same_sequence() -> None:
    expr, tz = CronExpr.parse("*/30 * * * *"), load_zone("Europe/Berlin")
    start = at("2026-10-24T22:00:00+00:00")
    listed = expr.next_after(start, tz, 12)
    walked, current = [], start
    for _ in range(12):
        current = expr.next_after(current, tz, 1)[0]
        walked.append(current)
    assert walked == listed
    assert len({moment.astimezone(UTC) for moment in listed}) == 12


NORMALISED = [
    ("30 9 * * 1-5", "30 9 * * 1-5"),
    ("  30   9 * *   mon-fri ", "30 9 * * MON-FRI"),
    ("@daily", "0 0 * * *"),
    ("@WEEKLY", "0 0 * * 0"),
    ("@yearly", "0 0 1 1 *"),
    ("@hourly", "0 * * * *"),
    ("0 0 1 jan *", "0 0 1 JAN *"),
    ("*/15 * * * * *", "*/15 * * * * *"),
]


@pytest.mark.parametrize(("text", "normalised"), NORMALISED)
def test_normalised(text: str, normalised: str) -> None:
    assert CronExpr.parse(text).normalised == normalised


@pytest.mark.parametrize(
    ("expr", "description"),
    [
        ("30 9 * * 1-5", "At 09:30 on Monday through Friday"),
        ("0 0 * * *", "At 00:00 every day"),
        ("0 0 29 2 *", "At 00:00 on February 29"),
        ("15 * * * *", "At minute 15 of every hour"),
    ],
)
def test_describe(expr: str, description: str) -> None:
    assert CronExpr.parse(expr).describe() == description


INVALID = [
    ("61 * * * *", "minute field: 61 is out of range 0-59"),
    ("* 24 * * *", "hour field: 24 is out of range 0-23"),
    ("* * 0 * *", "day-of-month field: 0 is out of range 1-31"),
    ("* * 32 * *", "day-of-month field: 32 is out of range 1-31"),
    ("* * * 13 *", "month field: 13 is out of range 1-12"),
    ("* * * * 8", "day-of-week field: 8 is out of range 0-7"),
    ("60 * * * * *", "second field: 60 is out of range 0-59"),
    ("*/0 * * * *", "minute field: step 0 must be at least 1"),
    ("*/61 * * * *", "minute field: step 61 is larger than the range 0-59"),
    ("5-2 * * * *", "minute field: range 5-2 runs backwards"),
    ("1,,2 * * * *", "minute field: empty list item"),
    ("x * * * *", "minute field: 'X' is not a number"),
    ("* * * foo *", "month field: 'FOO' is not a number or one of JAN"),
    ("* * * * MON#6", "day-of-week field: #6 must be #1 to #5"),
    ("* * *", "cron expression: expected 5 fields"),
    ("* * * * * * *", "cron expression: expected 5 fields"),
    ("", "cron expression: empty"),
    ("   ", "cron expression: empty"),
    ("@reboot", "cron expression: unknown macro '@reboot'"),
    ("*" * 10_000, "cron expression: longer than 200 characters"),
    ("0 0 30 2 *", "never fires"),
    ("0 0 31 4,6,9,11 *", "never fires"),
]


@pytest.mark.parametrize(("expr", "message"), INVALID)
def test_invalid_expressions_are_refused_naming_the_field(expr: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        CronExpr.parse(expr)
    assert message in str(caught.value)
    assert isinstance(caught.value, InvalidJob)


def test_never_firing_names_the_day_of_month_field() -> None:
    with pytest.raises(ScheduleError, match=r"^day-of-month field: '0 0 30 2 \*' never fires"):
        CronExpr.parse("0 0 30 2 *")


def test_rare_but_real_expression_is_accepted() -> None:
    fifth_monday_of_february = CronExpr.parse("0 0 * 2 MON#5")
    got = fifth_monday_of_february.next_after(at("2026-01-01T00:00:00+00:00"), load_zone("UTC"))
    assert got[0].isoformat() == "2044-02-29T00:00:00+00:00"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "Europe/", "x" * 300])
def test_unknown_zone_is_refused(name: str) -> None:
    with pytest.raises(ScheduleError, match="time zone"):
        load_zone(name)


def test_naive_after_and_bad_count_are_refused() -> None:
    expr = CronExpr.parse("@daily")
    with pytest.raises(ScheduleError, match="after: must carry a UTC offset"):
        expr.next_after(datetime(2026, 1, 1), load_zone("UTC"))
    with pytest.raises(ScheduleError, match="count: 0 must be at least 1"):
        expr.next_after(at("2026-01-01T00:00:00+00:00"), load_zone("UTC"), 0)
    for year in (1, 1969, 9001, 9999):
        with pytest.raises(ScheduleError, match=rf"after: year {year} is out of range"):
            expr.next_after(datetime(year, 6, 1, tzinfo=UTC), load_zone("Europe/Berlin"))
        with pytest.raises(ScheduleError, match=rf"after: year {year} is out of range"):
            Interval(90).next_after(datetime(year, 6, 1, tzinfo=UTC), load_zone("UTC"))


INTERVALS = [
    (90, "1970-01-01T00:00:00+00:00", ["1970-01-01T00:01:30+00:00", "1970-01-01T00:03:00+00:00"]),
    (90, "1970-01-01T00:01:30+00:00", ["1970-01-01T00:03:00+00:00"]),
    (90, "2026-06-01T00:00:00+00:00", ["2026-06-01T00:01:30+00:00", "2026-06-01T00:03:00+00:00"]),
    (90, "2026-06-01T00:00:01+00:00", ["2026-06-01T00:01:30+00:00"]),
    (420, "2026-06-01T00:00:00+00:00", ["2026-06-01T00:01:00+00:00", "2026-06-01T00:08:00+00:00"]),
]


@pytest.mark.parametrize(("seconds", "after", "expected"), INTERVALS)
def test_interval_is_anchored_to_the_epoch(seconds: int, after: str, expected: list[str]) -> None:
    got = Interval(seconds).next_after(at(after), load_zone("UTC"), len(expected))
    assert [moment.isoformat() for moment in got] == expected


def test_interval_does_not_drift_when_runs_are_late() -> None:
    interval, tz = Interval(90), load_zone("Europe/Berlin")
    start = at("2026-10-24T23:00:00+00:00")
    expected = interval.next_after(start, tz, 200)
    current, walked = start, []
    for _ in range(200):
        fire = interval.next_after(current, tz, 1)[0]
        walked.append(fire)
        current = fire.astimezone(UTC) + timedelta(seconds=37)  # the run finished late
    assert walked == expected
    assert all(int(moment.timestamp()) % 90 == 0 for moment in walked)
    utc = [moment.astimezone(UTC) for moment in walked]
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(utc)}
    assert gaps == {90.0}


@pytest.mark.parametrize("seconds", [0, -5, 366 * 24 * 3600 + 1])
def test_interval_out_of_range_is_refused(seconds: int) -> None:
    with pytest.raises(ScheduleError, match="interval: "):
        Interval(seconds)
