"""`billing_alert_outbox`: alerts decided in a transaction, waiting to be sent (or sent, `published_at`).

An alert goes in with the transaction that decided it (`add`), is marked published once Kafka has it
(`mark_published`), and `pending` lists what a crash (or a process without a producer: the API, a
re-pricing run) left behind for `alerts.OutboxRelay`.
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


async def pending(conn: asyncpg.Connection | asyncpg.Pool, *, min_age_s: float,
                  limit: int = 500) -> list[asyncpg.Record]:
    """Alerts not published yet and at least `min_age_s` old, oldest first: `alert_id` (text),
    `fingerprint`, `tenant_id`, `rule`, `payload` (text)."""
    return await conn.fetch(
        """SELECT alert_id::text, fingerprint, tenant_id, rule, payload FROM billing_alert_outbox
           WHERE published_at IS NULL AND created_at <= now() - make_interval(secs => $1)
           ORDER BY created_at LIMIT $2""",
        min_age_s, limit,
    )


async def mark_published(conn: asyncpg.Connection | asyncpg.Pool, *, alerts: Sequence[Alert]) -> None:
    await conn.execute(
        "UPDATE billing_alert_outbox SET published_at = now() WHERE alert_id = ANY($1::uuid[]) "
        "AND published_at IS NULL",
        [a.alert_id for a in alerts],
    )
