"""`prompt_report_hours` and `prompt_report_hour_variants` (prompts 0002): the report's cache of stretches of time
that have ended (whole UTC hours, and the part of an hour a window starts or ends in), and the stamps of their
hours that say whether a cached stretch still holds what its sources hold.

An hour's stamp is what the sources' own per-hour counters say, read in the same snapshot as the hour's rows:
billing's `usage_hourly` for the prompt (events, cost total and when it last changed: a late event or a
re-pricing moves them), the trace store's `trace_metrics_hourly` for the prompt (spans and latencies: a late
span), the tenant's guardrail findings in the hour (a late finding: counted on the findings' index), the
tenant's judge results in the hour (a late result, or an error replaced by a score: their count and latest
update) and the tenant's trace erasures (spans deleted). All written in the same transaction as the rows they
count, so a stamp read with the rows describes exactly those rows.

`warming` is the report warmer's lock (one per tenant, prompt and unit: `llmops_prompts.warmer`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal

import asyncpg
import numpy as np
import orjson

from llmops_prompts.rollup import Part, Stretch, Sums, floats, unit_hashes

_STAMPS = """
WITH h AS (SELECT unnest($3::timestamptz[]) AS hour),
erased AS (SELECT count(*) AS n, coalesce(extract(epoch FROM max(requested_at)), 0) AS at
           FROM trace_erasures WHERE tenant_id = $1),
judged AS (SELECT date_trunc('hour', x.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, count(*) AS n,
                  extract(epoch FROM max(x.updated_at)) AS at
           FROM evaluation_results x
           WHERE x.tenant_id = $1 AND x.occurred_at >= (SELECT min(hour) FROM h)
             AND x.occurred_at < (SELECT max(hour) FROM h) + interval '1 hour'
           GROUP BY 1)
SELECT h.hour,
       concat_ws('/',
         (SELECT concat_ws(',', coalesce(sum(u.event_count), 0), coalesce(sum(u.cost_total), 0),
                           coalesce(extract(epoch FROM max(u.updated_at)), 0))
          FROM usage_hourly u WHERE u.tenant_id = $1 AND u.bucket = h.hour AND u.prompt_name = $2),
         (SELECT concat_ws(',', coalesce(sum(m.requests), 0), coalesce(sum(m.latency_count), 0))
          FROM trace_metrics_hourly m WHERE m.tenant_id = $1 AND m.bucket = h.hour AND m.prompt_name = $2),
         (SELECT count(*) FROM guardrail_findings f
          WHERE f.tenant_id = $1 AND f.occurred_at >= h.hour AND f.occurred_at < h.hour + interval '1 hour'),
         concat_ws(',', coalesce(j.n, 0), coalesce(j.at, 0)),
         (SELECT concat_ws(',', n, at) FROM erased)) AS stamp
FROM h LEFT JOIN judged j USING (hour)"""
# The judge's results are read once over the window's hours, grouped by hour (their index leads with the
# evaluator, so a look-up per hour would read the tenant's whole index range each time).


async def stamps(conn: asyncpg.Connection, *, tenant_id: str, prompt: str, hours: Sequence[datetime]
                 ) -> dict[datetime, str]:
    """Each hour's stamp now (in the caller's snapshot)."""
    if not hours:
        return {}
    return {r["hour"]: r["stamp"] for r in await conn.fetch(_STAMPS, tenant_id, prompt, list(hours))}


async def cached(conn: asyncpg.Connection, *, tenant_id: str, prompt: str, unit: str,
                 wanted: Sequence[Stretch], current: Mapping[datetime, str]) -> dict[Stretch, dict[str, Part]]:
    """The `wanted` stretches that are cached with their hour's stamp now (`current`: hour -> stamp), each with its
    variants' parts."""
    by_bounds = {(s.start, s.end): s for s in wanted}
    if not by_bounds:
        return {}
    rows = await conn.fetch(
        """SELECT h.since, h.until, h.hour, h.stamp, v.variant, v.calls, v.errors, v.findings, v.cost_n, v.cost_sum,
                  v.cost_sq, v.units, v.latencies, v.scores
           FROM prompt_report_hours h
           LEFT JOIN prompt_report_hour_variants v USING (tenant_id, prompt_name, unit, since, until)
           WHERE h.tenant_id = $1 AND h.prompt_name = $2 AND h.unit = $3 AND h.hour = ANY($4::timestamptz[])""",
        tenant_id, prompt, unit, sorted({s.hour for s in wanted}))
    out: dict[Stretch, dict[str, Part]] = {}
    for r in rows:
        stretch = by_bounds.get((r["since"], r["until"]))
        if stretch is None or current.get(r["hour"]) != r["stamp"]:
            continue
        variants = out.setdefault(stretch, {})
        if r["variant"] is not None:
            variants[r["variant"]] = Part(
                calls=r["calls"], errors=r["errors"], findings=r["findings"],
                cost=Sums(r["cost_n"], r["cost_sum"], r["cost_sq"]), units=unit_hashes(r["units"]),
                latencies=floats(r["latencies"]),
                scores={rubric: Sums(n, Decimal(total), Decimal(squares))
                        for rubric, (n, total, squares) in orjson.loads(r["scores"]).items()})
    return out


