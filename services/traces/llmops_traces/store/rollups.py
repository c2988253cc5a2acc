"""`trace_metrics_minute` and `trace_metrics_hourly`: the worker's increments, and the metrics reads.

Increments come from the span rows actually inserted (`spans.rollups`), in key order, added in place
(histograms sent sparse and added by `traces_hist_add_sparse`: only the buckets a batch touched). Reads
sum rollup rows over the buckets asked for (`traces_hist_sum`), grouped by one dimension or none, from the
coarsest rollup that has the dimensions asked for (`table_for`): summing a month of the app-level hourly
rollup of a tenant with 1,000 apps took 17 s (334,320 rows), its tenant-level twin holds a row per
environment and model of each hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from llmops_traces import histogram
from llmops_traces.spans import ROLLUP_KEY, TENANT_ROLLUP_KEY, Rollup, tenant_rollups

TABLES = {"minute": "trace_metrics_minute", "hour": "trace_metrics_hourly",
          "tenant_hour": "trace_metrics_tenant_hourly"}
TENANT_DIMENSIONS = frozenset({"environment", "model"})
"""What `trace_metrics_tenant_hourly` keeps besides tenant and hour: a series grouped and filtered by these
only reads it (a row per environment and model of each hour, not per app and prompt)."""
GROUP_COLUMNS = {"app": "app_id", "environment": "environment", "model": "model", "prompt_version": "prompt_version"}


KEYS = {"trace_metrics_minute": ROLLUP_KEY, "trace_metrics_hourly": ROLLUP_KEY,
        "trace_metrics_tenant_hourly": TENANT_ROLLUP_KEY}
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
    """Add hourly `rollups` (by app and prompt) to `trace_metrics_tenant_hourly`, summed without those."""
    await _add(conn, TABLES["tenant_hour"], tenant_rollups(rollups))


def table_for(unit: str, group: str | None, filters: dict[str, str]) -> str:
    """The rollup a series reads: per minute, else the tenant's hourly one when the grouping and the filters
    need nothing it lacks (app, prompt version), else the hourly one by app."""
    if unit == "minute":
        return TABLES["minute"]
    needed = set(filters) | ({group} if group else set())
    return TABLES["tenant_hour"] if needed <= TENANT_DIMENSIONS else TABLES["hour"]


async def add(conn: asyncpg.Connection, *, unit: str, rollups: Sequence[Rollup]) -> None:
    """Add `rollups` to the `unit` ("minute" or "hour") table, in the caller's transaction."""
    await _add(conn, TABLES[unit], rollups)


async def series(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, unit: str, bucket_sql: str,
                 start: datetime, end: datetime, group: str | None,
                 filters: dict[str, str]) -> list[asyncpg.Record]:
    """Rows of (bucket, group value, requests, errors, tokens, latency and TTFT histograms) over
    [start, end), bucketed by `bucket_sql` (a constant expression over `bucket`) from the `unit` table."""
    table = table_for(unit, group, filters)
    group_sql = GROUP_COLUMNS[group] if group else "''"
    where = ["tenant_id = $1", "bucket >= $2", "bucket < $3"]
    args: list[Any] = [tenant_id, start, end]
    for name, value in sorted(filters.items()):
        args.append(value)
        where.append(f"{GROUP_COLUMNS[name]} = ${len(args)}")
    return await db.fetch(f"""
        SELECT {bucket_sql} AS bucket, {group_sql} AS grp, sum(requests)::bigint AS requests,
               sum(errors)::bigint AS errors, sum(input_tokens)::bigint AS input_tokens,
               sum(output_tokens)::bigint AS output_tokens, sum(latency_count)::bigint AS latency_count,
               sum(latency_sum_ms) AS latency_sum_ms, traces_hist_sum(latency_hist) AS latency_hist,
               traces_hist_sum(ttft_hist) AS ttft_hist
        FROM {table} WHERE {" AND ".join(where)}
        GROUP BY 1, 2 ORDER BY 1, 2""", *args)  # noqa: S608  (constant names; values are parameters)
