"""The mergeable histogram: 5 % relative error, exact merges, a safe stored form."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.metrics.histogram import (
    LARGEST,
    RELATIVE_ERROR,
    SMALLEST,
    ZERO_BUCKET,
    Histogram,
    bucket_of,
    bucket_value,
    merged,
)

durations = st.floats(min_value=2e-6, max_value=1e6, allow_nan=False)
quantiles = st.floats(min_value=0.0, max_value=1.0)


def exact(values: list[float], q: float) -> float:
    """The value a quantile names: the one at rank floor(q * (n - 1)) of the sorted list."""
    return sorted(values)[math.floor(q * (len(values) - 1))]


@given(st.lists(durations, min_size=1, max_size=200), quantiles)
def test_a_quantile_is_within_five_percent_of_the_true_value(values: list[float], q: float) -> None:
    histogram = Histogram()
    for value in values:
        histogram.observe(value)
    estimate = histogram.quantile(q)
    assert estimate is not None
    true = exact(values, q)
    assert abs(estimate - true) <= RELATIVE_ERROR * true * (1 + 1e-9)


@given(st.lists(st.lists(durations, max_size=50), min_size=1, max_size=6), quantiles)
def test_merging_per_worker_histograms_equals_one_histogram_of_everything(
    parts: list[list[float]], q: float
) -> None:
    """Percentiles across workers come from adding buckets, not averaging percentiles."""
    each = []
    for values in parts:
        histogram = Histogram()
        for value in values:
            histogram.observe(value)
        each.append(histogram)
    whole = Histogram()
    for value in (v for values in parts for v in values):
        whole.observe(value)
    combined = merged(each)
    assert combined.buckets == whole.buckets
    assert combined.count == whole.count
    assert combined.quantile(q) == whole.quantile(q)


def test_every_value_reads_back_within_the_bound_across_the_whole_range() -> None:
    value = SMALLEST * 1.0001
    while value < LARGEST:
        back = bucket_value(bucket_of(value))
        assert abs(back - value) <= RELATIVE_ERROR * value * (1 + 1e-9), value
        value *= 1.01


def test_the_bucket_set_is_bounded() -> None:
    assert bucket_of(LARGEST * 1000) == bucket_of(LARGEST)
    assert bucket_of(LARGEST) - bucket_of(SMALLEST * 1.0001) < 310


@pytest.mark.parametrize("value", [0.0, -3.0, SMALLEST, float("nan")])
def test_zero_negative_and_nan_count_as_zero(value: float) -> None:
    histogram = Histogram()
    histogram.observe(value)
    assert histogram.buckets == {ZERO_BUCKET: 1}
    assert histogram.quantile(0.5) == 0.0


def test_empty_and_bad_quantiles() -> None:
    histogram = Histogram()
    assert histogram.quantile(0.99) is None
    assert histogram.mean() is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        histogram.quantile(1.5)


def test_mean_is_exact() -> None:
    histogram = Histogram()
    for value in (0.1, 0.2, 0.6):
        histogram.observe(value)
    assert histogram.mean() == pytest.approx(0.3)


@given(st.lists(durations, max_size=50))
def test_the_stored_form_reads_back_the_same(values: list[float]) -> None:
    histogram = Histogram()
    for value in values:
        histogram.observe(value)
    assert Histogram.from_dict(histogram.to_dict()) == histogram


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"b": [], "n": 0, "s": 0},
        {"b": {"1": 2}, "n": 3, "s": 1.0},
        {"b": {"x": 1}, "n": 1, "s": 1.0},
        {"b": {"1": -1, "2": 2}, "n": 1, "s": 1.0},
        {"b": {}, "n": 0, "s": "0"},
    ],
)
def test_a_damaged_stored_form_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not a histogram"):
        Histogram.from_dict(data)