async def kept(conn: asyncpg.Connection, *, tenant_id: str, prompt: str, unit: str, wanted: Sequence[Stretch],
               current: Mapping[datetime, str]) -> set[Stretch]:
    """The `wanted` stretches that are cached with their hour's stamp now (`current`), without reading their
    parts (what the warmer needs to know)."""
    by_bounds = {(s.start, s.end): s for s in wanted}
    if not by_bounds:
        return set()
    rows = await conn.fetch(
        """SELECT since, until, hour, stamp FROM prompt_report_hours
           WHERE tenant_id = $1 AND prompt_name = $2 AND unit = $3 AND hour = ANY($4::timestamptz[])""",
        tenant_id, prompt, unit, sorted({s.hour for s in wanted}))
    return {by_bounds[(r["since"], r["until"])] for r in rows
            if (r["since"], r["until"]) in by_bounds and current.get(r["hour"]) == r["stamp"]}


_WARMING = 0x0E7A11  # the advisory lock class of the report's warmer (one lock per tenant, prompt and unit)


@asynccontextmanager
async def warming(conn: asyncpg.Connection, *, tenant_id: str, prompt: str, unit: str) -> AsyncIterator[bool]:
    """Try to take the session advisory lock of (tenant, prompt, unit) on `conn`: True while this process is the
    one warming it, False when another holds it (skip it this time). Released on exit (and by the pool's reset
    of a connection, or the server when it drops)."""
    got = await conn.fetchval("SELECT pg_try_advisory_lock($1::int, hashtext($2))", _WARMING,
                              f"{tenant_id}\x1f{prompt}\x1f{unit}")
    try:
        yield bool(got)
    finally:
        if got:
            await conn.execute("SELECT pg_advisory_unlock($1::int, hashtext($2))", _WARMING,
                               f"{tenant_id}\x1f{prompt}\x1f{unit}")


def _bytes(values: np.ndarray, dtype: str) -> bytes:
    return np.asarray(values).astype(dtype).tobytes()


async def store(conn: asyncpg.Connection, *, tenant_id: str, prompt: str, unit: str,
                stretches: Mapping[Stretch, tuple[str, dict[str, Part]]]) -> None:
    """Replace the cached `stretches` (each -> (its hour's stamp read with its parts, its parts per variant)). A
    stretch's row is written first, so two writers of one stretch take turns; a stretch is replaced whole, never
    added to. A part of an hour replaces any other part of that hour (at most one is kept: a window's edge)."""
    async with conn.transaction():
        for stretch, (stamp, variants) in sorted(stretches.items(), key=lambda item: item[0].start):
            key = (tenant_id, prompt, unit, stretch.start, stretch.end)
            if not stretch.whole:
                await conn.execute(
                    """DELETE FROM prompt_report_hours
                       WHERE tenant_id = $1 AND prompt_name = $2 AND unit = $3 AND hour = $4
                         AND (since, until) <> ($5, $6) AND (since, until) <> ($4, $4 + interval '1 hour')""",
                    tenant_id, prompt, unit, stretch.hour, stretch.start, stretch.end)
            await conn.execute(
                """INSERT INTO prompt_report_hours (tenant_id, prompt_name, unit, since, until, hour, stamp)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)
                   ON CONFLICT (tenant_id, prompt_name, unit, since, until)
                   DO UPDATE SET stamp = excluded.stamp, computed_at = now()""",
                *key, stretch.hour, stamp)
            await conn.execute("DELETE FROM prompt_report_hour_variants WHERE tenant_id = $1 AND prompt_name = $2 "
                               "AND unit = $3 AND since = $4 AND until = $5", *key)
            await conn.executemany(
                """INSERT INTO prompt_report_hour_variants (tenant_id, prompt_name, unit, since, until, variant, calls,
                                                           errors, findings, cost_n, cost_sum, cost_sq, units,
                                                           latencies, scores)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb)""",
                [(*key, variant, p.calls, p.errors, p.findings, p.cost.n, p.cost.total, p.cost.squares,
                  _bytes(p.units, ">i8"), _bytes(p.latencies, ">f8"),
                  orjson.dumps({rubric: [s.n, str(s.total), str(s.squares)]
                                for rubric, s in p.scores.items()}).decode())
                 for variant, p in variants.items()])
