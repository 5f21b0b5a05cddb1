"""The English schedule grammar: accepted forms compile to cron or an interval; others refused."""

from __future__ import annotations

from datetime import datetime

import pytest

from conveyor.scheduler import ScheduleError, parse_natural, parse_schedule

ACCEPTED = [
    ("every 5 minutes", "*/5 * * * *", None, None, "Every fifth minute of every hour"),
    ("every minute", "* * * * *", None, None, "Every minute"),
    ("every hour", "0 * * * *", None, None, "At the start of every hour"),
    ("every hour at :15", "15 * * * *", None, None, "At minute 15 of every hour"),
    ("every 2 hours", "0 */2 * * *", None, None, "At minute 0 past every second hour"),
    ("every 30 seconds", "*/30 * * * * *", None, None, "Every 30th second of every minute"),
    ("every 90 seconds", None, 90, None, "Every 90 seconds"),
    ("every 7 minutes", None, 420, None, "Every 7 minutes"),
    ("every 90 minutes", None, 5400, None, "Every 90 minutes"),
    ("every 5 hours", None, 18000, None, "Every 5 hours"),
    ("daily at 9:30", "30 9 * * *", None, None, "At 09:30 every day"),
    ("every day at 9:30", "30 9 * * *", None, None, "At 09:30 every day"),
    ("Every Day At 21:05", "5 21 * * *", None, None, "At 21:05 every day"),
    ("every weekday at 9:30", "30 9 * * 1-5", None, None, "At 09:30 on Monday through Friday"),
    ("every weekend at 10:00", "0 10 * * 0,6", None, None, "At 10:00 on Sunday and Saturday"),
    (
        "every monday and thursday at 18:00",
        "0 18 * * 1,4",
        None,
        None,
        "At 18:00 on Monday and Thursday",
    ),
    (
        "every monday, wednesday and friday at 7am",
        "0 7 * * 1,3,5",
        None,
        None,
        "At 07:00 on Monday, Wednesday, and Friday",
    ),
    ("every friday at 7:30pm", "30 19 * * 5", None, None, "At 19:30 on Friday"),
    ("every tuesday at 12am", "0 0 * * 2", None, None, "At 00:00 on Tuesday"),
    (
        "on the 1st of every month at 06:00",
        "0 6 1 * *",
        None,
        None,
        "At 06:00 on the first day of every month",
    ),
    (
        "on the last day of every month at 23:00",
        "0 23 L * *",
        None,
        None,
        "At 23:00 on the last day of every month",
    ),
    (
        "every 2 hours between 8:00 and 18:00",
        "0 8-18/2 * * *",
        None,
        None,
        "At minute 0 past every second hour from 8 through 18",
    ),
    ("every sunday at midnight", "0 0 * * 0", None, None, "At 00:00 on Sunday"),
    ("every day at noon", "0 12 * * *", None, None, "At 12:00 every day"),
    (
        "every sunday at midnight in Europe/Berlin",
        "0 0 * * 0",
        None,
        "Europe/Berlin",
        "At 00:00 on Sunday (Europe/Berlin)",
    ),
    (
        "every 90 seconds in America/New_York",
        None,
        90,
        "America/New_York",
        "Every 90 seconds (America/New_York)",
    ),
]


@pytest.mark.parametrize(("text", "cron", "interval", "tz", "description"), ACCEPTED)
def test_accepted_forms(
    text: str, cron: str | None, interval: int | None, tz: str | None, description: str
) -> None:
    schedule = parse_natural(text)
    assert (schedule.cron, schedule.interval_seconds, schedule.tz) == (cron, interval, tz)
    assert schedule.description == description
    assert parse_schedule(text) == schedule


@pytest.mark.parametrize(
    ("text", "cron", "tz"),
    [
        ("30 9 * * 1-5", "30 9 * * 1-5", None),
        ("30 9 * * 1-5 in Australia/Sydney", "30 9 * * 1-5", "Australia/Sydney"),
        ("@daily", "0 0 * * *", None),
        ("0 */15 * * * *", "0 */15 * * * *", None),
    ],
)
def test_parse_schedule_takes_cron_too(text: str, cron: str, tz: str | None) -> None:
    schedule = parse_schedule(text)
    assert (schedule.cron, schedule.interval_seconds, schedule.tz) == (cron, None, tz)


def test_natural_schedule_fires_in_its_zone() -> None:
    schedule = parse_schedule("every weekday at 9:30 in America/New_York")
    after = datetime.fromisoformat("2026-03-06T20:00:00+00:00")  # Friday
    got = schedule.next_after(after, schedule.zone(), 2)
    assert [moment.isoformat() for moment in got] == [
        "2026-03-09T09:30:00-04:00",
        "2026-03-10T09:30:00-04:00",
    ]


