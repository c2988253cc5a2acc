"""`trace_metrics_minute` and `trace_metrics_hourly`: the worker's increments, and the metrics reads.

Increments come from the span rows actually inserted (`spans.rollups`), in key order, added in place
(histograms sent sparse and added by `traces_hist_add_sparse`: only the buckets a batch touched). Reads
sum rollup rows over the buckets asked for (`traces_hist_sum`), grouped by one dimension or none, from the
coarsest rollup that has the dimensions asked for (`table_for`): summing a month of the app-level hourly
rollup of a tenant with 1,000 apps took 17 s (334,320 rows), its tenant-level twin holds a row per
environment and model of each hour, and that one's twins a row per environment and model of each day, or
a row per hour (a histogram sum is ~50 us a row).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from llmops_traces import histogram
from llmops_traces.spans import (
    ROLLUP_KEY,
    TENANT_DAILY_KEY,
    TENANT_ROLLUP_KEY,
    TENANT_TOTALS_KEY,
    Rollup,
    tenant_daily_rollups,
    tenant_rollups,
    tenant_totals,
)

TABLES = {"minute": "trace_metrics_minute", "hour": "trace_metrics_hourly",
          "tenant_hour": "trace_metrics_tenant_hourly", "tenant_day": "trace_metrics_tenant_daily",
          "tenant_totals": "trace_metrics_tenant_hour_totals"}
TENANT_DIMENSIONS = frozenset({"environment", "model"})
"""What `trace_metrics_tenant_hourly` keeps besides tenant and hour: a series grouped and filtered by these
only reads it (a row per environment and model of each hour, not per app and prompt)."""
GROUP_COLUMNS = {"app": "app_id", "environment": "environment", "model": "model", "prompt_version": "prompt_version"}


KEYS = {"trace_metrics_minute": ROLLUP_KEY, "trace_metrics_hourly": ROLLUP_KEY,
        "trace_metrics_tenant_hourly": TENANT_ROLLUP_KEY, "trace_metrics_tenant_daily": TENANT_DAILY_KEY,
        "trace_metrics_tenant_hour_totals": TENANT_TOTALS_KEY}
_MEASURES = ("requests", "errors", "input_tokens", "output_tokens", "latency_count", "latency_sum_ms", "ttft_count")
_TYPES = {"bucket": "timestamptz", "requests": "int8", "errors": "int8", "input_tokens": "int8",
          "output_tokens": "int8", "latency_count": "int8", "latency_sum_ms": "float8", "ttft_count": "int8"}
_HISTOGRAMS = ("latency_hist", "ttft_hist")
_SPARSE = ("first", "last")
"""Per row and histogram, where its (position, count) pairs are in the flat arrays sent (from 1, inclusive;
`last` < `first` for none)."""


def _upsert(table: str) -> str:
    """ONE statement for a batch's increments of `table`, in key order; the histograms travel sparse (every
    row's touched positions and counts in one flat array each, sliced per row) and are added by
    `traces_hist_add_sparse` (migration traces/0009): dense arrays (two of `histogram.BUCKETS` per row) cost
    30 ms per 60,000 elements to send and as much to add, for a batch of the benchmark's.

    The rows that exist are updated in place (`updated`); the others are inserted, and a row another writer
    inserted since this statement's snapshot gets the increment added by `ON CONFLICT` (dense, rare)."""
    keys = KEYS[table]
    scalars = [*keys, *_MEASURES, *(f"{h}_{e}" for h in _HISTOGRAMS for e in _SPARSE)]
    arg = len(scalars)
    flat = {h: (f"${arg + 1 + 2 * i}::int4[]", f"${arg + 2 + 2 * i}::int8[]") for i, h in enumerate(_HISTOGRAMS)}
    n = histogram.BUCKETS

    def sparse_add(h: str, into: str) -> str:
        positions, counts = flat[h]
        span = f"s.{h}_first : s.{h}_last"
        return f"traces_hist_add_sparse({into}, ({positions})[{span}], ({counts})[{span}], {n})"

    match = " AND ".join(f"t.{c} = s.{c}" for c in keys)
    return f"""
    WITH s AS MATERIALIZED (
        SELECT * FROM unnest({", ".join(f"${i + 1}::{_TYPES.get(c, 'int4' if c.endswith(_SPARSE) else 'text')}[]"
                                       for i, c in enumerate(scalars))})
             WITH ORDINALITY AS s({", ".join(scalars)}, n)),
    updated AS (
        UPDATE {table} AS t SET {", ".join(f"{m} = t.{m} + s.{m}" for m in _MEASURES)},
            {", ".join(f"{h} = {sparse_add(h, f't.{h}')}" for h in _HISTOGRAMS)}
        FROM s WHERE {match}
        RETURNING s.n)
    INSERT INTO {table} AS t ({", ".join((*keys, *_MEASURES, *_HISTOGRAMS))})
    SELECT {", ".join(f"s.{c}" for c in (*keys, *_MEASURES))},
           {", ".join(sparse_add(h, "NULL") for h in _HISTOGRAMS)}
    FROM s WHERE s.n NOT IN (SELECT n FROM updated) ORDER BY s.n
    ON CONFLICT ({", ".join(keys)}) DO UPDATE SET
        {", ".join(f"{m} = t.{m} + excluded.{m}" for m in _MEASURES)},
        {", ".join(f"{h} = traces_hist_add(t.{h}, excluded.{h})" for h in _HISTOGRAMS)}
    """  # noqa: S608  (constant table and column names)


