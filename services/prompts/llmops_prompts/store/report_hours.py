"""`prompt_report_hours` and `prompt_report_hour_variants` (prompts 0002): the report's cache of closed hours,
and the stamps that say whether a cached hour still holds what its sources hold.

An hour's stamp is what the sources' own per-hour counters say, read in the same snapshot as the hour's rows:
billing's `usage_hourly` for the prompt (events, cost total and when it last changed: a late event or a
re-pricing moves them), the trace store's `trace_metrics_hourly` for the prompt (spans and latencies: a late
span), the tenant's guardrail findings in the hour (a late finding: counted on the findings' index), the
tenant's judge results in the hour (a late result, or an error replaced by a score: their count and latest
update) and the tenant's trace erasures (spans deleted). All written in the same transaction as the rows they
count, so a stamp read with the rows describes exactly those rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

import asyncpg
import numpy as np
import orjson

from llmops_prompts.rollup import Part, Sums, floats, unit_hashes

_STAMPS = """
WITH h AS (SELECT unnest($3::timestamptz[]) AS hour),
erased AS (SELECT count(*) AS n, coalesce(extract(epoch FROM max(requested_at)), 0) AS at
           FROM trace_erasures WHERE tenant_id = $1)
SELECT h.hour,
       concat_ws('/',
         (SELECT concat_ws(',', coalesce(sum(u.event_count), 0), coalesce(sum(u.cost_total), 0),
                           coalesce(extract(epoch FROM max(u.updated_at)), 0))
          FROM usage_hourly u WHERE u.tenant_id = $1 AND u.bucket = h.hour AND u.prompt_name = $2),
         (SELECT concat_ws(',', coalesce(sum(m.requests), 0), coalesce(sum(m.latency_count), 0))
          FROM trace_metrics_hourly m WHERE m.tenant_id = $1 AND m.bucket = h.hour AND m.prompt_name = $2),
         (SELECT count(*) FROM guardrail_findings f
          WHERE f.tenant_id = $1 AND f.occurred_at >= h.hour AND f.occurred_at < h.hour + interval '1 hour'),
         (SELECT concat_ws(',', count(*), coalesce(extract(epoch FROM max(x.updated_at)), 0))
          FROM evaluation_results x
          WHERE x.tenant_id = $1 AND x.occurred_at >= h.hour AND x.occurred_at < h.hour + interval '1 hour'),
         (SELECT concat_ws(',', n, at) FROM erased)) AS stamp
FROM h"""


async def stamps(conn: asyncpg.Connection, *, tenant_id: str, prompt: str, hours: Sequence[datetime]
                 ) -> dict[datetime, str]:
    """Each hour's stamp now (in the caller's snapshot)."""
    if not hours:
        return {}
    return {r["hour"]: r["stamp"] for r in await conn.fetch(_STAMPS, tenant_id, prompt, list(hours))}


async def cached(conn: asyncpg.Connection, *, tenant_id: str, prompt: str, unit: str,
                 current: Mapping[datetime, str]) -> dict[datetime, dict[str, Part]]:
    """The cached hours among `current` (hour -> its stamp now) whose stamp still matches, each with its
    variants' parts."""
    if not current:
        return {}
    rows = await conn.fetch(
        """SELECT h.hour, h.stamp, v.variant, v.calls, v.errors, v.findings, v.cost_n, v.cost_sum, v.cost_sq, v.units,
                  v.latencies, v.scores
           FROM prompt_report_hours h
           LEFT JOIN prompt_report_hour_variants v USING (tenant_id, prompt_name, unit, hour)
           WHERE h.tenant_id = $1 AND h.prompt_name = $2 AND h.unit = $3 AND h.hour = ANY($4::timestamptz[])""",
        tenant_id, prompt, unit, list(current))
    out: dict[datetime, dict[str, Part]] = {}
    for r in rows:
        if current.get(r["hour"]) != r["stamp"]:
            continue
        variants = out.setdefault(r["hour"], {})
        if r["variant"] is not None:
            variants[r["variant"]] = Part(
                calls=r["calls"], errors=r["errors"], findings=r["findings"],
                cost=Sums(r["cost_n"], r["cost_sum"], r["cost_sq"]), units=unit_hashes(r["units"]),
                latencies=floats(r["latencies"]),
                scores={rubric: Sums(n, Decimal(total), Decimal(squares))
                        for rubric, (n, total, squares) in orjson.loads(r["scores"]).items()})
    return out


def _bytes(values: np.ndarray, dtype: str) -> bytes:
    return np.asarray(values).astype(dtype).tobytes()


async def store(conn: asyncpg.Connection, *, tenant_id: str, prompt: str, unit: str,
                hours: Mapping[datetime, tuple[str, dict[str, Part]]]) -> None:
    """Replace the cached hours `hours` (hour -> (the stamp read with its parts, its parts per variant)). The hour's
    row is written first, so two writers of one hour take turns; an hour is replaced whole, never added to."""
    async with conn.transaction():
        for hour, (stamp, variants) in sorted(hours.items()):
            await conn.execute(
                """INSERT INTO prompt_report_hours (tenant_id, prompt_name, unit, hour, stamp)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (tenant_id, prompt_name, unit, hour)
                   DO UPDATE SET stamp = excluded.stamp, computed_at = now()""",
                tenant_id, prompt, unit, hour, stamp)
            await conn.execute("DELETE FROM prompt_report_hour_variants "
                               "WHERE tenant_id = $1 AND prompt_name = $2 AND unit = $3 AND hour = $4",
                               tenant_id, prompt, unit, hour)
            await conn.executemany(
                """INSERT INTO prompt_report_hour_variants (tenant_id, prompt_name, unit, hour, variant, calls, errors,
                                                           findings, cost_n, cost_sum, cost_sq, units, latencies,
                                                           scores)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb)""",
                [(tenant_id, prompt, unit, hour, variant, p.calls, p.errors, p.findings, p.cost.n, p.cost.total,
                  p.cost.squares, _bytes(p.units, ">i8"), _bytes(p.latencies, ">f8"),
                  orjson.dumps({rubric: [s.n, str(s.total), str(s.squares)]
                                for rubric, s in p.scores.items()}).decode())
                 for variant, p in variants.items()])
