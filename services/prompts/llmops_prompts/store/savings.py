"""What the spend-less recommendations read: billing's ledger (models, costs, cache reads), the evaluator's
scores, and the trace store's redacted inputs (exact repeats). Read only; every query names the tenant."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from llmops_prompts.savings import ModelUse


async def model_uses(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, start: datetime,
                     end: datetime) -> dict[tuple[str, str], list[ModelUse]]:
    rows = await db.fetch(
        """SELECT l.app_id, l.prompt_name, l.model, count(*) AS calls,
                  COALESCE(sum(l.cost_total), 0)::float8 AS cost, count(l.cost_total) AS priced,
                  array_agg(r.score) FILTER (WHERE r.score IS NOT NULL) AS scores
           FROM usage_ledger l
           LEFT JOIN evaluation_results r ON r.tenant_id = l.tenant_id AND r.event_id = l.event_id
                                         AND r.occurred_at = l.occurred_at AND r.status = 'ok'
           WHERE l.tenant_id = $1 AND l.occurred_at >= $2 AND l.occurred_at < $3 AND l.model <> ''
             AND l.span_kind = 'llm'
           GROUP BY 1, 2, 3""", tenant_id, start, end)
    out: dict[tuple[str, str], list[ModelUse]] = {}
    for r in rows:
        out.setdefault((r["app_id"], r["prompt_name"]), []).append(
            ModelUse(r["model"], r["calls"], r["cost"], r["priced"], list(r["scores"] or ())))
    return out


async def prompt_cache(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, start: datetime,
                       end: datetime) -> list[asyncpg.Record]:
    """Per model: input tokens, those read from the provider's prompt cache, and what input cost."""
    return await db.fetch(
        """SELECT model, sum(input_tokens)::bigint AS input_tokens,
                  sum(cache_read_input_tokens)::bigint AS cache_read_tokens,
                  COALESCE(sum(cost_input), 0)::float8 AS input_cost
           FROM usage_ledger WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND model <> ''
           GROUP BY model ORDER BY model""", tenant_id, start, end)


async def exact_repeats(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, start: datetime,
                        end: datetime) -> list[asyncpg.Record]:
    """Per app and model: calls and spend, and those that repeat an earlier call of the window exactly (same
    model and input, as the trace store keeps it, redacted). Spans stored without text are not counted."""
    return await db.fetch(
        """WITH calls AS (
               SELECT s.app_id, s.model, l.cost_total,
                      row_number() OVER (PARTITION BY s.app_id, s.model, md5(s.input::text) ORDER BY s.occurred_at)
                          AS nth
               FROM trace_spans s
               JOIN usage_ledger l ON l.tenant_id = s.tenant_id AND l.event_id = s.event_id
                                  AND l.occurred_at = s.occurred_at
               WHERE s.tenant_id = $1 AND s.occurred_at >= $2 AND s.occurred_at < $3 AND s.input IS NOT NULL
                 AND s.model IS NOT NULL)
           SELECT app_id, model, count(*) AS calls, count(*) FILTER (WHERE nth > 1) AS repeats,
                  COALESCE(sum(cost_total), 0)::float8 AS spend,
                  COALESCE(sum(cost_total) FILTER (WHERE nth > 1), 0)::float8 AS repeat_spend
           FROM calls GROUP BY 1, 2 ORDER BY 1, 2""", tenant_id, start, end)
