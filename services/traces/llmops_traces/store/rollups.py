"""`trace_metrics_minute` and `trace_metrics_hourly`: the worker's increments, and the metrics reads.

Increments come from the span rows actually inserted (`spans.rollups`), in key order, added in place
(histograms element by element, `traces_hist_add`). Reads sum rollup rows over the buckets asked for
(`traces_hist_sum`), grouped by one dimension or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from llmops_traces.spans import Rollup

TABLES = {"minute": "trace_metrics_minute", "hour": "trace_metrics_hourly"}
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
    table = TABLES[unit]
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
