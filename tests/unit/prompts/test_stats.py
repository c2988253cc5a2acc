"""The report's statistics on synthetic data with planted effects (numpy's generator, fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmops_prompts import stats


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


def test_aa_experiments_have_at_most_5_percent_false_verdicts_over_all_metrics() -> None:
    """400 simulated A/A experiments (not 1,000, to keep the test at a few seconds), each with five metrics
    adjusted together (Holm): at most 5% (20) may have any "better" or "worse". The seed is fixed, so the count
    is the same on every run (8 of 400, 2%). Were the method's true rate 10%, 20 or fewer would come up with a
    probability of about 0.02% (binomial), so the bound does tell a broken correction from a working one."""
    rng = np.random.default_rng(7)
    false_experiments = 0
    runs, n = 400, 200
    for _ in range(runs):
        cost_a, cost_b = _costs(rng, n), _costs(rng, n)
        lat_a, lat_b = rng.lognormal(6, 0.5, n), rng.lognormal(6, 0.5, n)
        score_a, score_b = rng.beta(5, 2, n), rng.beta(5, 2, n)
        err_a, err_b = int(rng.binomial(n, 0.05)), int(rng.binomial(n, 0.05))
        diffs = [stats.bootstrap_diff(cost_a, cost_b, rng=rng, resamples=250),
                 stats.bootstrap_diff(lat_a, lat_b, stat="p50", rng=rng, resamples=250),
                 stats.bootstrap_diff(lat_a, lat_b, stat="p95", rng=rng, resamples=250),
                 stats.welch_diff(score_a, score_b),
                 stats.proportion_diff(err_a, n, err_b, n)]
        adjusted = stats.holm([d.p_value for d in diffs])
        verdicts = [stats.verdict(d, p, higher_is_better=True) for d, p in zip(diffs, adjusted, strict=True)]
        if any(v != "inconclusive" for v in verdicts):
            false_experiments += 1
    assert false_experiments <= 20, false_experiments


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
