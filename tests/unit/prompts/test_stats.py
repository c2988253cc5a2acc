"""The report's statistics on synthetic data with planted effects (numpy's generator, fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmops_prompts import stats
from llmops_prompts.report import VariantData, compare


def _costs(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    return scale * rng.lognormal(mean=-7.0, sigma=0.6, size=n)  # heavy-tailed, ~$0.001 per call


def test_a_10_percent_cost_difference_at_2000_calls_per_variant_is_found() -> None:
    found = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        control, treatment = _costs(rng, 2_000), _costs(rng, 2_000, scale=0.9)
        d = stats.bootstrap_diff(control, treatment, rng=rng, resamples=1_000)
        assert d.low < d.high
        if stats.verdict(d, d.p_value, higher_is_better=False) == "better":
            found += 1
    assert found >= 17  # power is about 95% at this size (sd/mean of this lognormal is 0.66)


def _aa_variant(rng: np.random.Generator, n: int) -> VariantData:
    return VariantData.of(calls=n, units=n, errors=int(rng.binomial(n, 0.05)), findings=int(rng.binomial(n, 0.02)),
                          costs=_costs(rng, n), latencies=rng.lognormal(6, 0.5, n).round(),
                          scores={"relevance": rng.beta(5, 2, n)})


def test_aa_experiments_have_at_most_5_percent_false_verdicts_over_all_metrics() -> None:
    """1,000 simulated A/A experiments through the report's own comparison (`report.compare`: cost, latency p50
    and p95, error and finding rates, a judge score; six metrics adjusted together with Holm): at most 5% (50)
    may have any "better" or "worse". The seed is fixed, so the count is the same on every run. Were the
    method's true rate 8%, 50 or fewer would come up with a probability of about 0.01% (binomial), so the bound
    tells a broken correction from a working one. Latencies are whole milliseconds, as stored (ties)."""
    rng = np.random.default_rng(7)
    runs, n = 1_000, 200
    false_experiments = 0
    for _ in range(runs):
        rows = compare(_aa_variant(rng, n), _aa_variant(rng, n), rng=rng, resamples=400)
        assert len(rows) == 6 and all("ci95" in r for r in rows)
        false_experiments += any(r["verdict"] != "inconclusive" for r in rows)
    assert false_experiments <= 50, false_experiments


def test_at_scale_the_welch_and_quantile_intervals_cover_a_zero_difference_95_percent_of_the_time() -> None:
    """Above `BOOTSTRAP_MAX_VALUES` a side, cost goes through Welch's interval and latency through the quantiles'
    direct bootstrap. In 300 A/A experiments of 10,000 calls a side, each metric's unadjusted 95% interval
    must cover 0 in at least 92% of them (95% expected; 92% is about 2.4 standard errors under it), and the
    Holm-adjusted verdicts stay rare (the count is fixed by the seed: 13 of 300 experiments, 4.3%)."""
    rng = np.random.default_rng(11)
    runs, n = 300, 10_000
    assert n > stats.BOOTSTRAP_MAX_VALUES
    covered: dict[str, int] = {}
    false_experiments = 0
    for _ in range(runs):
        rows = compare(_aa_variant(rng, n), _aa_variant(rng, n), rng=rng, resamples=400)
        for r in rows:
            covered[r["metric"]] = covered.get(r["metric"], 0) + (r["ci95"][0] <= 0 <= r["ci95"][1])
        false_experiments += any(r["verdict"] != "inconclusive" for r in rows)
    assert len(covered) == 6 and min(covered.values()) >= 0.92 * runs, covered
    assert false_experiments <= 0.05 * runs, false_experiments


def test_a_1_percent_cost_difference_at_500000_calls_per_variant_is_found_without_the_values() -> None:
    """A report over a million calls holds the moments of its costs, not the costs: a 1% difference is found."""
    rng = np.random.default_rng(4)
    n = 500_000
    control = VariantData.of(calls=n, units=n, errors=0, findings=0, costs=_costs(rng, n))
    treatment = VariantData.of(calls=n, units=n, errors=0, findings=0, costs=_costs(rng, n, scale=0.99))
    assert control.costs is None and treatment.costs is None
    cost = next(r for r in compare(control, treatment, rng=rng) if r["metric"] == "cost_per_call")
    assert cost["verdict"] == "better" and cost["ci95"][0] < cost["difference"] < cost["ci95"][1] < 0


def test_the_quantile_bootstrap_drawn_directly_is_the_resampling_bootstrap() -> None:
    """The Beta draw of an order statistic against resampling the values (the same distribution): their
    distribution functions agree within the Monte Carlo error (4 standard errors), ties included."""
    rng = np.random.default_rng(5)
    values = np.sort(rng.lognormal(6, 0.5, 401).round())
    for q in (0.5, 0.95):
        k = stats.order_statistic_rank(values.size, q)
        resampled = np.sort(values[rng.integers(0, values.size, size=(10_000, values.size))], axis=1)[:, k - 1]
        direct = stats.bootstrap_quantiles(values, q, resamples=10_000, rng=rng)
        for threshold in np.quantile(resampled, np.linspace(0.05, 0.95, 10)):
            assert abs(np.mean(direct <= threshold) - np.mean(resampled <= threshold)) < 0.03
        assert stats.quantile(values, q) == float(np.quantile(values, q, method="inverted_cdf"))


def test_a_55_45_split_configured_50_50_is_flagged_and_a_fair_one_is_not() -> None:
    assert stats.srm([5_500, 4_500], [1, 1]).mismatch
    assert stats.srm([1_100, 900], [1, 1]).mismatch  # even at 2,000 units
    assert not stats.srm([5_030, 4_970], [1, 1]).mismatch
    assert not stats.srm([2_520, 7_480], [1, 3]).mismatch


def test_holm_adjusts_step_down() -> None:
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_needed_sample_size_matches_the_textbook_formula() -> None:
    # sd 1 in both groups, difference 0.2: 2 * (1.96 + 0.8416)^2 / 0.04 = 392.4
    assert stats.needed_per_variant(1.0, 1.0, 0.2) == 393


def test_intervals_and_p_values_agree_with_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.70, 0.2, 400), rng.normal(0.74, 0.25, 300)
    ours = stats.welch_diff(a, b)
    theirs = scipy_stats.ttest_ind(b, a, equal_var=False)
    ci = theirs.confidence_interval(0.95)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-6)
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), rel=1e-6)
    for x, df in ((3.2, 1), (11.0, 3), (0.4, 2), (30.0, 5)):
        assert stats.chi2_sf(x, df) == pytest.approx(scipy_stats.chi2.sf(x, df), rel=1e-8)
    chi = scipy_stats.chisquare([5_500, 4_500], [5_000, 5_000])
    assert stats.srm([5_500, 4_500], [1, 1]).p_value == pytest.approx(chi.pvalue, rel=1e-6)
    # the bootstrap interval of a mean difference is close to scipy's bootstrap (percentile) on the same data
    c, t = _costs(rng, 1_000), _costs(rng, 1_000, scale=0.9)
    boot = stats.bootstrap_diff(c, t, rng=np.random.default_rng(0), resamples=3_000)
    ref = scipy_stats.bootstrap((t, c), lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                n_resamples=3_000, method="percentile", rng=np.random.default_rng(1))
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert abs(boot.low - ref.confidence_interval.low) < 0.1 * width
    assert abs(boot.high - ref.confidence_interval.high) < 0.1 * width


def test_distribution_functions_without_scipy() -> None:
    assert stats.chi2_sf(3.841458820694124, 1) == pytest.approx(0.05, rel=1e-9)
    assert stats.t_quantile(0.975, 1e9) == pytest.approx(1.959964, rel=1e-5)
    assert stats.t_quantile(0.975, 10) == pytest.approx(2.228139, rel=1e-5)
    assert math.isclose(stats.t_sf(0.0, 5), 0.5)
