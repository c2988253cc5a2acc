"""`billing_alert_outbox`: alerts decided in a transaction, waiting to be sent (or sent, `published_at`).

An alert goes in with the transaction that decided it (`add`). Whoever sends it first **claims** it: its
row is locked `FOR UPDATE SKIP LOCKED` in a transaction held while the alert is sent and marked published
(`claim` for the alerts a batch just decided, `claim_pending` for what a crash, or a process without a
producer, the API or a re-pricing run, left behind for `alerts.OutboxRelay`). A row another process holds
is skipped, so two billing workers never both send the same pending alert; a process that dies while
holding rows releases them with its connection, and they are sent by the next claimant. Sent rows are
purged after a while (`purge_sent`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:  # `alerts` calls this store: only the type is needed here
    from llmops_billing.alerts import Alert


async def add(conn: asyncpg.Connection, *, alerts: Sequence[Alert]) -> None:
    """In the caller's transaction. An alert already in the outbox (same id) is left as it is."""
    if not alerts:
        return
    await conn.execute(
        """INSERT INTO billing_alert_outbox (alert_id, fingerprint, tenant_id, rule, payload)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
           ON CONFLICT (alert_id) DO NOTHING""",
        [a.alert_id for a in alerts], [a.fingerprint for a in alerts], [a.tenant_id for a in alerts],
        [a.rule for a in alerts], [a.payload.decode() for a in alerts],
    )


async def claim_pending(conn: asyncpg.Connection, *, min_age_s: float, limit: int = 500) -> list[asyncpg.Record]:
    """In the caller's transaction, which must last until they are sent and marked: alerts not published
    yet, at least `min_age_s` old, oldest first, locked; rows another transaction holds are skipped.
    Columns: `alert_id` (text), `fingerprint`, `tenant_id`, `rule`, `payload` (text)."""
    return await conn.fetch(
        """SELECT alert_id::text, fingerprint, tenant_id, rule, payload FROM billing_alert_outbox
           WHERE published_at IS NULL AND created_at <= now() - make_interval(secs => $1)
           ORDER BY created_at LIMIT $2
           FOR UPDATE SKIP LOCKED""",
        min_age_s, limit,
    )


async def claim(conn: asyncpg.Connection, *, alert_ids: Sequence[str]) -> set[str]:
    """In the caller's transaction: lock those of `alert_ids` that are still pending and not held by
    another transaction; returns their ids (the caller sends those only)."""
    rows = await conn.fetch(
        """SELECT alert_id::text FROM billing_alert_outbox
           WHERE alert_id = ANY($1::uuid[]) AND published_at IS NULL
           FOR UPDATE SKIP LOCKED""",
        list(alert_ids),
    )
    return {r["alert_id"] for r in rows}


async def mark_published(conn: asyncpg.Connection | asyncpg.Pool, *, alerts: Sequence[Alert]) -> None:
    await conn.execute(
        "UPDATE billing_alert_outbox SET published_at = now() WHERE alert_id = ANY($1::uuid[]) "
        "AND published_at IS NULL",
        [a.alert_id for a in alerts],
    )


async def purge_sent(conn: asyncpg.Connection | asyncpg.Pool, *, older_than_s: float) -> int:
    """Delete alerts published more than `older_than_s` ago (never a pending one); returns how many."""
    status = await conn.execute(
        "DELETE FROM billing_alert_outbox WHERE published_at IS NOT NULL "
        "AND published_at < now() - make_interval(secs => $1)", older_than_s)
    return int(status.split()[-1])
