"""The statistics of an experiment's report, pure (numpy arrays in, numbers out; no I/O).

For each variant against the control, on each metric:

- **means of heavy-tailed values** (cost per call): a percentile bootstrap of the difference
  (`bootstrap_diff`: both groups resampled with replacement, `resamples` times), its 95% interval, and a
  two-sided p-value from the share of resampled differences on either side of 0, while each side has at most
  `BOOTSTRAP_MAX_VALUES` values (the work is resamples x values); above, the bootstrap's own large-sample
  limit, Welch's interval from the exact moments (`welch`; the central limit theorem: at 5,000 values the
  bootstrap distribution of a mean is normal to within its skewness / sqrt(n)), so a report never holds
  more than the moments of a large variant's costs;
- **quantiles** (latency p50 and p95): the exact bootstrap distribution of the quantile, drawn directly
  (`quantile_diff`): the k-th smallest of n values resampled with replacement is the sorted values' element
  floor(n U) with U ~ Beta(k, n - k + 1), so each resample costs one Beta draw whatever n (no resampling of
  the values; the same distribution as resampling them, for the order-statistic quantile k = ceil(q n));
- **means of bounded scores** (judge scores per rubric): Welch's t interval from the moments (`welch`);
- **rates** (errors, guardrail findings): the two-proportion Wald interval with its z test (`proportion_diff`).

The p-values of one comparison (every metric of one variant against the control) are adjusted together
with Holm's step-down method (`holm`), which keeps the chance of any false "better"/"worse" among them at
or under 5%. A verdict (`verdict`) is "better" or "worse" only when the adjusted p-value is under 0.05,
and "inconclusive" otherwise; the 95% intervals shown are the unadjusted ones. The sample size still
needed (`needed_per_variant`) is the usual two-sample normal approximation for 80% power at the
adjusted level, for the smallest relative difference that matters (`minimum_effect`, 5% by default).

Sample ratio mismatch (`srm`): a chi-square goodness-of-fit test of the observed units per variant
against the configured weights; p < 0.001 marks the report untrustworthy (assignment or logging is broken).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

ALPHA = 0.05
SRM_ALPHA = 0.001
BOOTSTRAP_MAX_VALUES = 5_000  # per side; above, a mean's interval is Welch's (its large-sample limit)
Array = NDArray[np.float64]
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Difference:
    """Treatment minus control on one metric."""

    control: float
    treatment: float
    diff: float
    low: float
    high: float
    p_value: float

    @property
    def relative(self) -> float | None:
        return None if self.control == 0 else self.diff / abs(self.control)


@dataclass(frozen=True)
class Moments:
    """Count, mean and sample variance (ddof 1; 0 under two values) of a metric's values: all Welch's t needs,
    and what SQL aggregates (`count`, `avg`, `var_samp`) without returning the values."""

    n: int
    mean: float
    var: float

    @classmethod
    def of(cls, values: Array) -> Moments:
        v = np.asarray(values, dtype=float)
        return cls(int(v.size), float(v.mean()) if v.size else 0.0, float(v.var(ddof=1)) if v.size > 1 else 0.0)

    @property
    def sd(self) -> float:
        return math.sqrt(self.var)


QUANTILES = {"p50": 0.5, "p95": 0.95}


def order_statistic_rank(n: int, q: float) -> int:
    """k (1-based) of the quantile q among n sorted values: ceil(q n), the inverted empirical distribution."""
    return min(n, max(1, math.ceil(q * n - 1e-9)))


def quantile(sorted_values: Array, q: float) -> float:
    return float(sorted_values[order_statistic_rank(len(sorted_values), q) - 1])


def _percentile_interval(observed_c: float, observed_t: float, diffs: Array, resamples: int,
                         confidence: float) -> Difference:
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    below, above = float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))
    p_value = min(1.0, 2 * min(below, above) + 1 / resamples)
    return Difference(observed_c, observed_t, observed_t - observed_c, float(low), float(high), p_value)


def bootstrap_diff(control: Array, treatment: Array, *, resamples: int = 2_000, rng: np.random.Generator,
                   confidence: float = 0.95) -> Difference:
    """Percentile bootstrap of mean(treatment) - mean(control), both resampled with replacement."""
    c, t = np.asarray(control, dtype=float), np.asarray(treatment, dtype=float)
    boot_c = c[rng.integers(0, len(c), size=(resamples, len(c)))].mean(axis=1)
    boot_t = t[rng.integers(0, len(t), size=(resamples, len(t)))].mean(axis=1)
    return _percentile_interval(float(c.mean()), float(t.mean()), boot_t - boot_c, resamples, confidence)


def bootstrap_quantiles(sorted_values: Array, q: float, *, resamples: int, rng: np.random.Generator) -> Array:
    """`resamples` draws of the bootstrap distribution of the q-quantile (k = ceil(q n)) of `sorted_values`:
    the k-th smallest of n resampled values is element floor(n U) of the sorted values, U ~ Beta(k, n - k + 1)
    (the k-th smallest of n uniforms; floor keeps the order). Exact, and one draw per resample for any n."""
    n = len(sorted_values)
    k = order_statistic_rank(n, q)
    positions = np.minimum((n * rng.beta(k, n - k + 1, size=resamples)).astype(np.int64), n - 1)
    return np.asarray(sorted_values, dtype=float)[positions]


def quantile_diff(control_sorted: Array, treatment_sorted: Array, *, q: float, resamples: int = 2_000,
                  rng: np.random.Generator, confidence: float = 0.95) -> Difference:
    """Percentile bootstrap of quantile_q(treatment) - quantile_q(control); both arrays sorted ascending."""
    boot_c = bootstrap_quantiles(control_sorted, q, resamples=resamples, rng=rng)
    boot_t = bootstrap_quantiles(treatment_sorted, q, resamples=resamples, rng=rng)
    return _percentile_interval(quantile(control_sorted, q), quantile(treatment_sorted, q), boot_t - boot_c,
                                resamples, confidence)


def welch(control: Moments, treatment: Moments, *, confidence: float = 0.95) -> Difference:
    """Difference of means with Welch's t interval and test (unequal variances), from the moments."""
    mc, mt = control.mean, treatment.mean
    vc, vt = control.var / control.n, treatment.var / treatment.n
    se = math.sqrt(vc + vt)
    diff = mt - mc
    if se == 0:
        return Difference(mc, mt, diff, diff, diff, 1.0 if diff == 0 else 0.0)
    df = (vc + vt) ** 2 / (vc**2 / (control.n - 1) + vt**2 / (treatment.n - 1))
    crit = t_quantile(1 - (1 - confidence) / 2, df)
    p_value = 2 * t_sf(abs(diff) / se, df)
    return Difference(mc, mt, diff, diff - crit * se, diff + crit * se, min(1.0, p_value))


