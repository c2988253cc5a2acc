"""`trace_metrics_minute` and `trace_metrics_hourly`: the worker's increments, and the metrics reads.

Increments come from the span rows actually inserted (`spans.rollups`), in key order, added in place
(histograms element by element, `traces_hist_add`). Reads sum rollup rows over the buckets asked for
(`traces_hist_sum`), grouped by one dimension or none, from the coarsest rollup that has the dimensions
asked for (`table_for`): summing a month of the app-level hourly rollup of a tenant with 1,000 apps took
17 s (334,320 rows), its tenant-level twin holds a row per environment and model of each hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from llmops_traces.spans import Rollup, tenant_rollups

TABLES = {"minute": "trace_metrics_minute", "hour": "trace_metrics_hourly",
          "tenant_hour": "trace_metrics_tenant_hourly"}
TENANT_DIMENSIONS = frozenset({"environment", "model"})
"""What `trace_metrics_tenant_hourly` keeps besides tenant and hour: a series grouped and filtered by these
only reads it (a row per environment and model of each hour, not per app and prompt)."""
GROUP_COLUMNS = {"app": "app_id", "environment": "environment", "model": "model", "prompt_version": "prompt_version"}


def _upsert(table: str) -> str:
    return f"""
    INSERT INTO {table} (tenant_id, bucket, app_id, environment, model, prompt_name, prompt_version,
                         requests, errors, input_tokens, output_tokens, latency_count, latency_sum_ms,
                         latency_hist, ttft_count, ttft_hist)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
    ON CONFLICT (tenant_id, bucket, app_id, environment, model, prompt_name, prompt_version) DO UPDATE SET
        requests = {table}.requests + excluded.requests,
        errors = {table}.errors + excluded.errors,
        input_tokens = {table}.input_tokens + excluded.input_tokens,
        output_tokens = {table}.output_tokens + excluded.output_tokens,
        latency_count = {table}.latency_count + excluded.latency_count,
        latency_sum_ms = {table}.latency_sum_ms + excluded.latency_sum_ms,
        latency_hist = traces_hist_add({table}.latency_hist, excluded.latency_hist),
        ttft_count = {table}.ttft_count + excluded.ttft_count,
        ttft_hist = traces_hist_add({table}.ttft_hist, excluded.ttft_hist)
    """  # noqa: S608  (constant table names)


_TENANT_UPSERT = """
    INSERT INTO trace_metrics_tenant_hourly AS t (tenant_id, bucket, environment, model, requests, errors,
        input_tokens, output_tokens, latency_count, latency_sum_ms, latency_hist, ttft_count, ttft_hist)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (tenant_id, bucket, environment, model) DO UPDATE SET
        requests = t.requests + excluded.requests, errors = t.errors + excluded.errors,
        input_tokens = t.input_tokens + excluded.input_tokens, output_tokens = t.output_tokens + excluded.output_tokens,
        latency_count = t.latency_count + excluded.latency_count,
        latency_sum_ms = t.latency_sum_ms + excluded.latency_sum_ms,
        latency_hist = traces_hist_add(t.latency_hist, excluded.latency_hist),
        ttft_count = t.ttft_count + excluded.ttft_count, ttft_hist = traces_hist_add(t.ttft_hist, excluded.ttft_hist)
"""


async def add_tenant_hourly(conn: asyncpg.Connection, *, rollups: Sequence[Rollup]) -> None:
    """Add hourly `rollups` (by app and prompt) to `trace_metrics_tenant_hourly`, summed without those."""
    coarse = tenant_rollups(rollups)
    if not coarse:
        return
    await conn.executemany(_TENANT_UPSERT, [
        (*r.key, r.requests, r.errors, r.input_tokens, r.output_tokens, r.latency_count, r.latency_sum_ms,
         r.latency_hist, r.ttft_count, r.ttft_hist) for r in coarse])


def table_for(unit: str, group: str | None, filters: dict[str, str]) -> str:
    """The rollup a series reads: per minute, else the tenant's hourly one when the grouping and the filters
    need nothing it lacks (app, prompt version), else the hourly one by app."""
    if unit == "minute":
        return TABLES["minute"]
    needed = set(filters) | ({group} if group else set())
    return TABLES["tenant_hour"] if needed <= TENANT_DIMENSIONS else TABLES["hour"]


async def add(conn: asyncpg.Connection, *, unit: str, rollups: Sequence[Rollup]) -> None:
    """Add `rollups` to the `unit` ("minute" or "hour") table, in the caller's transaction."""
    if not rollups:
        return
    await conn.executemany(_upsert(TABLES[unit]), [
        (*r.key, r.requests, r.errors, r.input_tokens, r.output_tokens, r.latency_count, r.latency_sum_ms,
         r.latency_hist, r.ttft_count, r.ttft_hist) for r in rollups])


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
