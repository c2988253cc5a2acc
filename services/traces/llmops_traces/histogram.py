"""Latency histograms with fixed log-spaced buckets: mergeable exactly, so percentiles over any range come
from rollups, never from raw rows.

Bucket `i` (1 <= i < BUCKETS - 1) holds values in [BOUNDS[i-1], BOUNDS[i]) milliseconds, where
`BOUNDS[k] = 10 ** (k / PER_DECADE)`: 20 buckets per decade from 1 ms to 10**8 ms (the contract's
latency ceiling is a day, 8.6e7 ms). Bucket 0 holds values below 1 ms, the last one values from 10**8 ms.
Two histograms add element by element (SQL: `traces_hist_add`, `traces_hist_sum`), whatever minutes,
hours, apps or models they came from.

A percentile is reported as the geometric middle of the bucket it falls in, so it is within
`RELATIVE_ERROR` (about 6%) of the exact value for values from 1 ms up.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence

PER_DECADE = 20
DECADES = 8
BOUNDS: tuple[float, ...] = tuple(10 ** (k / PER_DECADE) for k in range(PER_DECADE * DECADES + 1))
"""Upper bounds (exclusive) of buckets 0 .. len(BOUNDS) - 1, in milliseconds."""
BUCKETS = len(BOUNDS) + 1
RELATIVE_ERROR = 10 ** (1 / (2 * PER_DECADE)) - 1
"""The largest relative error of a reported percentile (for values of 1 ms and more)."""


def bucket_of(value_ms: float) -> int:
    """The bucket a value falls in."""
    return bisect.bisect_right(BOUNDS, value_ms)


def histogram(values: Iterable[float]) -> list[int]:
    """The histogram of `values` (milliseconds)."""
    counts = [0] * BUCKETS
    for value in values:
        counts[bucket_of(value)] += 1
    return counts


def merge(a: Sequence[int], b: Sequence[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


def representative(bucket: int) -> float:
    """The value reported for a percentile that falls in `bucket`: the geometric middle of its bounds
    (the lowest bucket says 0.5 ms, the highest its lower bound)."""
    if bucket == 0:
        return 0.5
    if bucket >= len(BOUNDS):
        return BOUNDS[-1]
    return math.sqrt(BOUNDS[bucket - 1] * BOUNDS[bucket])


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The `q`-quantile (0 < q <= 1) of a histogram, or None for an empty one (nearest rank)."""
    return percentiles(counts, (q,))[0]


REPORTED: tuple[float, ...] = tuple(round(representative(b), 3) for b in range(BUCKETS))
"""What a percentile falling in each bucket is reported as (`representative`, rounded to the microsecond)."""


def percentiles(counts: Sequence[int], qs: Sequence[float]) -> list[float | None]:
    """The `qs`-quantiles of one histogram (`percentile` of each), its running sums computed once and each
    bucket's value looked up (a month of hourly points asks for six of each of 720 histograms)."""
    running = list(itertools.accumulate(counts))
    total = running[-1] if running else 0
    if total == 0:
        return [None] * len(qs)
    return [REPORTED[bisect.bisect_left(running, math.ceil(q * total) or 1)] for q in qs]


def sparse_percentiles(counts: Mapping[int, int], qs: Sequence[float]) -> list[float | None]:
    """`percentiles` of the histogram whose non-zero buckets are `counts` (bucket -> count; zeros allowed): the
    same answers, walking a few buckets instead of `BUCKETS` (an hour of one app has a handful)."""
    buckets = sorted(counts)
    running = list(itertools.accumulate(map(counts.__getitem__, buckets)))
    total = running[-1] if running else 0
    if total == 0:
        return [None] * len(qs)
    return [REPORTED[buckets[bisect.bisect_left(running, math.ceil(q * total) or 1)]] for q in qs]