def welch_diff(control: Array, treatment: Array, *, confidence: float = 0.95) -> Difference:
    """`welch` on two arrays of values."""
    return welch(Moments.of(control), Moments.of(treatment), confidence=confidence)


def proportion_diff(control_hits: int, control_n: int, treatment_hits: int, treatment_n: int, *,
                    confidence: float = 0.95) -> Difference:
    """Difference of two proportions: Wald interval, and the pooled z test's p-value."""
    pc, pt = control_hits / control_n, treatment_hits / treatment_n
    diff = pt - pc
    se = math.sqrt(pc * (1 - pc) / control_n + pt * (1 - pt) / treatment_n)
    z = _NORMAL.inv_cdf(1 - (1 - confidence) / 2)
    pooled = (control_hits + treatment_hits) / (control_n + treatment_n)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / control_n + 1 / treatment_n))
    p_value = 1.0 if se_pooled == 0 else 2 * (1 - _NORMAL.cdf(abs(diff) / se_pooled))
    return Difference(pc, pt, diff, diff - z * se, diff + z * se, p_value)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def verdict(difference: Difference, adjusted_p: float, *, higher_is_better: bool, alpha: float = ALPHA) -> str:
    if adjusted_p >= alpha or difference.diff == 0:
        return "inconclusive"
    return "better" if (difference.diff > 0) == higher_is_better else "worse"


def needed_per_variant(sd_control: float, sd_treatment: float, effect: float, *, alpha: float = ALPHA,
                       power: float = 0.8) -> int | None:
    """Units per variant to detect an absolute difference `effect` (two-sided, normal approximation)."""
    if effect <= 0:
        return None
    z = _NORMAL.inv_cdf(1 - alpha / 2) + _NORMAL.inv_cdf(power)
    return math.ceil(z**2 * (sd_control**2 + sd_treatment**2) / effect**2)


@dataclass(frozen=True)
class SampleRatio:
    chi2: float
    p_value: float
    expected: list[float]

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA


def srm(observed: Sequence[int], weights: Sequence[float]) -> SampleRatio:
    """Chi-square goodness of fit of the observed counts per variant against the configured weights."""
    total, weight_sum = sum(observed), sum(weights)
    expected = [total * w / weight_sum for w in weights]
    if total == 0:
        return SampleRatio(0.0, 1.0, expected)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)
    return SampleRatio(chi2, chi2_sf(chi2, len(observed) - 1), expected)


# -- distributions, in pure Python (scipy is not a dependency; tests compare with it where installed) --------

def _gammainc_upper(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) (series below a + 1, continued fraction above)."""
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1 / a
        n = a
        for _ in range(1_000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 1_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def chi2_sf(x: float, df: int) -> float:
    return _gammainc_upper(df / 2, x / 2)


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (Lentz's continued fraction)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1 - _betainc(b, a, 1 - x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (tiny if abs(d) < tiny else d)
    h = d
    for m in range(1, 1_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (tiny if abs(d) < tiny else d)
            c = 1 + numerator / c
            c = tiny if abs(c) < tiny else c
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return math.exp(log_front) * h / a


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom (t >= 0)."""
    return 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))


def t_quantile(q: float, df: float) -> float:
    """The q-quantile (q > 0.5) of Student's t: Newton's method on `t_sf` from the normal quantile with
    Cornish-Fisher's first correction (a few steps: t_sf is convex above the median, so the steps approach the
    root from below), bisection should a step ever leave the half line."""
    t = _NORMAL.inv_cdf(q)
    t += (t**3 + t) / (4 * df)
    log_density_front = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    for _ in range(60):
        density = math.exp(log_density_front - (df + 1) / 2 * math.log1p(t * t / df))
        step = (t_sf(t, df) - (1 - q)) / density
        t += step
        if not (t >= 0 and math.isfinite(t)):
            return _t_quantile_bisection(q, df)
        if abs(step) <= 1e-13 * max(1.0, t):
            return t
    return _t_quantile_bisection(q, df)


def _t_quantile_bisection(q: float, df: float) -> float:
    low, high = 0.0, 1.0
    while t_sf(high, df) > 1 - q:
        high *= 2
    for _ in range(100):
        mid = (low + high) / 2
        if t_sf(mid, df) > 1 - q:
            low = mid
        else:
            high = mid
    return (low + high) / 2
