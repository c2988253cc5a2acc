"""`trace_metrics_app_days` (migration traces/0012): a tenant's ended days of the hourly rollup, a row per app
and day, written in (tenant, app) order so that one app's month is a few pages; and the reads of one app's
series from it (the days marked compacted) and from `trace_metrics_hourly` (the other days)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

_KEYS = ("bucket", "environment", "model", "prompt_name", "prompt_version")
_MEASURES = ("requests", "errors", "input_tokens", "output_tokens", "latency_count", "latency_sum_ms", "ttft_count")
COLUMNS = (*_KEYS, *_MEASURES)
"""The per-entry arrays of a row, in order; then the sparse histograms."""


def _sparse(hist: str) -> str:
    """The day's non-zero buckets of `hist` per app: (entry, position, count) as three arrays."""
    return f"""
    SELECT e.app_id, array_agg(e.n ORDER BY e.n, u.i)::int4[] AS entries, array_agg(u.i ORDER BY e.n, u.i)::int4[]
           AS positions, array_agg(u.c ORDER BY e.n, u.i) AS counts
    FROM entries e, unnest(e.{hist}) WITH ORDINALITY AS u(c, i) WHERE u.c <> 0 GROUP BY e.app_id"""  # noqa: S608


_COMPACT = f"""
WITH entries AS MATERIALIZED (
    SELECT row_number() OVER (PARTITION BY app_id ORDER BY {", ".join(_KEYS)}) AS n, *
    FROM trace_metrics_hourly WHERE tenant_id = $1 AND bucket >= $2 AND bucket < $2 + interval '1 day'),
per_app AS (SELECT app_id, {", ".join(f"array_agg({c} ORDER BY n) AS {c}" for c in COLUMNS)}
         FROM entries GROUP BY app_id),
lat AS ({_sparse("latency_hist")}),
ttft AS ({_sparse("ttft_hist")})
INSERT INTO trace_metrics_app_days (tenant_id, app_id, day, {", ".join(COLUMNS)}, latency_entries, latency_positions,
    latency_counts, ttft_entries, ttft_positions, ttft_counts)
SELECT $1, r.app_id, $2, {", ".join(f"r.{c}" for c in COLUMNS)},
       coalesce(lat.entries, '{{}}'), coalesce(lat.positions, '{{}}'), coalesce(lat.counts, '{{}}'),
       coalesce(ttft.entries, '{{}}'), coalesce(ttft.positions, '{{}}'), coalesce(ttft.counts, '{{}}')
FROM per_app r LEFT JOIN lat USING (app_id) LEFT JOIN ttft USING (app_id) ORDER BY r.app_id
"""  # noqa: S608  (constant names)


async def days_to_compact(db: asyncpg.Pool | asyncpg.Connection, *, before: datetime, tenant_id: str | None = None
                          ) -> list[tuple[str, datetime]]:
    """(tenant, day) of the days that have hourly rows, ended by `before` and are not marked compacted (the
    tenant daily rollup has a row per tenant and day with spans: a small table); one tenant's if given."""
    rows = await db.fetch("""
        SELECT DISTINCT d.tenant_id, d.bucket AS day FROM trace_metrics_tenant_daily d
        WHERE d.bucket + interval '1 day' <= $1 AND ($2::text IS NULL OR d.tenant_id = $2)
          AND NOT EXISTS (SELECT 1 FROM trace_metrics_compacted_days c
                          WHERE c.tenant_id = d.tenant_id AND c.day = d.bucket)
        ORDER BY 2, 1""", before, tenant_id)
    return [(r["tenant_id"], r["day"]) for r in rows]


async def compact_day(conn: asyncpg.Connection, *, tenant_id: str, day: datetime) -> int:
    """Rewrite one tenant's UTC day (its midnight) into `trace_metrics_app_days` and mark it, in one
    transaction, holding the day's lock exclusively (the writer's `traces_metrics_days_written` takes it
    shared): the rows read are those of every writer committed before. Returns the rows written."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(traces_metrics_day_key($1, $2))", tenant_id, day)
        await conn.execute("DELETE FROM trace_metrics_app_days WHERE tenant_id = $1 AND day = $2", tenant_id, day)
        status = await conn.execute(_COMPACT, tenant_id, day)
        await conn.execute("""INSERT INTO trace_metrics_compacted_days (tenant_id, day) VALUES ($1, $2)
                              ON CONFLICT (tenant_id, day) DO UPDATE SET compacted_at = now()""", tenant_id, day)
    return int(status.split()[-1])


async def days_written(conn: asyncpg.Connection, days: Sequence[tuple[str, datetime]]) -> None:
    """The writer's side, in its batch transaction: the (tenant, day)s it added hourly rows to are no longer
    compacted (`traces_metrics_days_written`, migration traces/0012)."""
    if days:
        await conn.execute("SELECT traces_metrics_days_written($1::text[], $2::timestamptz[])",
                           [t for t, _ in days], [d for _, d in days])


async def compacted_days(conn: asyncpg.Connection, *, tenant_id: str, first: datetime, last: datetime
                         ) -> list[datetime]:
    """The tenant's days marked compacted among [first, last] (midnights)."""
    rows = await conn.fetch("""SELECT day FROM trace_metrics_compacted_days
                               WHERE tenant_id = $1 AND day >= $2 AND day <= $3 ORDER BY day""", tenant_id, first, last)
    return [r["day"] for r in rows]


async def app_rows(conn: asyncpg.Connection, *, tenant_id: str, app_id: str, days: Sequence[datetime]
                   ) -> list[asyncpg.Record]:
    """The app's compacted rows of `days`."""
    return await conn.fetch(f"""
        SELECT app_id, day, {", ".join(COLUMNS)}, latency_entries, latency_positions, latency_counts, ttft_entries,
               ttft_positions, ttft_counts
        FROM trace_metrics_app_days WHERE tenant_id = $1 AND app_id = $2 AND day = ANY($3::timestamptz[])
        ORDER BY day""", tenant_id, app_id, list(days))  # noqa: S608  (constant names)
