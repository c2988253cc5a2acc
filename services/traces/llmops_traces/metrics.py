"""Request metrics: `GET /v1/metrics` parsed, planned and shaped (pure), and its one async read.

Series by minute, hour or day, grouped by app, environment, model or prompt version (or not at all):
requests, errors, error rate, mean latency, latency and time-to-first-token p50/p95/p99, tokens, cost.
Counts and percentiles come from the rollups the worker keeps (`trace_metrics_minute`, `..._hourly`):
percentiles from summed fixed-bucket histograms (`histogram`), so a month of hourly buckets reads about
720 rollup rows per group, never the spans. Days are sums of hours (UTC). A series of one app reads its
ended days from their compaction per app and day (`compaction`: a few pages for a month, not one page per
hour), the other days from the hourly rollup.

Cost is billing's, for the same tenant, buckets and group: from its hourly rollup (`usage_hourly`) for
hour and day series neither grouped by model nor filtered by model or app, else summed from its ledger
(billing's rollup is keyed by its normalised model key, not the model as reported, and is indexed by
tenant and hour only, while the ledger has a (tenant, app, time) index). It covers every billed event of
the group, judge calls the evaluator reports included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from llmops_traces import compaction, histogram
from llmops_traces.query import invalid, parse_range, plain_text
from llmops_traces.store import rollups
from llmops_traces.store import usage as usage_store
from llmops_traces.views import iso, money

GRANULARITIES = {"minute": timedelta(days=2), "hour": timedelta(days=93), "day": timedelta(days=400)}
"""The longest range of a series of each granularity."""
GROUPS = ("app", "environment", "model", "prompt_version")
FILTERS = ("app", "environment", "model")
BUCKET_SQL = {"minute": "bucket", "hour": "bucket",
              "day": "date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"}
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
"""Also the quantiles the hourly totals store per row (`rollups.RANKED`, migration traces/0013)."""
_QS = tuple(q for _, q in QUANTILES)
_NONE = (None,) * len(QUANTILES)


@dataclass(frozen=True)
class MetricsQuery:
    tenant_id: str
    start: datetime
    end: datetime
    granularity: str
    group: str | None
    filters: Mapping[str, str]


def parse_metrics_query(params: Mapping[str, Sequence[str]], *, tenant_id: str, far_past: datetime) -> MetricsQuery:
    """Validate the query string; `Invalid` names the bad parameter."""
    allowed = {"from", "to", "granularity", "group_by", *FILTERS}
    for name, values in params.items():
        if name not in allowed:
            raise invalid(name, "unknown parameter")
        if len(values) > 1:
            raise invalid(name, "given more than once")
    granularity = (params.get("granularity") or ["hour"])[0]
    if granularity not in GRANULARITIES:
        raise invalid("granularity", f"{granularity!r} is not one of {', '.join(GRANULARITIES)}")
    start, end = parse_range(params, max_span=GRANULARITIES[granularity], visible_from=far_past,
                             what=f" {granularity} series")
    group = (params.get("group_by") or [""])[0] or None
    if group is not None and group not in GROUPS:
        raise invalid("group_by", f"{group!r} is not one of {', '.join(GROUPS)}")
    filters = {name: plain_text(name, params[name][0]) for name in FILTERS if params.get(name)}
    unit = timedelta(minutes=1) if granularity == "minute" else timedelta(hours=1)
    start = start - (start - datetime(1970, 1, 1, tzinfo=start.tzinfo)) % unit  # whole buckets
    return MetricsQuery(tenant_id, start, end, granularity, group, filters)


def point(row: Mapping[str, Any], cost: Decimal | None, bucket: str) -> dict[str, Any]:
    """One bucket (`bucket`: its instant as text) of one group, JSON-ready, its keys in `schemas.MetricsPoint`'s
    order (the route renders it as it is)."""
    requests, errors = int(row["requests"]), int(row["errors"])
    lat_p50, lat_p95, lat_p99 = _percentiles(row, _LATENCY)
    ttft_p50, ttft_p95, ttft_p99 = _percentiles(row, _TTFT)
    return {
        "bucket": bucket, "requests": requests, "errors": errors,
        "error_rate": round(errors / requests, 6) if requests else None,
        "latency_mean_ms": round(row["latency_sum_ms"] / row["latency_count"], 3) if row["latency_count"] else None,
        "latency_p50_ms": lat_p50, "latency_p95_ms": lat_p95, "latency_p99_ms": lat_p99,
        "ttft_p50_ms": ttft_p50, "ttft_p95_ms": ttft_p95, "ttft_p99_ms": ttft_p99,
        "input_tokens": int(row["input_tokens"]), "output_tokens": int(row["output_tokens"]),
        "cost_total": money(cost) if cost is not None else "0",
    }


_LATENCY = ("latency_ranks", "latency_sparse", "latency_hist")
_TTFT = ("ttft_ranks", "ttft_sparse", "ttft_hist")


def _percentiles(row: Mapping[str, Any], keys: tuple[str, str, str]) -> Sequence[float | None]:
    """The `QUANTILES` of one histogram of the row (`keys`: its columns, `_LATENCY` or `_TTFT`): from the
    buckets stored for them (`rollups.RANKED`: the hourly totals) if it has them, from its sparse histogram if
    it has one (`compaction.expand`), else from its histogram (as asyncpg returns it, a list, never copied)."""
    ranks_key, sparse_key, hist_key = keys
    if ranks_key in row:
        ranks = row[ranks_key]
        return _NONE if ranks is None else [histogram.REPORTED[r] for r in ranks]
    if sparse_key in row:  # one app's compacted days
        return histogram.sparse_percentiles(row[sparse_key], _QS)
    counts = row[hist_key]
    return histogram.percentiles(counts, _QS) if counts else _NONE


def shape(query: MetricsQuery, rows: Sequence[Mapping[str, Any]],
          costs: Mapping[tuple[datetime, str], Decimal]) -> dict[str, Any]:
    """The response: one series per group value (`""` ungrouped), points in time order."""
    series: dict[str, list[dict[str, Any]]] = {}
    instants: dict[datetime, str] = {}  # each bucket's text once (every series has the same buckets)
    for row in rows:
        bucket, grp = row["bucket"], row["grp"]
        if (text := instants.get(bucket)) is None:
            text = instants[bucket] = iso(bucket) or ""
        series.setdefault(grp, []).append(point(row, costs.get((bucket, grp)), text))
    return {
        "from": iso(query.start), "to": iso(query.end), "granularity": query.granularity, "group_by": query.group,
        "histogram": {"buckets_per_decade": histogram.PER_DECADE, "max_relative_error": round(
            histogram.RELATIVE_ERROR, 4)},
        "series": [{"group": (None if query.group is None else (value or None)), "points": points}
                   for value, points in sorted(series.items())],
    }


async def metrics(db: asyncpg.Pool, query: MetricsQuery) -> dict[str, Any]:
    """The response: the counts and percentiles (`_rows`) and the cost read at once, on two connections."""
    rows, costs = await asyncio.gather(
        _rows(db, query),
        usage_store.cost_series(db, tenant_id=query.tenant_id, granularity=query.granularity, start=query.start,
                                end=query.end, group=query.group, filters=dict(query.filters)))
    return shape(query, rows, costs)


async def _rows(db: asyncpg.Pool, query: MetricsQuery) -> Sequence[Mapping[str, Any]]:
    unit = "minute" if query.granularity == "minute" else "hour"
    if unit == "hour" and "app" in query.filters:
        return await compaction.app_series(db, tenant_id=query.tenant_id, bucket_sql=BUCKET_SQL[query.granularity],
                                           start=query.start, end=query.end, group=query.group,
                                           filters=dict(query.filters), days=query.granularity == "day")
    return await rollups.series(db, tenant_id=query.tenant_id, unit=unit, bucket_sql=BUCKET_SQL[query.granularity],
                                start=query.start, end=query.end, group=query.group, filters=dict(query.filters),
                                days=query.granularity == "day")
