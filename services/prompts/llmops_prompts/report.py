"""An experiment's report from its calls, pure: per variant the numbers, against the control the differences,
verdicts and sample sizes still needed, and the sample-ratio check (statistics in `llmops_prompts.stats`).

The control is the first variant. Metrics, each with the direction that is better:

| metric | per call | interval | better |
|---|---|---|---|
| `cost_per_call` | billing's `cost_total` (priced calls only) | bootstrap of the mean | lower |
| `latency_p50_ms`, `latency_p95_ms` | the trace store's `latency_ms` | bootstrap of the quantile | lower |
| `error_rate` | status is not ok | two proportions | lower |
| `guardrail_finding_rate` | at least one guardrail finding | two proportions | lower |
| `score:<rubric>` | the judge's normalised score (0..1), per rubric | Welch's t | higher |

Holm's correction runs over every metric of one variant's comparison. A metric with fewer than
`MIN_CALLS` values on either side is reported without a test ("insufficient data").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmops_prompts import stats

MIN_CALLS = 20
MINIMUM_EFFECT = 0.05  # the smallest relative difference worth detecting, for "sample size still needed"


@dataclass
class VariantData:
    """What the stores hold for one variant's calls (arrays of equal meaning, not of equal length)."""

    calls: int
    units: int
    costs: Sequence[float]  # priced calls only
    latencies: Sequence[float]  # calls with a stored span and latency
    errors: int
    findings: int  # calls with at least one guardrail finding
    scores: Mapping[str, Sequence[float]] = field(default_factory=dict)  # rubric -> scores


def _summary(data: VariantData) -> dict[str, Any]:
    lat = np.asarray(data.latencies, dtype=float)
    costs = np.asarray(data.costs, dtype=float)
    return {"calls": data.calls, "units": data.units,
            "cost_per_call": float(costs.mean()) if costs.size else None,
            "latency_p50_ms": float(np.quantile(lat, 0.5)) if lat.size else None,
            "latency_p95_ms": float(np.quantile(lat, 0.95)) if lat.size else None,
            "error_rate": data.errors / data.calls if data.calls else None,
            "guardrail_finding_rate": data.findings / data.calls if data.calls else None,
            "scores": {rubric: {"mean": float(np.mean(s)), "n": len(s)} for rubric, s in sorted(data.scores.items())
                       if len(s)}}


def _needed(control: np.ndarray, treatment: np.ndarray, reference: float) -> int | None:
    if control.size < 2 or treatment.size < 2 or reference == 0:
        return None
    return stats.needed_per_variant(float(np.std(control, ddof=1)), float(np.std(treatment, ddof=1)),
                                    abs(reference) * MINIMUM_EFFECT)


def compare(control: VariantData, treatment: VariantData, *, rng: np.random.Generator,
            resamples: int = 2_000) -> list[dict[str, Any]]:
    """Every metric of `treatment` against `control`, with Holm-adjusted verdicts."""
    rows: list[tuple[str, bool, stats.Difference | None, int | None, int]] = []

    def sample_metric(name: str, a: Sequence[float], b: Sequence[float], kind: str, higher_is_better: bool) -> None:
        ca, tb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        n = int(min(ca.size, tb.size))
        if n < MIN_CALLS:
            rows.append((name, higher_is_better, None, None, n))
            return
        if kind == "welch":
            d = stats.welch_diff(ca, tb)
            needed = _needed(ca, tb, float(ca.mean()))
        else:
            d = stats.bootstrap_diff(ca, tb, stat=kind, rng=rng, resamples=resamples)
            needed = _needed(ca, tb, d.control) if kind == "mean" else None
        rows.append((name, higher_is_better, d, needed, n))

    def rate_metric(name: str, hits_a: int, hits_b: int) -> None:
        n = min(control.calls, treatment.calls)
        if n < MIN_CALLS:
            rows.append((name, False, None, None, n))
            return
        d = stats.proportion_diff(hits_a, control.calls, hits_b, treatment.calls)
        p = max(d.control, 1 / control.calls)
        sd = (p * (1 - p)) ** 0.5
        rows.append((name, False, d, stats.needed_per_variant(sd, sd, p * MINIMUM_EFFECT), n))

    sample_metric("cost_per_call", control.costs, treatment.costs, "mean", False)
    sample_metric("latency_p50_ms", control.latencies, treatment.latencies, "p50", False)
    sample_metric("latency_p95_ms", control.latencies, treatment.latencies, "p95", False)
    rate_metric("error_rate", control.errors, treatment.errors)
    rate_metric("guardrail_finding_rate", control.findings, treatment.findings)
    for rubric in sorted(set(control.scores) | set(treatment.scores)):
        sample_metric(f"score:{rubric}", control.scores.get(rubric, ()), treatment.scores.get(rubric, ()), "welch",
                      True)

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
    empty = VariantData(0, 0, (), (), 0, 0)
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
