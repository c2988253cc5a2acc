"""An experiment's calls, read from the other services' tables: billing's ledger (every event of a prompt,
with its variant and cost), the trace store's spans (latency, session), guardrails' findings and the
evaluator's results (judge scores per rubric). Read only; every query names the tenant.

Postgres aggregates what it can (counts, distinct units, the moments of costs and scores); what comes back
per variant is bounded except for the latencies (one float per call with a span, for the quantiles):
costs only while a variant has at most `stats.BOOTSTRAP_MAX_VALUES` of them (for the bootstrap), scores never.
Three queries, at once on the pool's connections, each reading its table once: the ledger (with the window's
findings hash-joined), the spans (a span carries its event's prompt name and variant as the ledger row does,
so latencies need no join with the ledger), and the judge's scores (a sample of the calls) joined to the
ledger; a fourth for the costs themselves when a variant is small. JIT is off for these
queries (compiling them cost more than it saved on a million rows), and each may hash up to 64 MB
(`work_mem`; distinct units of a million calls need about 50 MB) rather than sort on disk."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from llmops_prompts.report import VariantData
from llmops_prompts.stats import BOOTSTRAP_MAX_VALUES, Moments

_LEDGER = """FROM usage_ledger l
             WHERE l.tenant_id = $1 AND l.prompt_name = $2 AND l.prompt_variant = ANY($3::text[])
               AND l.occurred_at >= $4 AND l.occurred_at < $5"""
_SPANS = """FROM trace_spans s
            WHERE s.tenant_id = $1 AND s.prompt_name = $2 AND s.prompt_variant = ANY($3::text[])
              AND s.occurred_at >= $4 AND s.occurred_at < $5"""
_UNIT = {"user": "l.user_id", "trace": "l.trace_id"}


def _calls_sql(unit: str) -> str:
    """Per variant, in one scan of the ledger: calls, errors, calls with a guardrail finding (a hash join on the
    window's findings, a small share of the calls), the moments of the priced calls' costs and (unless
    the unit is the session, which the spans know) distinct units: grouped by (variant, unit) first, so that
    counting units is a hash aggregate, then by variant. Costs (float8) are summed and summed squared, and the
    variance computed from the sums (for costs the relative error is about 1e-16 x mean^2 / variance)."""
    column = _UNIT.get(unit, "NULL::text")  # one of three constants
    return f"""WITH flagged AS (
                   SELECT DISTINCT f.event_id, f.occurred_at FROM guardrail_findings f
                   WHERE f.tenant_id = $1 AND f.occurred_at >= $4 AND f.occurred_at < $5)
               SELECT variant, sum(calls)::bigint AS calls, sum(errors)::bigint AS errors, count(unit) AS units,
                      sum(findings)::bigint AS findings, sum(cost_n)::bigint AS cost_n, sum(cost_sum) AS cost_sum,
                      sum(cost_sq) AS cost_sq
               FROM (SELECT l.prompt_variant AS variant, {column} AS unit, count(*) AS calls,
                            count(*) FILTER (WHERE l.status <> 'ok') AS errors, count(f.event_id) AS findings,
                            count(l.cost_total) AS cost_n, sum(l.cost_total::float8) AS cost_sum,
                            sum((l.cost_total::float8) ^ 2) AS cost_sq
                     FROM usage_ledger l
                     LEFT JOIN flagged f ON f.event_id = l.event_id AND f.occurred_at = l.occurred_at
                     WHERE l.tenant_id = $1 AND l.prompt_name = $2 AND l.prompt_variant = ANY($3::text[])
                       AND l.occurred_at >= $4 AND l.occurred_at < $5
                     GROUP BY 1, 2) per_unit
               GROUP BY 1"""  # noqa: S608


_COSTS = f"""SELECT l.prompt_variant AS variant, array_agg(l.cost_total::float8) AS costs
             {_LEDGER} AND l.cost_total IS NOT NULL GROUP BY 1"""
_SESSIONS = f"""SELECT variant, count(*) AS units
                FROM (SELECT DISTINCT s.prompt_variant AS variant, s.session_id {_SPANS} AND s.session_id IS NOT NULL) u
                GROUP BY 1"""  # noqa: S608
_LATENCIES = f"""SELECT s.prompt_variant AS variant, array_agg(s.latency_ms) AS latencies
                 {_SPANS} AND s.latency_ms IS NOT NULL GROUP BY 1"""
_SCORES = """SELECT l.prompt_variant AS variant, r.rubric, count(*) AS n, avg(r.score) AS mean, var_samp(r.score) AS var
             FROM evaluation_results r
             JOIN usage_ledger l ON l.tenant_id = r.tenant_id AND l.event_id = r.event_id
                                AND l.occurred_at = r.occurred_at
             WHERE r.tenant_id = $1 AND r.occurred_at >= $4 AND r.occurred_at < $5 AND r.status = 'ok'
               AND r.score IS NOT NULL
               AND l.prompt_name = $2 AND l.prompt_variant = ANY($3::text[])
             GROUP BY 1, 2"""


def _moments(n: int, mean: float | None, var: float | None) -> Moments:
    return Moments(n, mean or 0.0, var or 0.0)


async def _fetch(db: asyncpg.Pool | asyncpg.Connection, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        async with conn.transaction(readonly=True):
            await conn.execute("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'")
            return await conn.fetch(sql, *args)

    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await run(conn)
    return await run(db)


def _cost_moments(n: int, total: float | None, squares: float | None) -> Moments:
    if not n:
        return Moments(0, 0.0, 0.0)
    mean = (total or 0.0) / n
    var = max(0.0, ((squares or 0.0) - n * mean * mean) / (n - 1)) if n > 1 else 0.0
    return Moments(n, mean, var)


async def variant_data(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, prompt: str, variants: list[str],
                       unit: str, start: datetime, end: datetime) -> dict[str, VariantData]:
    """Per variant name: its calls between `start` and `end` (`VariantData`). With a pool the queries run at
    once, each on a connection of its own; with one connection, one after the other."""
    args = (tenant_id, prompt, variants, start, end)
    queries = [_calls_sql(unit), _LATENCIES, _SCORES, *([_SESSIONS] if unit == "session" else [])]
    if isinstance(db, asyncpg.Pool):
        results = await asyncio.gather(*(_fetch(db, sql, *args) for sql in queries))
    else:
        results = [await _fetch(db, sql, *args) for sql in queries]
    counted, latencies, scores = results[:3]
    small = [r["variant"] for r in counted if 0 < r["cost_n"] <= BOOTSTRAP_MAX_VALUES]
    costs_by = {r["variant"]: r["costs"] for r in await _fetch(db, _COSTS, tenant_id, prompt, small, start, end)
                } if small else {}
    units_by = {r["variant"]: r["units"] for r in (results[3] if unit == "session" else counted)}
    latencies_by = {r["variant"]: r["latencies"] for r in latencies}
    scores_by: dict[str, dict[str, Moments]] = {}
    for s in scores:
        scores_by.setdefault(s["variant"], {})[s["rubric"]] = _moments(s["n"], s["mean"], s["var"])
    return {r["variant"]: VariantData(
                calls=r["calls"], units=units_by.get(r["variant"], 0), errors=r["errors"],
                findings=r["findings"],
                cost=_cost_moments(r["cost_n"], r["cost_sum"], r["cost_sq"]),
                costs=None if r["cost_n"] > BOOTSTRAP_MAX_VALUES else np.asarray(costs_by.get(r["variant"]) or (),
                                                                                   dtype=float),
                latencies=np.sort(np.asarray(latencies_by.get(r["variant"]) or (), dtype=float)),
                scores=scores_by.get(r["variant"], {}))
            for r in counted}
