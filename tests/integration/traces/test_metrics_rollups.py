"""`/v1/metrics` of a whole tenant from the coarse rollups (the tenant's daily rollup and hourly totals,
traces/0007; billing's hourly totals and its rollup by environment and model, billing/0010) answers exactly
what the spans and the ledger say, summed by brute force; another tenant's spans and costs never count."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from llmops_traces import histogram, metrics
from llmops_traces.store import rollups
from llmops_traces.views import iso, money
from tests.integration.traces.traces_support import NOW, bill, span_event, store_directly

pytestmark = pytest.mark.integration

MIDNIGHT = NOW.replace(hour=0)


def events_of(tenant: str) -> list[dict[str, Any]]:
    """LLM spans over two UTC days and a bit of a third, two environments, three models (one unreported),
    errors, spans without latency or TTFT."""
    return [span_event(tenant, at=MIDNIGHT - timedelta(days=1) + timedelta(minutes=53 * i), app_id=f"app-{i % 4}",
                       model=("gpt-4o", "gpt-4o-mini", None)[i % 3], environment=("production", "staging")[i % 2],
                       latency_ms=None if i % 7 == 0 else 40.0 * (i + 1),
                       time_to_first_token_ms=12.0 * (i + 1) if i % 2 else None,
                       status="error" if i % 5 == 0 else "ok",
                       error={"type": "t", "message": "m"} if i % 5 == 0 else None,
                       usage={"input_tokens": 100 + i, "output_tokens": 10 + i}) for i in range(60)]


async def brute_force(pool: asyncpg.Pool, tenant: str, *, day: bool, group: str | None, start: datetime,
                      end: datetime) -> list[tuple[Any, ...]]:
    """(group, bucket, requests, errors, tokens, latency p50/p95/p99, ttft p95, cost) from the spans and the
    ledger themselves."""
    column = {"model": "model", "environment": "environment", None: None}[group]
    spans = await pool.fetch("SELECT * FROM trace_spans WHERE tenant_id = $1 AND occurred_at >= $2 "
                             "AND occurred_at < $3", tenant, start, end)
    ledger = await pool.fetch("SELECT * FROM usage_ledger WHERE tenant_id = $1 AND occurred_at >= $2 "
                              "AND occurred_at < $3", tenant, start, end)

    def key(row: asyncpg.Record) -> tuple[str, datetime]:
        at = row["occurred_at"].astimezone(UTC)
        bucket = at.replace(hour=0 if day else at.hour, minute=0, second=0, microsecond=0)
        return ((row[column] or "") if column else "", bucket)

    sums: dict[tuple[str, datetime], dict[str, Any]] = defaultdict(lambda: {
        "requests": 0, "errors": 0, "in": 0, "out": 0, "lat": [0] * histogram.BUCKETS,
        "ttft": [0] * histogram.BUCKETS})
    for s in spans:
        into = sums[key(s)]
        into["requests"] += 1
        into["errors"] += s["status"] == "error"
        into["in"] += s["input_tokens"]
        into["out"] += s["output_tokens"]
        if s["latency_ms"] is not None:
            into["lat"][histogram.bucket_of(s["latency_ms"])] += 1
        if s["ttft_ms"] is not None:
            into["ttft"][histogram.bucket_of(s["ttft_ms"])] += 1
    costs: dict[tuple[str, datetime], Decimal] = defaultdict(Decimal)
    for row in ledger:
        costs[key(row)] += row["cost_total"] or 0
    out = []
    for (grp, bucket), v in sorted(sums.items()):
        lat = [histogram.percentile(v["lat"], q) if any(v["lat"]) else None for q in (0.5, 0.95, 0.99)]
        ttft = histogram.percentile(v["ttft"], 0.95) if any(v["ttft"]) else None
        out.append((grp or None if group else None, iso(bucket), v["requests"], v["errors"], v["in"], v["out"],
                    *lat, ttft, money(costs[(grp, bucket)]) if costs.get((grp, bucket)) else "0"))
    return out


def answered(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(s["group"], p["bucket"], p["requests"], p["errors"], p["input_tokens"], p["output_tokens"],
             p["latency_p50_ms"], p["latency_p95_ms"], p["latency_p99_ms"], p["ttft_p95_ms"], p["cost_total"])
            for s in answer["series"] for p in s["points"]]


@pytest.mark.parametrize(("granularity", "group", "filters", "table"), [
    ("day", "model", {}, "trace_metrics_tenant_daily"),
    ("day", None, {}, "trace_metrics_tenant_daily"),
    ("day", "environment", {}, "trace_metrics_tenant_daily"),
    ("hour", None, {}, "trace_metrics_tenant_hour_totals"),
    ("hour", "model", {}, "trace_metrics_tenant_hourly"),
])
async def test_a_tenants_series_from_the_coarse_rollups_equals_the_spans_and_the_ledger(
        pg_pool: asyncpg.Pool, granularity: str, group: str | None, filters: dict[str, str], table: str) -> None:
    tenant, other = f"met-{uuid.uuid4().hex[:8]}", f"met-{uuid.uuid4().hex[:8]}"
    mine, theirs = events_of(tenant), events_of(other)
    await store_directly(pg_pool, mine[:30] + theirs)
    await store_directly(pg_pool, mine[20:])  # ten redelivered
    await bill(pg_pool, mine[:45])
    await bill(pg_pool, mine[40:] + theirs)  # five billed twice: billing counts them once
    start, end = MIDNIGHT - timedelta(days=1), MIDNIGHT + timedelta(days=2)
    params = {"from": [iso(start) or ""], "to": [iso(end) or ""], "granularity": [granularity]}
    if group:
        params["group_by"] = [group]
    query = metrics.parse_metrics_query(params, tenant_id=tenant, far_past=NOW - timedelta(days=90))
    days = granularity == "day"
    from llmops_traces.store.rollups import table_for
    assert table_for("hour", group, filters, days=days) == table
    expected = await brute_force(pg_pool, tenant, day=days, group=group, start=start, end=end)
    got = answered(await metrics.metrics(pg_pool, query))
    assert got == expected
    assert sum(r[2] for r in got) == 60 and len({r[1] for r in got}) > 1
    assert any(r[-1] != "0" for r in got)


@pytest.mark.parametrize(("start", "end", "buckets"), [
    (MIDNIGHT - timedelta(hours=13), MIDNIGHT + timedelta(hours=11), 2),  # no whole day: the hourly rollup
    (MIDNIGHT - timedelta(hours=19), MIDNIGHT + timedelta(days=1, hours=5), 3),  # hours, a whole day, hours
    (MIDNIGHT, MIDNIGHT + timedelta(days=1, hours=5), 2),  # a whole day, then hours
])
async def test_a_day_series_not_on_whole_days_reads_its_partial_days_by_hour(
        pg_pool: asyncpg.Pool, start: datetime, end: datetime, buckets: int) -> None:
    tenant = f"met-{uuid.uuid4().hex[:8]}"
    await store_directly(pg_pool, events_of(tenant))
    await bill(pg_pool, events_of(tenant))
    query = metrics.parse_metrics_query({"from": [iso(start) or ""], "to": [iso(end) or ""],
                                         "granularity": ["day"], "group_by": ["model"]},
                                        tenant_id=tenant, far_past=NOW - timedelta(days=90))
    got = answered(await metrics.metrics(pg_pool, query))
    assert got == await brute_force(pg_pool, tenant, day=True, group="model", start=start, end=end)
    assert len({r[1] for r in got}) == buckets


async def test_the_stored_percentile_buckets_are_those_the_api_finds_in_the_histogram(pg_pool: asyncpg.Pool) -> None:
    """`traces_hist_ranks` (traces/0013: the hourly totals' generated `latency_ranks`, `ttft_ranks`) finds the
    bucket `histogram.percentiles` reports for each quantile: random histograms, totals where q * total is a
    whole number, one count, counts in the first and the last bucket, none."""
    rng = random.Random(7)
    hists: list[list[int]] = [[0] * histogram.BUCKETS for _ in range(6)]
    hists[1][0] = 1
    hists[2][-1] = 3
    hists[3][5], hists[3][90] = 50, 50
    hists[4][10], hists[4][11], hists[4][12] = 19, 1, 80  # p95 at the edge of a bucket: ceil(0.95 * 100) = 95
    hists[5][40] = 10**12
    for _ in range(300):
        h = [0] * histogram.BUCKETS
        for _ in range(rng.randrange(1, 60)):
            h[rng.randrange(histogram.BUCKETS)] += rng.choice((1, 1, 2, 7, 1000))
        hists.append(h)
    got = await pg_pool.fetch("SELECT traces_hist_ranks(h, '{0.5,0.95,0.99}') AS r FROM unnest($1::text[]) AS t(s), "
                              "LATERAL (SELECT s::bigint[] AS h) x", [str(h).replace("[", "{").replace("]", "}")
                                                                      for h in hists])
    qs = (0.5, 0.95, 0.99)
    assert tuple(q for _, q in metrics.QUANTILES) == rollups.RANKED == qs  # what the migration stores
    for h, row in zip(hists, got, strict=True):
        expected = histogram.percentiles(h, qs)
        assert (None if row["r"] is None else [histogram.REPORTED[b] for b in row["r"]]) == (
            None if expected[0] is None else expected), h