ONE_OFF = [
    # (text, zone, after, fire times)
    (
        "once at 2026-12-24 18:00",
        "Europe/Paris",
        "2026-12-01T00:00:00+00:00",
        ["2026-12-24T18:00:00+01:00"],
    ),
    (
        "once on 2026-12-24 at 6pm",
        "Asia/Tokyo",
        "2026-12-01T00:00:00+00:00",
        ["2026-12-24T18:00:00+09:00"],
    ),
    ("ONCE AT 2026-12-24T18:00", "UTC", "2026-12-01T00:00:00+00:00", ["2026-12-24T18:00:00+00:00"]),
    # strictly after: at the fire time itself, or later, there is nothing left
    ("once at 2026-12-24 18:00", "UTC", "2026-12-24T18:00:00+00:00", []),
    ("once at 2026-12-24 18:00", "UTC", "2027-01-01T00:00:00+00:00", []),
    # spring-forward gap: the first instant after it; autumn overlap: the first occurrence
    (
        "once on 2026-03-29 at 2:30",
        "Europe/Berlin",
        "2026-03-01T00:00:00+00:00",
        ["2026-03-29T03:00:00+02:00"],
    ),
    (
        "once on 2026-10-25 at 2:30",
        "Europe/Berlin",
        "2026-10-01T00:00:00+00:00",
        ["2026-10-25T02:30:00+02:00"],
    ),
    ("once on 2026-11-01 at 1:30", "America/New_York", "2026-11-01T05:45:00+00:00", []),
    (
        "once on 2028-02-29 at noon",
        "Australia/Sydney",
        "2028-01-01T00:00:00+00:00",
        ["2028-02-29T12:00:00+11:00"],
    ),
]


@pytest.mark.parametrize(("text", "zone", "after", "expected"), ONE_OFF)
def test_one_off_schedules(text: str, zone: str, after: str, expected: list[str]) -> None:
    schedule = parse_schedule(text)
    assert schedule.cron is None and schedule.interval_seconds is None
    assert schedule.once is not None and schedule.description.startswith("Once, on ")
    got = schedule.next_after(datetime.fromisoformat(after), schedule.zone(zone), 5)
    assert [moment.isoformat() for moment in got] == expected


def test_one_off_names_its_zone() -> None:
    schedule = parse_schedule("once at 2026-12-24 18:00 in Europe/Paris")
    assert schedule.tz == "Europe/Paris" and schedule.once == "2026-12-24T18:00:00"
    assert schedule.description == "Once, on 2026-12-24 at 18:00 (Europe/Paris)"


REFUSED = [
    ("sometimes", "schedule: cannot understand 'sometimes'; accepted forms: every N"),
    ("every day", "schedule: cannot understand"),
    ("every fooday at 9:00", "schedule: cannot understand"),
    ("every monday at 9", "time: '9' is not a time"),
    ("every day at 25:00", "time: '25:00' is out of range"),
    ("every day at 9:75", "time: '9:75' is out of range"),
    ("every day at 13pm", "time: '13pm': with am/pm the hour must be 1-12"),
    ("every 0 minutes", "the count must be at least 1"),
    ("every 5 hours at :15", "'at :MM' needs an hour count that divides 24"),
    ("every 5 minutes at :15", "'at :MM' only follows"),
    ("every hour at :75", "minute: 75 is out of range"),
    ("on the 32nd of every month at 06:00", "day-of-month: 32 is out of range 1-31"),
    ("every 2 hours between 18:00 and 8:00", "START before END"),
    ("daily at 9:30 in Mars/Olympus", "time zone: unknown time zone 'Mars/Olympus'"),
    ("every 400 days", "schedule: cannot understand"),
    ("x" * 10_000, "schedule: longer than 200 characters"),
    ("once at 2026-02-30 10:00", "date: '2026-02-30' is not a date"),
    ("once at 1969-12-31 10:00", "date: year 1969 is out of range"),
    ("once at 2026-12-24 25:00", "time: '25:00' is out of range"),
    ("once at 2026-12-24", "schedule: cannot understand"),
    ("once at 24-12-2026 10:00", "schedule: cannot understand"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_refusals_say_why(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_natural(text)
    assert message in str(caught.value)


def test_refusal_lists_every_accepted_form() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("whenever you like")
    for example in ("every hour at :15", "every weekday at TIME", "on the Nth of every month"):
        assert example in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "schedule: empty"),
        ("* * *", "cron expression: expected 5 fields"),
        ("61 * * * *", "minute field: 61 is out of range 0-59"),
        ("0 0 30 2 * in Europe/Berlin", "never fires"),
    ],
)
def test_parse_schedule_refuses_bad_cron(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(text)
    assert message in str(caught.value)
