"""`unpriced_models`: each (tenant, provider, model) seen without a price, counted, alerted once per episode.

An episode starts when the worker first records the model unpriced (`count_unpriced`, in the batch's
transaction), is alerted on once (`mark_alerted`), and ends when re-pricing gives its last unpriced rows a
price (`mark_resolved`); should the model come back unpriced, the worker alerts again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from llmops_billing.ledger import LedgerRow


@dataclass(frozen=True, slots=True)
class UnpricedModel:
    tenant_id: str
    provider: str
    model: str
    model_key: str
    reason: str
    event_count: int


_UPSERT = """
    INSERT INTO unpriced_models AS u (tenant_id, provider, model, model_key, reason,
                                      first_seen_at, last_seen_at, event_count)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::timestamptz[], $8::bigint[])
    ON CONFLICT (tenant_id, provider, model) DO UPDATE SET
        model_key = EXCLUDED.model_key,
        reason = EXCLUDED.reason,
        first_seen_at = LEAST(u.first_seen_at, EXCLUDED.first_seen_at),
        last_seen_at = GREATEST(u.last_seen_at, EXCLUDED.last_seen_at),
        event_count = u.event_count + EXCLUDED.event_count
    RETURNING tenant_id, provider, model, model_key, reason, event_count, alerted_at
"""


async def count_unpriced(conn: asyncpg.Connection, *, rows: Iterable[LedgerRow]) -> list[UnpricedModel]:
    """Count the unpriced ones of `rows` (inserted just now) per tenant, provider and reported model, in
    the caller's transaction; returns the models not alerted on yet."""
    groups: dict[tuple[str, str, str], list[LedgerRow]] = {}
    for row in rows:
        if row.unpriced:
            reported = row.response_model or row.model
            groups.setdefault((row.tenant_id, row.provider, reported), []).append(row)
    if not groups:
        return []
    keys = sorted(groups)  # a fixed order: concurrent writers lock rows in the same order
    grouped = [groups[k] for k in keys]
    records = await conn.fetch(
        _UPSERT,
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
        [g[0].model_key for g in grouped], [g[0].unpriced_reason or "" for g in grouped],
        [min(r.occurred_at for r in g) for g in grouped], [max(r.occurred_at for r in g) for g in grouped],
        [len(g) for g in grouped],
    )
    return [UnpricedModel(r["tenant_id"], r["provider"], r["model"], r["model_key"], r["reason"], r["event_count"])
            for r in records if r["alerted_at"] is None]


async def mark_alerted(conn: asyncpg.Connection, *, models: Sequence[UnpricedModel]) -> list[asyncpg.Record]:
    """Mark `models` alerted (in the caller's transaction) unless another batch did it first; returns the
    rows marked now (`tenant_id, provider, model, model_key, reason, event_count, first_seen_at,
    alerted_at`), in (tenant, provider, model) order."""
    if not models:
        return []
    rows = await conn.fetch(
        """UPDATE unpriced_models u SET alerted_at = now(), resolved_at = NULL
           FROM unnest($1::text[], $2::text[], $3::text[]) AS m(tenant_id, provider, model)
           WHERE u.tenant_id = m.tenant_id AND u.provider = m.provider AND u.model = m.model
             AND u.alerted_at IS NULL
           RETURNING u.tenant_id, u.provider, u.model, u.model_key, u.reason, u.event_count, u.first_seen_at,
                     u.alerted_at""",
        [m.tenant_id for m in models], [m.provider for m in models], [m.model for m in models],
    )
    return sorted(rows, key=lambda r: (r["tenant_id"], r["provider"], r["model"]))


async def mark_resolved(conn: asyncpg.Connection, *, models: Iterable[tuple[str, str, str]]) -> None:
    """Mark (tenant, provider, model) resolved when the ledger has no unpriced row of it left (re-pricing
    gave them a price), in the caller's transaction."""
    keys: list[Any] = sorted(set(models))
    if not keys:
        return
    await conn.execute(
        """UPDATE unpriced_models u SET resolved_at = now(), alerted_at = NULL
           FROM unnest($1::text[], $2::text[], $3::text[]) AS m(tenant_id, provider, model)
           WHERE u.tenant_id = m.tenant_id AND u.provider = m.provider AND u.model = m.model
             AND u.resolved_at IS NULL
             AND NOT EXISTS (
                 SELECT 1 FROM usage_ledger l
                 WHERE l.tenant_id = u.tenant_id AND l.unpriced AND l.provider = u.provider
                   AND (CASE WHEN l.response_model <> '' THEN l.response_model ELSE l.model END) = u.model)""",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
    )


async def list_unpriced(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str) -> list[asyncpg.Record]:
    """The tenant's unpriced models, most recently seen first."""
    return await conn.fetch(
        """SELECT provider, model, model_key, reason, first_seen_at, last_seen_at, event_count, alerted_at,
                  resolved_at FROM unpriced_models WHERE tenant_id = $1 ORDER BY last_seen_at DESC""",
        tenant_id)
