"""A mergeable histogram with fixed log-scale buckets (relative error at most 5 %).

Percentiles over any window and any set of workers must come from adding buckets, never
from averaging percentiles. So every histogram uses the same fixed buckets: bucket ``i``
holds the values in ``(GAMMA**(i-1), GAMMA**i]``, and a bucket's representative value
``2 * GAMMA**i / (GAMMA + 1)`` is within :data:`RELATIVE_ERROR` of every value in it (the
DDSketch construction). Two histograms merge by adding counts per bucket; the merge of
per-minute histograms is exactly the histogram of the whole window.

Values at or below :data:`SMALLEST` (including zero and negative durations from a
stepped clock) are counted in one bucket read back as 0; values above :data:`LARGEST`
are clamped to it, so the bucket set stays bounded (under 310 buckets).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

RELATIVE_ERROR: Final = 0.05
"""Largest relative error of a value read back from its bucket."""

GAMMA: Final = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
"""Ratio between consecutive bucket bounds."""

SMALLEST: Final = 1e-6
"""Values at or below this (a microsecond, for durations) count as zero."""

LARGEST: Final = 1e7
"""Values above this (about 116 days, for durations) are clamped to it."""

ZERO_BUCKET: Final = -(2**31)
"""Index of the bucket of values at or below :data:`SMALLEST`."""

_LOG_GAMMA: Final = math.log(GAMMA)


def bucket_of(value: float) -> int:
    """The index of the bucket that counts ``value``."""
    if not value > SMALLEST:  # also catches NaN
        return ZERO_BUCKET
    return math.ceil(math.log(min(value, LARGEST)) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The value a bucket stands for: within :data:`RELATIVE_ERROR` of all it counts."""
    if index == ZERO_BUCKET:
        return 0.0
    return 2 * GAMMA**index / (GAMMA + 1)


@dataclass(slots=True)
class Histogram:
    """Counts per fixed bucket, plus the exact count and sum (for rates and means)."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0

    def observe(self, value: float) -> None:
        """Count one value (the hot path: one log, two additions)."""
        index = bucket_of(value)
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1
        if math.isfinite(value):
            self.total += value

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s counts to this one (exact: buckets are the same everywhere)."""
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += other.count
        self.total += other.total

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0 to 1), within 5 %; None when empty.

        The rank is ``q * (count - 1)`` (0 is the smallest value, ``count - 1`` the
        largest), read from the bucket that holds it.

        Raises:
            ValueError: ``q`` is not between 0 and 1.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile is between 0 and 1, not {q!r}")
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen > rank:
                return bucket_value(index)
        return bucket_value(max(self.buckets))

    def mean(self) -> float | None:
        """The exact mean of what was observed (finite values), None when empty."""
        return None if self.count == 0 else self.total / self.count

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form: ``{"b": {index: count}, "n": count, "s": sum}``."""
        return {"b": {str(i): n for i, n in self.buckets.items()}, "n": self.count, "s": self.total}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Histogram:
        """Read :meth:`to_dict`'s form back.

        Raises:
            ValueError: The data is not a histogram (a damaged metrics row).
        """
        raw, count, total = data.get("b"), data.get("n"), data.get("s")
        if not isinstance(raw, Mapping) or not isinstance(count, int):
            raise ValueError("not a histogram: expected 'b' (buckets) and 'n' (count)")
        if not isinstance(total, int | float):
            raise ValueError("not a histogram: 's' (sum) must be a number")
        try:
            buckets = {int(i): int(n) for i, n in raw.items()}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a histogram: bad bucket ({exc})") from exc
        if any(n < 0 for n in buckets.values()) or sum(buckets.values()) != count:
            raise ValueError("not a histogram: bucket counts must be positive and add to 'n'")
        return cls(buckets, count, float(total))


def merged(histograms: Iterable[Histogram]) -> Histogram:
    """One histogram holding every value of ``histograms``."""
    result = Histogram()
    for histogram in histograms:
        result.merge(histogram)
    return result
