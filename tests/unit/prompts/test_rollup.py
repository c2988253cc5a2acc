"""Parts of a variant's calls merge into what one pass over every value gives, whatever the split; a window is
cut at UTC hours, and only whole hours that have ended may be cached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from itertools import pairwise

import numpy as np
import pytest

from llmops_prompts.report import VariantData
from llmops_prompts.rollup import Part, Stretch, Sums, merge, stretches


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


def test_a_window_is_cut_at_hours_and_only_ended_whole_hours_are_cacheable() -> None:
    h = datetime(2026, 3, 1, 10, tzinfo=UTC)
    start, end, now = h + timedelta(minutes=20), h + timedelta(hours=3, minutes=5), h + timedelta(hours=3, minutes=5)
    assert stretches(start, end, now) == [
        Stretch(start, h + timedelta(hours=1), None),  # partial first hour
        Stretch(h + timedelta(hours=1), h + timedelta(hours=2), h + timedelta(hours=1)),
        Stretch(h + timedelta(hours=2), h + timedelta(hours=3), h + timedelta(hours=2)),
        Stretch(h + timedelta(hours=3), end, None)]  # the hour under way
    # a whole hour that has not ended by `now` is not cacheable (its rows are still coming)
    assert [s.hour for s in stretches(h, h + timedelta(hours=2), h + timedelta(minutes=90))] == [h, None]
    # another time zone: the same UTC hours
    paris = start.astimezone(timezone(timedelta(hours=2)))
    assert stretches(paris, end, now) == stretches(start, end, now)
    assert stretches(end, end, now) == [] and stretches(end, start, now) == []
