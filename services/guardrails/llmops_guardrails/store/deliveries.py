"""`notification_deliveries`: the notifier's log, one row per (alert message, channel) outcome."""

from __future__ import annotations

from llmops_guardrails.store import Executor


async def was_delivered(db: Executor, *, message_id: str, channel_id: int) -> bool:
    return bool(await db.fetchval(
        """SELECT 1 FROM notification_deliveries
           WHERE message_id = $1 AND channel_id = $2 AND status = 'delivered'""",
        message_id, channel_id))


async def record_delivery(db: Executor, *, message_id: str, alert_id: str, fingerprint: str, channel_id: int,
                          tenant_id: str, action: str, status: str, attempts: int, http_status: int | None,
                          error: str | None) -> None:
    """One outcome (delivered, suppressed or failed); a second record of the same outcome changes nothing."""
    await db.execute(
        """INSERT INTO notification_deliveries
             (message_id, alert_id, fingerprint, channel_id, tenant_id, action, status, attempts,
              http_status, error)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT DO NOTHING""",
        message_id, alert_id, fingerprint, channel_id, tenant_id, action, status, attempts, http_status, error)
