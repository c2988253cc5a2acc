"""An experiment's report from its calls, pure: per variant the numbers, against the control the differences,
verdicts and sample sizes still needed, and the sample-ratio check (statistics in `llmops_prompts.stats`).

The control is the first variant. Metrics, each with the direction that is better:

| metric | per call | interval | better |
|---|---|---|---|
| `cost_per_call` | billing's `cost_total` (priced calls only) | bootstrap of the mean (Welch over 5,000) | lower |
| `latency_p50_ms`, `latency_p95_ms` | the trace store's `latency_ms` | bootstrap of the quantile (direct) | lower |
| `error_rate` | status is not ok | two proportions | lower |
| `guardrail_finding_rate` | at least one guardrail finding | two proportions | lower |
| `score:<rubric>` | the judge's normalised score (0..1), per rubric | Welch's t | higher |

Holm's correction runs over every metric of one variant's comparison. A metric with fewer than
`MIN_CALLS` values on either side is reported without a test ("insufficient data").

What a variant's data holds is bounded except for its latencies: counts, the moments of its costs and scores
(what SQL aggregates), its costs themselves only up to `stats.BOOTSTRAP_MAX_VALUES`, and its latencies
sorted (the quantiles' bootstrap reads them, one Beta draw per resample).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmops_prompts import stats
from llmops_prompts.stats import Moments

NO_VALUES = Moments(0, 0.0, 0.0)
Test = Callable[[], tuple[stats.Difference, int | None]]
MIN_CALLS = 20
MINIMUM_EFFECT = 0.05  # the smallest relative difference worth detecting, for "sample size still needed"


@dataclass
class VariantData:
    """What the stores hold for one variant's calls."""

    calls: int
    units: int
    errors: int
    findings: int  # calls with at least one guardrail finding
    cost: Moments = NO_VALUES  # priced calls only
    costs: np.ndarray | None = None  # their values, when at most stats.BOOTSTRAP_MAX_VALUES (else None)
    latencies: np.ndarray = field(default_factory=lambda: np.empty(0))  # sorted; calls with a span and latency
    scores: Mapping[str, Moments] = field(default_factory=dict)  # rubric -> the judge's scores

    @classmethod
    def of(cls, *, calls: int, units: int, errors: int, findings: int, costs: Sequence[float] = (),
           latencies: Sequence[float] = (), scores: Mapping[str, Sequence[float]] | None = None) -> VariantData:
        """From every value (tests and benchmarks), bounded as the store bounds it."""
        c = np.asarray(costs, dtype=float)
        return cls(calls, units, errors, findings, Moments.of(c), c if c.size <= stats.BOOTSTRAP_MAX_VALUES else None,
                   np.sort(np.asarray(latencies, dtype=float)),
                   {rubric: Moments.of(np.asarray(v, dtype=float)) for rubric, v in (scores or {}).items()})


def _summary(data: VariantData) -> dict[str, Any]:
    lat = data.latencies
    return {"calls": data.calls, "units": data.units,
            "cost_per_call": data.cost.mean if data.cost.n else None,
            "latency_p50_ms": stats.quantile(lat, 0.5) if lat.size else None,
            "latency_p95_ms": stats.quantile(lat, 0.95) if lat.size else None,
            "error_rate": data.errors / data.calls if data.calls else None,
            "guardrail_finding_rate": data.findings / data.calls if data.calls else None,
            "scores": {rubric: {"mean": m.mean, "n": m.n} for rubric, m in sorted(data.scores.items()) if m.n}}


def _needed(control: Moments, treatment: Moments, reference: float) -> int | None:
    if control.n < 2 or treatment.n < 2 or reference == 0:
        return None
    return stats.needed_per_variant(control.sd, treatment.sd, abs(reference) * MINIMUM_EFFECT)


