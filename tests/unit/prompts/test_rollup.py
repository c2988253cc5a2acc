"""Parts of a variant's calls merge into what one pass over every value gives, whatever the split; a window is
cut at UTC hours, and only whole hours that have ended may be cached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from itertools import pairwise

import numpy as np
import pytest

from llmops_prompts.report import VariantData
from llmops_prompts.rollup import Part, Stretch, Sums, ascending, distinct, merge, stretches


def _part(costs: list[Decimal], units: list[int], latencies: list[float], scores: list[float]) -> Part:
    def sums(values: list[Decimal]) -> Sums:
        return Sums(len(values), sum(values, Decimal(0)), sum((v * v for v in values), Decimal(0)))

    return Part(calls=len(costs), errors=len(costs) // 7, findings=len(costs) // 11, cost=sums(costs),
                units=np.unique(np.asarray(units, dtype=np.int64)), latencies=np.sort(np.asarray(latencies)),
                scores={"relevance": sums([Decimal(repr(s)) for s in scores])})


@pytest.mark.parametrize("pieces", [1, 2, 5, 17])
def test_parts_merge_into_the_numbers_of_one_pass(pieces: int) -> None:
    rng = np.random.default_rng(pieces)
    n = 3_000
    costs = [Decimal(f"{c:.12f}") for c in rng.lognormal(-7, 0.8, n)]
    units = rng.integers(0, 900, n).tolist()  # a unit calls in several pieces: counted once
    latencies = np.round(rng.lognormal(6, 0.5, n)).tolist()
    scores = rng.uniform(0, 1, n).round(6).tolist()
    bounds = np.linspace(0, n, pieces + 1).astype(int)
    parts = [_part(costs[a:b], units[a:b], latencies[a:b], scores[a:b]) for a, b in pairwise(bounds)]
    merged = merge(parts)
    whole = VariantData.of(calls=n, units=len(set(units)), errors=0, findings=0, costs=[float(c) for c in costs],
                           latencies=latencies, scores={"relevance": scores})
    assert merged.calls == n and merged.units == whole.units
    assert merged.errors == sum(p.errors for p in parts) and merged.findings == sum(p.findings for p in parts)
    assert np.array_equal(merged.latencies, whole.latencies)
    for got, want in ((merged.cost, whole.cost), (merged.scores["relevance"], whole.scores["relevance"])):
        assert got.n == want.n
        assert got.mean == pytest.approx(want.mean, rel=1e-12) and got.var == pytest.approx(want.var, rel=1e-9)
    # exact sums: the same numbers whatever the split
    assert merge([_part(costs, units, latencies, scores)]).cost == merged.cost


def test_distinct_and_ascending_are_numpys_unique_and_sort() -> None:
    rng = np.random.default_rng(3)
    hashes = rng.integers(-(2**63), 2**63 - 1, 1_000)
    values = np.concatenate([hashes, hashes[:300], [-(2**63), 2**63 - 1, 0, 0]])
    assert np.array_equal(distinct(values), np.unique(values)) and distinct(np.empty(0)).size == 0
    floats = rng.lognormal(6, 0.5, 2_000).round()
    assert np.array_equal(ascending(floats), np.sort(floats))


def test_a_window_is_cut_at_hours_and_only_what_has_ended_is_cacheable() -> None:
    h = datetime(2026, 3, 1, 10, tzinfo=UTC)
    start, end = h + timedelta(minutes=20), h + timedelta(hours=3, minutes=5)
    hours = [h + timedelta(hours=i) for i in range(4)]
    later = end + timedelta(minutes=1)
    assert stretches(start, end, later) == [
        Stretch(start, hours[1], hours[0], True),  # the window's partial first hour
        Stretch(hours[1], hours[2], hours[1], True),
        Stretch(hours[2], hours[3], hours[2], True),
        Stretch(hours[3], end, hours[3], True)]  # the window's partial last hour, ended
    assert [s.whole for s in stretches(start, end, later)] == [False, True, True, False]
    # what has not ended a minute before `now` is not kept: a window that ends now ends later at the next report
    assert [s.closed for s in stretches(start, end, end)] == [True, True, True, False]
    assert [s.closed for s in stretches(h, h + timedelta(hours=2), h + timedelta(minutes=90))] == [True, False]
    # another time zone: the same UTC hours
    assert stretches(start.astimezone(timezone(timedelta(hours=2))), end, end) == stretches(start, end, end)
    assert stretches(start, end, end)[0].hour == hours[0]
    assert stretches(end, end, end) == [] and stretches(end, start, end) == []