_UPSERTS = {table: _upsert(table) for table in KEYS}


def _sparse(hists: Sequence[dict[int, int]]) -> tuple[list[int], list[int], list[int], list[int]]:
    """Per histogram (sparse, by bucket), its first and last index in the flat (position, count) arrays."""
    firsts: list[int] = []
    lasts: list[int] = []
    positions: list[int] = []
    counts: list[int] = []
    for hist in hists:
        firsts.append(len(positions) + 1)
        for bucket, count in sorted(hist.items()):
            positions.append(bucket + 1)
            counts.append(count)
        lasts.append(len(positions))
    return firsts, lasts, positions, counts


async def _add(conn: asyncpg.Connection, table: str, rollups: Sequence[Rollup]) -> None:
    if not rollups:
        return
    keys = list(zip(*(r.key for r in rollups), strict=True))
    measures = [[r.requests for r in rollups], [r.errors for r in rollups], [r.input_tokens for r in rollups],
                [r.output_tokens for r in rollups], [r.latency_count for r in rollups],
                [r.latency_sum_ms for r in rollups], [r.ttft_count for r in rollups]]
    lat_first, lat_last, lat_positions, lat_counts = _sparse([r.latency_hist for r in rollups])
    ttft_first, ttft_last, ttft_positions, ttft_counts = _sparse([r.ttft_hist for r in rollups])
    await conn.execute(_UPSERTS[table], *[list(k) for k in keys], *measures, lat_first, lat_last, ttft_first,
                       ttft_last, lat_positions, lat_counts, ttft_positions, ttft_counts)


async def add_tenant_hourly(conn: asyncpg.Connection, *, rollups: Sequence[Rollup]) -> None:
    """Add hourly `rollups` (by app and prompt) to the tenant-level rollups, summed without those: per hour,
    environment and model (`trace_metrics_tenant_hourly`), per UTC day, environment and model
    (`..._tenant_daily`) and per hour (`..._tenant_hour_totals`); a few rows each per batch."""
    tenant = tenant_rollups(rollups)
    await _add(conn, TABLES["tenant_hour"], tenant)
    await _add(conn, TABLES["tenant_day"], tenant_daily_rollups(tenant))
    await _add(conn, TABLES["tenant_totals"], tenant_totals(tenant))


def table_for(unit: str, group: str | None, filters: dict[str, str], *, days: bool = False) -> str:
    """The rollup a series reads: per minute, else a tenant-level one when the grouping and the filters need
    nothing it lacks (app, prompt version): per day for a day series (`days`; its whole UTC days, the hourly
    one for the hours of the days it starts or ends within: `series`), per hour with no environment and no
    model when there is neither a grouping nor a filter, else per hour, environment and model; else the
    hourly one by app."""
    if unit == "minute":
        return TABLES["minute"]
    needed = set(filters) | ({group} if group else set())
    if not needed <= TENANT_DIMENSIONS:
        return TABLES["hour"]
    if days:
        return TABLES["tenant_day"]
    return TABLES["tenant_hour"] if needed else TABLES["tenant_totals"]


def whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The whole UTC days within [start, end) as [first midnight, last midnight), or None if there are none."""
    first = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if first < start:
        first += timedelta(days=1)
    last = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (first, last) if first < last else None


async def add(conn: asyncpg.Connection, *, unit: str, rollups: Sequence[Rollup]) -> None:
    """Add `rollups` to the `unit` ("minute" or "hour") table, in the caller's transaction."""
    await _add(conn, TABLES[unit], rollups)


RANKED = (0.5, 0.95, 0.99)
"""The quantiles whose buckets `trace_metrics_tenant_hour_totals` stores per row (`latency_ranks`,
`ttft_ranks`: migration traces/0013), which an hour series with no grouping and no filter reads instead of
the histograms (a row per point)."""

_MEASURES_SUMMED = """sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
    sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
    sum(latency_count)::bigint AS latency_count, sum(latency_sum_ms) AS latency_sum_ms,
    traces_hist_sum(latency_hist) AS latency_hist, traces_hist_sum(ttft_hist) AS ttft_hist"""


async def series(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, unit: str, bucket_sql: str,
                 start: datetime, end: datetime, group: str | None, filters: dict[str, str],
                 days: bool = False) -> list[asyncpg.Record]:
    """Rows of (bucket, group value, requests, errors, tokens, latency and TTFT histograms) over
    [start, end), bucketed by `bucket_sql` (a constant expression over `bucket`) from the `unit` table
    (`table_for`; `days`: a day series, `bucket_sql` buckets by UTC day). From the hourly totals (no
    grouping, no filter, hours) the rows have the buckets of the `RANKED` quantiles (`latency_ranks`,
    `ttft_ranks`, NULL when empty) instead of the histograms."""
    table = table_for(unit, group, filters, days=days)
    group_sql = GROUP_COLUMNS[group] if group else "''"
    args: list[Any] = [tenant_id, start, end]
    where = ["tenant_id = $1"]
    for name, value in sorted(filters.items()):
        args.append(value)
        where.append(f"{GROUP_COLUMNS[name]} = ${len(args)}")
    if table == TABLES["tenant_totals"]:  # a row per hour: its percentiles are stored (`RANKED`), not summed
        return await db.fetch("""
            SELECT bucket, '' AS grp, requests, errors, input_tokens, output_tokens, latency_count, latency_sum_ms,
                   latency_ranks, ttft_ranks
            FROM trace_metrics_tenant_hour_totals WHERE tenant_id = $1 AND bucket >= $2 AND bucket < $3
            ORDER BY 1""", *args)
    middle = whole_days(start, end) if table == TABLES["tenant_day"] else None
    if table == TABLES["tenant_day"] and middle is None:
        table = TABLES["tenant_hour"]
    if middle is None:
        return await db.fetch(f"""
            SELECT {bucket_sql} AS bucket, {group_sql} AS grp, {_MEASURES_SUMMED}
            FROM {table} WHERE {" AND ".join(where)} AND bucket >= $2 AND bucket < $3
            GROUP BY 1, 2 ORDER BY 1, 2""", *args)  # noqa: S608  (constant names; values are parameters)
    # The whole days from the daily rollup, the hours before the first and after the last from the hourly one.
    args += list(middle)
    first, last = f"${len(args) - 1}", f"${len(args)}"
    measures = "requests, errors, input_tokens, output_tokens, latency_count, latency_sum_ms, latency_hist, ttft_hist"
    return await db.fetch(f"""
        SELECT bucket, grp, {_MEASURES_SUMMED} FROM (
            SELECT {bucket_sql} AS bucket, {group_sql} AS grp, {measures} FROM {TABLES["tenant_hour"]}
            WHERE {" AND ".join(where)} AND ((bucket >= $2 AND bucket < {first}) OR (bucket >= {last} AND bucket < $3))
            UNION ALL
            SELECT bucket, {group_sql} AS grp, {measures} FROM {table}
            WHERE {" AND ".join(where)} AND bucket >= {first} AND bucket < {last}) parts
        GROUP BY 1, 2 ORDER BY 1, 2""", *args)  # noqa: S608  (constant names; values are parameters)
