"""What a window holds for one group, and the metrics computed from it: pure.

A window's aggregate is a vector of floats (`Agg`), summed element by element, mergeable across groups
and windows. In the faust table (and so on its changelog topic) it is kept sparse, `{"index": value}`
with the non-zero entries only (`Stored`; beside the pane's offset marks, `panes`): most events touch 5 to
8 of its entries.

Latency is a histogram with fixed, log-spaced buckets (10 per decade, 1 ms to ~10 min, and an overflow),
so percentiles are read from bucket counts (interpolated geometrically inside the bucket: at most ~26%
off, the width of a bucket) and histograms of any groups add up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

# Vector layout
COUNT, ERRORS, TOKENS, FINDINGS, LAT_N, LAT_SUM, COST, COST_N, SCORE_SUM, SCORE_N = range(10)
BUCKETS_AT = 10
BUCKET_BOUNDS_MS: tuple[float, ...] = tuple(10 ** (k / 10) for k in range(59))  # 1 ms .. ~794 s (upper bounds)
WIDTH = BUCKETS_AT + len(BUCKET_BOUNDS_MS) + 1  # + overflow

Agg = list[float]
Delta = dict[int, float]
Stored = dict[str, float]  # sparse, string keys (JSON object keys)


def empty() -> Agg:
    return [0.0] * WIDTH


def add(agg: Agg | None, delta: Delta | Agg) -> Agg:
    """`agg` + `delta` (a sparse `{index: value}` or a dense vector); a new list (faust stores it as is)."""
    out = list(agg) if agg else empty()
    if len(out) < WIDTH:
        out.extend([0.0] * (WIDTH - len(out)))
    items = delta.items() if isinstance(delta, dict) else enumerate(delta)
    for i, v in items:
        out[int(i)] += v
    return out


def dense(stored: Stored | Agg) -> Agg:
    """A table value as a full vector."""
    if isinstance(stored, list):
        return add(None, stored)
    return add(None, {int(k): v for k, v in stored.items()})


def merge(aggs: Iterable[Agg]) -> Agg:
    total = empty()
    for agg in aggs:
        for i, v in enumerate(agg):
            total[i] += v
    return total


def bucket_of(latency_ms: float) -> int:
    """The index (in the vector) of the bucket holding `latency_ms`."""
    if latency_ms <= 1.0:
        return BUCKETS_AT
    k = math.ceil(10 * math.log10(latency_ms) - 1e-9)
    return BUCKETS_AT + min(k, len(BUCKET_BOUNDS_MS))


def percentile(agg: Sequence[float], q: float) -> float | None:
    """The q-quantile (0 < q < 1) of the latency histogram, in ms; None without latencies."""
    counts = agg[BUCKETS_AT:BUCKETS_AT + len(BUCKET_BOUNDS_MS) + 1]
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for k, n in enumerate(counts):
        if n <= 0:
            continue
        if seen + n >= rank:
            if k == 0:
                return BUCKET_BOUNDS_MS[0]
            if k >= len(BUCKET_BOUNDS_MS):
                return BUCKET_BOUNDS_MS[-1]
            low, high = BUCKET_BOUNDS_MS[k - 1], BUCKET_BOUNDS_MS[k]
            return low * (high / low) ** ((rank - seen) / n)
        seen += n
    return BUCKET_BOUNDS_MS[-1]  # pragma: no cover


MetricName = Literal["error_rate", "latency", "cost", "cost_per_call", "tokens", "request_count", "judge_score",
                     "finding_rate"]


@dataclass(frozen=True)
class Metric:
    name: str
    aggregations: tuple[str, ...]  # the first is the default
    unit: str
    description: str


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("error_rate", ("ratio",), "share", "interactions with status error / interactions"),
    Metric("latency", ("p95", "p50", "p99", "mean"), "ms", "latency of the interactions that report one"),
    Metric("cost", ("sum",), "USD", "priced cost of the billed rows (billing.usage)"),
    Metric("cost_per_call", ("mean",), "USD", "cost / billed rows"),
    Metric("tokens", ("sum",), "tokens", "input + output tokens of the interactions"),
    Metric("request_count", ("sum",), "interactions", "interactions seen"),
    Metric("judge_score", ("mean",), "score", "mean score of the judge's ok results (evaluations.scores)"),
    Metric("finding_rate", ("ratio",), "share", "interactions with at least one guardrail finding / interactions"),
)}


def samples(metric: str, agg: Sequence[float]) -> float:
    """How many observations the metric's value rests on (compared with a monitor's `min_samples`)."""
    if metric == "latency":
        return agg[LAT_N]
    if metric in ("cost", "cost_per_call"):
        return agg[COST_N]
    if metric == "judge_score":
        return agg[SCORE_N]
    return agg[COUNT]


def value(metric: str, aggregation: str, agg: Sequence[float]) -> float | None:
    """The metric's value over `agg`; None when it has no observation to rest on."""
    n = samples(metric, agg)
    if metric == "request_count":
        return agg[COUNT]
    if metric == "tokens":
        return agg[TOKENS]
    if metric == "cost":
        return agg[COST]
    if n <= 0:
        return None
    if metric == "error_rate":
        return agg[ERRORS] / n
    if metric == "finding_rate":
        return agg[FINDINGS] / n
    if metric == "cost_per_call":
        return agg[COST] / n
    if metric == "judge_score":
        return agg[SCORE_SUM] / n
    if metric == "latency":
        if aggregation == "mean":
            return agg[LAT_SUM] / n
        return percentile(agg, {"p50": 0.5, "p95": 0.95, "p99": 0.99}[aggregation])
    raise ValueError(f"unknown metric {metric!r}")
