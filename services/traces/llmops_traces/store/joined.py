"""What the other services know of a trace's spans, read from their tables, always for one tenant:

- billing's cost line items (`usage_ledger`, by (event_id, occurred_at), the ledger's key);
- guardrail findings (`guardrail_findings`): detector, type, rule, where; never a value, hash or offset;
- judge scores (`evaluation_results`, `ok` rows): evaluator, rubric, score, label; not the reasoning;
- human feedback (`human_feedback`).

Each returns rows keyed by event id (text). These tables belong to their services; this module reads them
and never writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg


def _by_event(rows: Sequence[asyncpg.Record]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        values = dict(row)
        out[values.pop("event_id")].append(values)
    return out


async def cost_lines(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str,
                     keys: Sequence[tuple[str, datetime]]) -> dict[str, list[dict[str, Any]]]:
    if not keys:
        return {}
    return _by_event(await db.fetch(
        """SELECT l.event_id::text AS event_id, l.model_key, l.price_version, l.unpriced, l.unpriced_reason,
                  l.input_tokens, l.output_tokens, l.cache_read_input_tokens, l.cache_write_input_tokens,
                  l.reasoning_tokens, l.cost_input, l.cost_cache_read, l.cost_cache_write, l.cost_output,
                  l.cost_reasoning, l.cost_request, l.cost_total
           FROM unnest($2::uuid[], $3::timestamptz[]) AS k(event_id, occurred_at)
           JOIN usage_ledger l ON l.event_id = k.event_id AND l.occurred_at = k.occurred_at
           WHERE l.tenant_id = $1""",
        tenant_id, [k[0] for k in keys], [k[1] for k in keys]))


async def findings(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str,
                   event_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    if not event_ids:
        return {}
    return _by_event(await db.fetch(
        """SELECT event_id::text AS event_id, detector, entity_type, rule_id, part, message_index
           FROM guardrail_findings WHERE tenant_id = $1 AND event_id = ANY($2::uuid[])
           ORDER BY event_id, finding_no""", tenant_id, list(event_ids)))


async def scores(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str,
                 event_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    if not event_ids:
        return {}
    return _by_event(await db.fetch(
        """SELECT event_id::text AS event_id, evaluator_id, rubric, rubric_version, score, raw_score, label,
                  judge_model
           FROM evaluation_results WHERE tenant_id = $1 AND event_id = ANY($2::uuid[]) AND status = 'ok'
           ORDER BY event_id, evaluator_id, rubric, rubric_version""", tenant_id, list(event_ids)))


async def feedback(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str,
                   event_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    if not event_ids:
        return {}
    return _by_event(await db.fetch(
        """SELECT event_id::text AS event_id, rubric, score, label, comment, reviewer, updated_at
           FROM human_feedback WHERE tenant_id = $1 AND event_id = ANY($2::uuid[])
           ORDER BY event_id, rubric, reviewer""", tenant_id, list(event_ids)))
