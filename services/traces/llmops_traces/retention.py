"""Retention of the trace store, per tenant, by dropping whole day partitions (never a DELETE).

`llmops retention` calls `apply` (`llmops_shared.retention.EXTERNAL`). Spans and minute rollups live in
day partitions shared by every tenant, and tenants keep their spans for different times (their own
`retention_days`, else `LLMOPS_TRACES_RETENTION_DAYS`, 30; at most `LLMOPS_TRACES_RETENTION_MAX_DAYS`). So:

- a day partition is dropped once its whole day ended more than the **longest** retention in force ago
  (`drop_after_days`: the default, or the longest a tenant chose, whichever is longer);
- a tenant with a shorter retention never sees its older spans: every read starts at its own cutoff
  (`visible_from`), so they are gone for it at its retention, and gone from the disk at most
  `drop_after_days` + 1 days after they occurred (at most `retention_max_days` + 1): the documented bound;
- the default partition (rows whose day had no partition: outside the writer's window) is small; its
  rows of the days before the cutoff's day are deleted (whole UTC days, as partitions are dropped, so
  that the per-trace-and-day summaries, `trace_summaries`, still equal the spans that are left);
- `trace_summaries` (a row per trace and day) goes with the spans: the same days dropped, the same rows
  of the default partition deleted;
- the hourly metrics rollups (counts and histograms, no text, no user) are kept, and the ended days not yet
  compacted per app are compacted (`compaction.compact`; not in a dry run).

Shortening a retention hides the older spans at once; lengthening one cannot bring back what was dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from llmops_shared.partitions import month_partitions
from llmops_shared.retention import Outcome, delete_expired_default, drop_partition, expired
from llmops_traces import compaction
from llmops_traces.settings import TracesSettings
from llmops_traces.store import tenant_settings
from llmops_traces.store.partitions import DAY_PARTITIONED, day_start

TIME_COLUMNS = {"trace_spans": "occurred_at", "trace_metrics_minute": "bucket", "trace_summaries": "day"}


def retention_days(settings: TracesSettings, chosen: int | None) -> int:
    """A tenant's retention: its choice (within the maximum), else the default."""
    return settings.retention_days if chosen is None else min(chosen, settings.retention_max_days)


def visible_from(settings: TracesSettings, chosen: int | None, now: datetime) -> datetime:
    """The earliest instant of a tenant's spans that reads may return."""
    return now - timedelta(days=retention_days(settings, chosen))


def drop_after_days(settings: TracesSettings, longest_chosen: int | None) -> int:
    """After how many days a day partition is dropped: the longest retention in force."""
    return max(settings.retention_days, retention_days(settings, longest_chosen))


async def run(pool: asyncpg.Pool, settings: TracesSettings, *, now: datetime, dry_run: bool = False,
              lock_timeout_s: float = 10.0) -> list[Outcome]:
    """Apply the trace store's retention as of `now` (see the module docstring)."""
    if not await pool.fetchval("SELECT to_regclass('trace_spans') IS NOT NULL"):
        return []
    days = drop_after_days(settings, await tenant_settings.longest_retention(pool))
    cutoff = now - timedelta(days=days)
    outcomes: list[Outcome] = []
    for table in DAY_PARTITIONED:
        partitions = await month_partitions(pool, table)  # any range partitions: days here
        for part in expired(partitions, cutoff):
            outcomes.append(await drop_partition(pool, table, part, days=days, lock_timeout_s=lock_timeout_s,
                                                 dry_run=dry_run))
        for part in partitions:
            if part.is_default:
                outcomes.append(await delete_expired_default(pool, table, part, column=TIME_COLUMNS[table],
                                                             cutoff=day_start(cutoff), days=days, dry_run=dry_run))
    if not dry_run:
        compacted = await compaction.compact(pool, now=now)
        if compacted:
            outcomes.append(Outcome("trace_metrics_app_days", "compacted", "trace_metrics_app_days", note=(
                f"{len(compacted)} tenant days, {sum(rows for _, _, rows in compacted)} app rows")))
    return outcomes


async def apply(pool: asyncpg.Pool, *, now: datetime, dry_run: bool, lock_timeout_s: float) -> list[Outcome]:
    """The hook of `llmops retention`: `run` with this process's `LLMOPS_TRACES_*` settings."""
    return await run(pool, TracesSettings(), now=now, dry_run=dry_run, lock_timeout_s=lock_timeout_s)
