"""Compaction of the hourly metrics rollup per app and day, and one app's series read from it.

`trace_metrics_hourly` is written hour by hour for every app of a tenant at once, so one app's month of
rows is spread over as many heap pages as it has rows (at 10 M spans of 1,000 apps, ~1,300 pages: 3 s when
not cached). Once a UTC day has ended, `compact` rewrites each tenant's day into `trace_metrics_app_days`
(migration traces/0012), one row per app holding its hourly rows (histograms sparse), written in app
order, and marks the day compacted. The writer removes the mark of any day it adds hourly rows to again (a
late event), so the marked days' rows are always equal to the hourly rows of those days; `compact` then
rewrites such a day on its next run.

A series filtered by one app (hour or day buckets) reads, in one snapshot, the marked days from the
compacted rows and the other days (today, late-written ones) from the hourly rollup, and gives the same rows
as the hourly rollup alone (`expand` sums the compacted entries as `rollups.series` sums the hourly rows).
`llmops retention` runs `compact` (`retention.apply`); the hourly rollup is still written and kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from llmops_traces.spans import day_of
from llmops_traces.store import app_days as app_days_store
from llmops_traces.store import rollups

DAY = timedelta(days=1)
GROUP_COLUMNS = {"app": "app_id", "environment": "environment", "model": "model", "prompt_version": "prompt_version"}


async def compact(pool: asyncpg.Pool, *, now: datetime, tenant_id: str | None = None, concurrency: int = 1
                  ) -> list[tuple[str, datetime, int]]:
    """Compact every (tenant, UTC day) ended before `now`'s day that is not marked compacted (of one tenant if
    given), a transaction each, `concurrency` at a time; returns (tenant, day, rows written)."""
    todo = await app_days_store.days_to_compact(pool, before=day_of(now), tenant_id=tenant_id)
    done: list[tuple[str, datetime, int]] = []

    async def worker() -> None:
        async with pool.acquire() as conn:
            while todo:
                tenant, day = todo.pop(0)
                done.append((tenant, day, await app_days_store.compact_day(conn, tenant_id=tenant, day=day)))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(done)


def written_days(keys: Sequence[tuple[Any, ...]]) -> list[tuple[str, datetime]]:
    """The (tenant, UTC day) of hourly rollup keys (tenant first, bucket second), sorted, once each."""
    return sorted({(k[0], day_of(k[1])) for k in keys})


def open_intervals(start: datetime, end: datetime, compacted: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """The parts of [start, end) on days not in `compacted` (midnights), as maximal intervals."""
    done = set(compacted)
    out: list[tuple[datetime, datetime]] = []
    day = day_of(start)
    while day < end:
        lo, hi = max(day, start), min(day + DAY, end)
        if day not in done:
            if out and out[-1][1] == lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
        day += DAY
    return out


def expand(rows: Sequence[Mapping[str, Any]], *, start: datetime, end: datetime, days: bool, group: str | None,
           filters: Mapping[str, str]) -> list[dict[str, Any]]:
    """Compacted rows (`trace_metrics_app_days`) summed per bucket (the hour, or the UTC day if `days`) and
    group value over [start, end), their entries filtered by `filters` (environment, model; the app is the
    rows'): the rows `rollups.series` gives for the same hourly rows, but with the histograms sparse
    (`latency_sparse`, `ttft_sparse`: bucket -> count of the non-zero buckets, which `histogram.
    sparse_percentiles` reads as `histogram.percentiles` reads the dense ones)."""
    column = GROUP_COLUMNS.get(group or "")
    checks = [(GROUP_COLUMNS[name], value) for name, value in filters.items() if name != "app"]
    sums: dict[tuple[datetime, str], dict[str, Any]] = {}
    for row in rows:
        kept: dict[int, tuple[dict[int, int], dict[int, int]]] = {}  # entry (from 1) -> its sum's histograms
        groups = None if column is None or column == "app_id" else row[column]
        constant = "" if column is None else row["app_id"]
        checked = [(row[name], value) for name, value in checks]
        requests, errors, input_tokens, output_tokens = (row["requests"], row["errors"], row["input_tokens"],
                                                         row["output_tokens"])
        latency_count, latency_sum_ms = row["latency_count"], row["latency_sum_ms"]
        for i, bucket in enumerate(row["bucket"]):
            if not start <= bucket < end or (checked and any(values[i] != value for values, value in checked)):
                continue
            grp = constant if groups is None else groups[i]
            key = (day_of(bucket) if days else bucket, grp)
            acc = sums.get(key)
            if acc is None:
                acc = sums[key] = {"bucket": key[0], "grp": grp, "requests": 0, "errors": 0, "input_tokens": 0,
                                   "output_tokens": 0, "latency_count": 0, "latency_sum_ms": 0.0,
                                   "latency_sparse": {}, "ttft_sparse": {}}
            acc["requests"] += requests[i]
            acc["errors"] += errors[i]
            acc["input_tokens"] += input_tokens[i]
            acc["output_tokens"] += output_tokens[i]
            acc["latency_count"] += latency_count[i]
            acc["latency_sum_ms"] += latency_sum_ms[i]
            kept[i + 1] = (acc["latency_sparse"], acc["ttft_sparse"])
        for which, prefix in enumerate(("latency", "ttft")):
            for entry, position, count in zip(row[f"{prefix}_entries"], row[f"{prefix}_positions"],
                                              row[f"{prefix}_counts"], strict=True):
                if (hists := kept.get(entry)) is not None:
                    sparse = hists[which]
                    sparse[position - 1] = sparse.get(position - 1, 0) + count
    return [sums[key] for key in sorted(sums)]


async def app_series(pool: asyncpg.Pool, *, tenant_id: str, bucket_sql: str, start: datetime, end: datetime,
                     group: str | None, filters: dict[str, str], days: bool) -> list[Mapping[str, Any]]:
    """One app's (`filters["app"]`) hour or day series: the compacted days from `trace_metrics_app_days`, the
    others from `trace_metrics_hourly` (`rollups.series`), read in one snapshot; in (bucket, group) order."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        compacted = await app_days_store.compacted_days(conn, tenant_id=tenant_id, first=day_of(start),
                                                        last=day_of(end))
        out: list[Mapping[str, Any]] = []
        if compacted:
            out += expand(await app_days_store.app_rows(conn, tenant_id=tenant_id, app_id=filters["app"],
                                                        days=compacted),
                          start=start, end=end, days=days, group=group, filters=filters)
        for lo, hi in open_intervals(start, end, compacted):
            out += await rollups.series(conn, tenant_id=tenant_id, unit="hour", bucket_sql=bucket_sql, start=lo,
                                        end=hi, group=group, filters=filters, days=days)
    return sorted(out, key=lambda r: (r["bucket"], r["grp"]))