def compare(control: VariantData, treatment: VariantData, *, rng: np.random.Generator,
            resamples: int = 2_000) -> list[dict[str, Any]]:
    """Every metric of `treatment` against `control`, with Holm-adjusted verdicts."""
    rows: list[tuple[str, bool, stats.Difference | None, int | None, int]] = []

    def add(name: str, n: int, higher_is_better: bool, test: Test) -> None:
        """`test()` gives the difference and the units still needed; run only with MIN_CALLS values a side."""
        rows.append((name, higher_is_better, *test(), n) if n >= MIN_CALLS else (name, higher_is_better, None, None, n))

    def cost() -> tuple[stats.Difference, int | None]:
        c, t = control, treatment
        if c.costs is not None and t.costs is not None:
            d = stats.bootstrap_diff(c.costs, t.costs, rng=rng, resamples=resamples)
        else:
            d = stats.welch(c.cost, t.cost)
        return d, _needed(c.cost, t.cost, c.cost.mean)

    def latency(q: float) -> Test:
        return lambda: (stats.quantile_diff(control.latencies, treatment.latencies, q=q, rng=rng,
                                            resamples=resamples), None)

    def rate(hits_a: int, hits_b: int) -> Test:
        def test() -> tuple[stats.Difference, int | None]:
            d = stats.proportion_diff(hits_a, control.calls, hits_b, treatment.calls)
            p = max(d.control, 1 / control.calls)
            sd = (p * (1 - p)) ** 0.5
            return d, stats.needed_per_variant(sd, sd, p * MINIMUM_EFFECT)
        return test

    def score(c: Moments, t: Moments) -> Test:
        return lambda: (stats.welch(c, t), _needed(c, t, c.mean))

    add("cost_per_call", min(control.cost.n, treatment.cost.n), False, cost)
    n_latency = int(min(control.latencies.size, treatment.latencies.size))
    add("latency_p50_ms", n_latency, False, latency(0.5))
    add("latency_p95_ms", n_latency, False, latency(0.95))
    n_calls = min(control.calls, treatment.calls)
    add("error_rate", n_calls, False, rate(control.errors, treatment.errors))
    add("guardrail_finding_rate", n_calls, False, rate(control.findings, treatment.findings))
    for rubric in sorted(set(control.scores) | set(treatment.scores)):
        c, t = control.scores.get(rubric, NO_VALUES), treatment.scores.get(rubric, NO_VALUES)
        add(f"score:{rubric}", min(c.n, t.n), True, score(c, t))

    tested = [r for r in rows if r[2] is not None]
    adjusted = dict(zip((r[0] for r in tested), stats.holm([r[2].p_value for r in tested if r[2] is not None]),
                        strict=True))
    out: list[dict[str, Any]] = []
    for name, higher_is_better, d, needed, n in rows:
        if d is None:
            out.append({"metric": name, "verdict": "insufficient data", "n": n,
                        "better_when": "higher" if higher_is_better else "lower"})
            continue
        verdict = stats.verdict(d, adjusted[name], higher_is_better=higher_is_better)
        out.append({"metric": name, "better_when": "higher" if higher_is_better else "lower",
                    "control": d.control, "treatment": d.treatment, "difference": d.diff,
                    "relative_difference": d.relative, "ci95": [d.low, d.high], "p_value": d.p_value,
                    "adjusted_p_value": adjusted[name], "verdict": verdict,
                    "more_per_variant_needed": None if needed is None or verdict != "inconclusive"
                    else max(0, needed - n)})
    return out


def build(variants: Sequence[tuple[str, float]], data: Mapping[str, VariantData], *, holdout: float,
          rng: np.random.Generator, resamples: int = 2_000) -> dict[str, Any]:
    """The report: `variants` as configured (name, weight), control first; `data` per variant name (and
    `holdout`), missing ones meaning no calls."""
    empty = VariantData(0, 0, 0, 0)
    names = [name for name, _ in variants]
    observed = [data.get(name, empty).units for name in names]
    weights = [weight for _, weight in variants]
    if holdout > 0:
        total = sum(weights)
        observed.append(data.get("holdout", empty).units)
        weights = [(1 - holdout) * w / total for w in weights] + [holdout]
    ratio = stats.srm(observed, weights)
    control = data.get(names[0], empty)
    comparisons = {name: compare(control, data.get(name, empty), rng=rng, resamples=resamples)
                   for name in names[1:]}
    summaries = {name: _summary(data.get(name, empty)) for name in [*names, *(["holdout"] if holdout > 0 else [])]}
    return {"control": names[0], "variants": summaries, "comparisons": comparisons,
            "sample_ratio": {"observed_units": observed, "expected_units": [round(e, 1) for e in ratio.expected],
                             "chi2": ratio.chi2, "p_value": ratio.p_value, "mismatch": ratio.mismatch},
            "trustworthy": not ratio.mismatch,
            "alpha": stats.ALPHA, "correction": "holm"}
