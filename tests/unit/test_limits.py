"""Limit definitions: rate strings, validation, and which bucket a job counts in."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.coordination.limits import (
    KEY_MAX,
    RATE_LIMIT_MAX,
    Concurrency,
    JobArguments,
    RateLimit,
    bucket_key,
    check_limits,
    parse_rate,
)
from conveyor.errors import InvalidOption


@pytest.mark.parametrize(
    ("text", "limit", "per"),
    [
        ("10/s", 10, 1.0),
        ("100/m", 100, 60.0),
        ("5/h", 5, 3600.0),
        ("1000/d", 1000, 86400.0),
        ("3/10s", 3, 10.0),
        ("3/10sec", 3, 10.0),
        ("2/1.5s", 2, 1.5),
        (" 7 / 2 min ", 7, 120.0),
        ("1/HOUR", 1, 3600.0),
        ("4/day", 4, 86400.0),
        ("6/minute", 6, 60.0),
        ("8/second", 8, 1.0),
    ],
)
def test_parse_rate_forms(text: str, limit: int, per: float) -> None:
    rate = parse_rate(text)
    assert (rate.limit, rate.per) == (limit, per)
    assert rate.key is None and rate.name is None


def test_parse_rate_carries_the_key() -> None:
    assert parse_rate("5/s", key="tenant").key == "tenant"


@pytest.mark.parametrize(
    "text", ["", "10", "10/", "/s", "ten/s", "10/fortnight", "10/s/m", "-1/s", "1.5/s", "10 per s"]
)
def test_parse_rate_refuses_what_is_not_a_rate(text: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        parse_rate(text)
    assert caught.value.option == "rate_limit"
    assert str(caught.value).startswith("rate_limit:")
    assert repr(text) in str(caught.value)


def test_parse_rate_refuses_non_strings() -> None:
    with pytest.raises(InvalidOption, match="rate_limit"):
        parse_rate(10)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["0/s", "3/0s"])
def test_parse_rate_refuses_zero(text: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        parse_rate(text)
    assert caught.value.option in ("limit", "per")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -3}, "limit"),
        ({"limit": 2.5}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": "3"}, "limit"),
        ({"limit": 3, "per": 0}, "per"),
        ({"limit": 3, "per": -1.0}, "per"),
        ({"limit": 3, "per": float("inf")}, "per"),
        ({"limit": 3, "per": float("nan")}, "per"),
        ({"limit": 3, "per": True}, "per"),
        ({"limit": 3, "per": "1s"}, "per"),
        ({"limit": 3, "key": "not an identifier"}, "key"),
        ({"limit": 3, "key": 5}, "key"),
        ({"limit": 3, "name": ""}, "name"),
        ({"limit": 3, "name": "   "}, "name"),
        ({"limit": 3, "name": "x" * 201}, "name"),
    ],
)
def test_rate_limit_validation_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        RateLimit(**kwargs)
    assert caught.value.option == field


def test_rate_limit_refuses_windows_too_large_for_one_record() -> None:
    import orjson

    from conveyor.ids import IdGenerator
    from conveyor.stores.base import RECORD_VALUE_MAX

    assert RateLimit(RATE_LIMIT_MAX, per=86400).limit == RATE_LIMIT_MAX
    with pytest.raises(InvalidOption) as caught:
        RateLimit(RATE_LIMIT_MAX + 1, per=86400)
    assert caught.value.option == "limit" and "shorter period" in str(caught.value)
    with pytest.raises(InvalidOption):
        parse_rate("100000/d")
    # a full window (one [time, job id] per start) still fits in one record
    ids = IdGenerator()
    full = [[1_800_000_000.123456 + i / 7, ids.new()] for i in range(RATE_LIMIT_MAX)]
    assert len(orjson.dumps(full)) < RECORD_VALUE_MAX


def test_rate_limit_accepts_and_normalises() -> None:
    rate = RateLimit(3, per=2, key="tenant", name="smtp")
    assert rate.per == 2.0 and isinstance(rate.per, float)
    assert rate.describe() == "3/2s"
    assert RateLimit(1, key=lambda *a, **k: "x").key is not None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1.0}, "limit"),
        ({"limit": False}, "limit"),
        ({"limit": 2, "retry_after": 0}, "retry_after"),
        ({"limit": 2, "retry_after": -1}, "retry_after"),
        ({"limit": 2, "key": "a-b"}, "key"),
        ({"limit": 2, "name": ""}, "name"),
    ],
)
def test_concurrency_validation_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        Concurrency(**kwargs)
    assert caught.value.option == field


def test_concurrency_accepts() -> None:
    limit = Concurrency(2, key="tenant", retry_after=3)
    assert limit.retry_after == 3.0 and limit.describe() == "max 2 at once"


def test_check_limits_turns_strings_into_rates_and_refuses_others() -> None:
    checked = check_limits(["10/s", Concurrency(2), RateLimit(1, per=5)])
    assert checked == (RateLimit(10, per=1.0), Concurrency(2), RateLimit(1, per=5.0))
    assert check_limits("3/m") == (RateLimit(3, per=60.0),)
    assert check_limits(Concurrency(4)) == (Concurrency(4),)
    with pytest.raises(InvalidOption) as caught:
        check_limits([object()])
    assert caught.value.option == "limits"
    with pytest.raises(InvalidOption):
        check_limits(5)
    with pytest.raises(InvalidOption) as bad_rate:
        check_limits(["10 per second"])
    assert bad_rate.value.option == "rate_limit"


# bucket keys ----------------------------------------------------------------------------


def send(tenant: str, body: str = "", region: str = "eu") -> None:
    return None


def arguments_of(*args: Any, **kwargs: Any) -> JobArguments:
    return JobArguments.bind(send, list(args), kwargs)


def test_bucket_without_key_is_the_owner_or_the_name() -> None:
    def never() -> JobArguments:
        raise AssertionError("arguments decoded although no key needs them")

    assert bucket_key(RateLimit(1), "task:send", never) == "task:send"
    assert bucket_key(Concurrency(1, name="smtp"), "task:send", never) == "smtp"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("acme",), {}), ((), {"tenant": "acme"}), (("acme", "hello"), {"region": "us"})],
)
def test_bucket_key_by_argument_name_positional_or_keyword(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    limit = RateLimit(1, key="tenant")
    key = bucket_key(limit, "task:send", lambda: arguments_of(*args, **kwargs))
    assert key == "task:send|acme"


def test_bucket_key_reads_defaults() -> None:
    limit = Concurrency(1, key="region", name="regional")
    assert bucket_key(limit, "task:send", lambda: arguments_of("acme")) == "regional|eu"
    assert bucket_key(limit, "task:send", lambda: arguments_of("acme", region="us")) == (
        "regional|us"
    )


def test_bucket_key_missing_argument_is_an_empty_key() -> None:
    limit = RateLimit(1, key="nothing_like_this")
    assert bucket_key(limit, "task:send", lambda: arguments_of("acme")) == "task:send|"


def test_bucket_key_callable_gets_the_arguments_as_passed() -> None:
    seen: list[tuple[Any, ...]] = []

    def key(*args: Any, **kwargs: Any) -> str:
        seen.append((args, kwargs))
        return f"{args[0]}-{kwargs.get('region', 'none')}"

    limit = RateLimit(1, key=key)
    assert bucket_key(limit, "q", lambda: arguments_of("acme", region="us")) == "q|acme-us"
    assert seen == [(("acme",), {"region": "us"})]


def test_bucket_key_is_cut_to_a_bounded_length() -> None:
    limit = RateLimit(1, key=lambda *a, **k: "x" * 5000)
    key = bucket_key(limit, "q", lambda: arguments_of("acme"))
    assert key == "q|" + "x" * KEY_MAX


def test_arguments_bind_falls_back_when_the_signature_does_not_fit() -> None:
    bound = JobArguments.bind(send, ["a", "b", "c", "d"], {"tenant": "t"})
    assert bound.named == {"tenant": "t"}
    assert list(bound.args) == ["a", "b", "c", "d"]
