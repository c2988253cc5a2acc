"""An experiment's calls, read from the other services' tables: billing's ledger (every event of a prompt,
with its variant and cost), the trace store's spans (latency, session), guardrails' findings and the
evaluator's results (judge scores per rubric). Read only; every query names the tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from llmops_prompts.report import VariantData

_UNIT = {"user": "c.user_id", "trace": "c.trace_id", "session": "s.session_id"}


async def variant_data(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, prompt: str, variants: list[str],
                       unit: str, start: datetime, end: datetime) -> dict[str, VariantData]:
    """Per variant name: its calls between `start` and `end` (`VariantData`)."""
    rows = await db.fetch(
        f"""WITH calls AS (
                SELECT l.event_id, l.occurred_at, l.prompt_variant AS variant, l.cost_total, l.status, l.user_id,
                       l.trace_id
                FROM usage_ledger l
                WHERE l.tenant_id = $1 AND l.prompt_name = $2 AND l.prompt_variant = ANY($3::text[])
                  AND l.occurred_at >= $4 AND l.occurred_at < $5)
            SELECT c.variant, count(*) AS calls, count(DISTINCT {_UNIT[unit]}) AS units,
                   array_agg(c.cost_total::float8) FILTER (WHERE c.cost_total IS NOT NULL) AS costs,
                   array_agg(s.latency_ms) FILTER (WHERE s.latency_ms IS NOT NULL) AS latencies,
                   count(*) FILTER (WHERE c.status <> 'ok') AS errors,
                   count(*) FILTER (WHERE EXISTS (
                       SELECT 1 FROM guardrail_findings f
                       WHERE f.tenant_id = $1 AND f.event_id = c.event_id AND f.occurred_at = c.occurred_at))
                       AS findings
            FROM calls c
            LEFT JOIN trace_spans s ON s.tenant_id = $1 AND s.event_id = c.event_id AND s.occurred_at = c.occurred_at
            GROUP BY c.variant""",  # noqa: S608 (the unit's column is one of three constants)
        tenant_id, prompt, variants, start, end)
    scores = await db.fetch(
        """SELECT l.prompt_variant AS variant, r.rubric, array_agg(r.score) AS scores
           FROM usage_ledger l
           JOIN evaluation_results r ON r.tenant_id = l.tenant_id AND r.event_id = l.event_id
                                    AND r.occurred_at = l.occurred_at
           WHERE l.tenant_id = $1 AND l.prompt_name = $2 AND l.prompt_variant = ANY($3::text[])
             AND l.occurred_at >= $4 AND l.occurred_at < $5 AND r.status = 'ok' AND r.score IS NOT NULL
           GROUP BY 1, 2""", tenant_id, prompt, variants, start, end)
    by_variant: dict[str, dict[str, Any]] = {}
    for s in scores:
        by_variant.setdefault(s["variant"], {})[s["rubric"]] = list(s["scores"])
    return {r["variant"]: VariantData(calls=r["calls"], units=r["units"], costs=list(r["costs"] or ()),
                                      latencies=list(r["latencies"] or ()), errors=r["errors"],
                                      findings=r["findings"], scores=by_variant.get(r["variant"], {}))
            for r in rows}
