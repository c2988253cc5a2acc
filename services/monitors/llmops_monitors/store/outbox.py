"""`monitor_alert_outbox`: alert messages decided in an evaluation's transaction, sent after its commit."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from llmops_monitors.store import Executor
from llmops_shared.alerts import AlertMessage


async def add(conn: asyncpg.Connection, *, alerts: Sequence[AlertMessage]) -> None:
    if alerts:
        await conn.executemany(
            "INSERT INTO monitor_alert_outbox (message_id, fingerprint, tenant_id, payload) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT DO NOTHING",
            [(a.message_id, a.fingerprint, a.tenant_id, a.to_json().decode()) for a in alerts])


async def claim(conn: asyncpg.Connection, *, message_ids: Sequence[str] | None, min_age_s: float = 0.0,
                limit: int = 500) -> list[asyncpg.Record]:
    """Pending messages (these ids, or any older than `min_age_s`), locked, skipping those another holds."""
    return await conn.fetch(
        """SELECT message_id, fingerprint, payload FROM monitor_alert_outbox
           WHERE published_at IS NULL AND ($1::text[] IS NULL OR message_id = ANY($1::text[]))
             AND created_at <= now() - make_interval(secs => $2)
           ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED""",
        None if message_ids is None else list(message_ids), min_age_s, limit)


async def mark_published(conn: asyncpg.Connection, *, message_ids: Sequence[str]) -> None:
    await conn.execute("UPDATE monitor_alert_outbox SET published_at = now() WHERE message_id = ANY($1::text[])",
                       list(message_ids))


async def purge_sent(db: Executor, *, older_than_s: float) -> None:
    await db.execute("DELETE FROM monitor_alert_outbox WHERE published_at < now() - make_interval(secs => $1)",
                     older_than_s)
