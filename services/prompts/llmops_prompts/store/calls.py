"""An experiment's calls, read from the other services' tables: billing's ledger (every event of a prompt,
with its variant and cost), the trace store's spans (latency, session), guardrails' findings and the
evaluator's results (judge scores per rubric). Read only; every query names the tenant.

Postgres aggregates what it can (counts, distinct units, the moments of costs and scores); what comes back
per variant is bounded except for the latencies (one float per call with a span, for the quantiles):
costs only while a variant has at most `stats.BOOTSTRAP_MAX_VALUES` of them (for the bootstrap), scores never."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import numpy as np

from llmops_prompts.report import VariantData
from llmops_prompts.stats import BOOTSTRAP_MAX_VALUES, Moments

_UNIT = {"user": "c.user_id", "trace": "c.trace_id", "session": "s.session_id"}


def _moments(n: int, mean: float | None, var: float | None) -> Moments:
    return Moments(n, mean or 0.0, var or 0.0)


async def variant_data(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, prompt: str, variants: list[str],
                       unit: str, start: datetime, end: datetime) -> dict[str, VariantData]:
    """Per variant name: its calls between `start` and `end` (`VariantData`)."""
    rows = await db.fetch(
        f"""WITH calls AS (
                SELECT l.event_id, l.occurred_at, l.prompt_variant AS variant, l.cost_total::float8 AS cost, l.status,
                       l.user_id, l.trace_id
                FROM usage_ledger l
                WHERE l.tenant_id = $1 AND l.prompt_name = $2 AND l.prompt_variant = ANY($3::text[])
                  AND l.occurred_at >= $4 AND l.occurred_at < $5),
            flagged AS (
                SELECT DISTINCT f.event_id, f.occurred_at FROM guardrail_findings f
                WHERE f.tenant_id = $1 AND f.occurred_at >= $4 AND f.occurred_at < $5)
            SELECT c.variant, count(*) AS calls, count(DISTINCT {_UNIT[unit]}) AS units,
                   count(c.cost) AS cost_n, avg(c.cost) AS cost_mean, var_samp(c.cost) AS cost_var,
                   CASE WHEN count(c.cost) <= $6 THEN array_agg(c.cost) FILTER (WHERE c.cost IS NOT NULL) END
                       AS costs,
                   array_agg(s.latency_ms) FILTER (WHERE s.latency_ms IS NOT NULL) AS latencies,
                   count(*) FILTER (WHERE c.status <> 'ok') AS errors,
                   count(f.event_id) AS findings
            FROM calls c
            LEFT JOIN trace_spans s ON s.tenant_id = $1 AND s.event_id = c.event_id AND s.occurred_at = c.occurred_at
            LEFT JOIN flagged f ON f.event_id = c.event_id AND f.occurred_at = c.occurred_at
            GROUP BY c.variant""",  # noqa: S608 (the unit's column is one of three constants)
        tenant_id, prompt, variants, start, end, BOOTSTRAP_MAX_VALUES)
    scores = await db.fetch(
        """SELECT l.prompt_variant AS variant, r.rubric, count(*) AS n, avg(r.score) AS mean,
                  var_samp(r.score) AS var
           FROM usage_ledger l
           JOIN evaluation_results r ON r.tenant_id = l.tenant_id AND r.event_id = l.event_id
                                    AND r.occurred_at = l.occurred_at
           WHERE l.tenant_id = $1 AND l.prompt_name = $2 AND l.prompt_variant = ANY($3::text[])
             AND l.occurred_at >= $4 AND l.occurred_at < $5 AND r.status = 'ok' AND r.score IS NOT NULL
             AND r.occurred_at >= $4 AND r.occurred_at < $5
           GROUP BY 1, 2""", tenant_id, prompt, variants, start, end)
    by_variant: dict[str, dict[str, Moments]] = {}
    for s in scores:
        by_variant.setdefault(s["variant"], {})[s["rubric"]] = _moments(s["n"], s["mean"], s["var"])
    return {r["variant"]: VariantData(
                calls=r["calls"], units=r["units"], errors=r["errors"], findings=r["findings"],
                cost=_moments(r["cost_n"], r["cost_mean"], r["cost_var"]),
                costs=None if r["cost_n"] > BOOTSTRAP_MAX_VALUES else np.asarray(r["costs"] or (), dtype=float),
                latencies=np.sort(np.asarray(r["latencies"] or (), dtype=float)),
                scores=by_variant.get(r["variant"], {}))
            for r in rows}
