"""Fixed log-spaced histograms: buckets, exact merging, percentiles within the stated error."""

from __future__ import annotations

import math
import random

from llmops_traces import histogram


def test_buckets_are_log_spaced_and_cover_the_contract_s_range() -> None:
    assert histogram.bucket_of(0.2) == 0
    assert histogram.bucket_of(1.0) == 1
    assert histogram.bucket_of(86_400_000) < histogram.BUCKETS - 1
    assert histogram.bucket_of(1e9) == histogram.BUCKETS - 1
    assert histogram.RELATIVE_ERROR < 0.06


def test_merged_histograms_equal_the_histogram_of_all_values() -> None:
    rng = random.Random(7)
    a = [rng.lognormvariate(5, 1) for _ in range(500)]
    b = [rng.lognormvariate(6, 1.5) for _ in range(700)]
    assert histogram.merge(histogram.histogram(a), histogram.histogram(b)) == histogram.histogram(a + b)


def test_percentiles_are_within_the_relative_error_of_the_exact_ones() -> None:
    rng = random.Random(11)
    values = sorted(rng.lognormvariate(6, 1) for _ in range(10_000))
    counts = histogram.histogram(values)
    for q in (0.5, 0.95, 0.99):
        exact = values[max(0, int(q * len(values) + 0.999999) - 1)]
        got = histogram.percentile(counts, q)
        assert got is not None
        assert abs(got - exact) / exact <= histogram.RELATIVE_ERROR + 1e-9


def test_an_empty_histogram_has_no_percentile() -> None:
    assert histogram.percentile([0] * histogram.BUCKETS, 0.5) is None


def test_percentiles_at_once_equal_one_at_a_time_by_nearest_rank() -> None:
    rng = random.Random(7)
    for _ in range(200):
        counts = [rng.choice((0, 0, 0, 1, 2, 40)) for _ in range(histogram.BUCKETS)]
        qs = (0.01, 0.5, 0.95, 0.99, 1.0)
        expected = []
        for q in qs:  # nearest rank, walked bucket by bucket
            total, seen = sum(counts), 0
            rank = max(1, math.ceil(q * total))
            for bucket, count in enumerate(counts):
                seen += count
                if seen >= rank:
                    expected.append(round(histogram.representative(bucket), 3))
                    break
            else:
                expected.append(None)
        assert histogram.percentiles(counts, qs) == expected
        assert [histogram.percentile(counts, q) for q in qs] == expected
    assert histogram.percentiles([0] * histogram.BUCKETS, (0.5, 0.9)) == [None, None]


def test_sparse_percentiles_equal_the_dense_histogram_s() -> None:
    rng = random.Random(5)
    qs = (0.01, 0.5, 0.95, 0.99, 1.0)
    for _ in range(500):
        counts = [0] * histogram.BUCKETS
        sparse: dict[int, int] = {}
        for bucket in rng.sample(range(histogram.BUCKETS), rng.randint(0, 12)):
            counts[bucket] = sparse[bucket] = rng.choice((0, 1, 1, 2, 3, 40))  # a zero kept in the sparse one too
        assert histogram.sparse_percentiles(sparse, qs) == histogram.percentiles(counts, qs)
    assert histogram.sparse_percentiles({}, (0.5,)) == [None]
    assert histogram.sparse_percentiles({7: 0}, (0.5,)) == [None]
    assert histogram.sparse_percentiles({3: 1, 1: 1}, (0.5, 1.0)) == [histogram.REPORTED[1], histogram.REPORTED[3]]
