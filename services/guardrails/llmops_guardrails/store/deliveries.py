"""`notification_deliveries`: the notifier's durable queue and log, one row per (alert message, channel).

A row is written `pending` in the notifier's batch transaction (with the alert message to send), then
claimed (`sending`, with a token and a lease), then finished: `delivered` or `suppressed`; or scheduled
again (`pending` between attempts in a row, `parked` once they ran out or while the channel's breaker is
open). A claim whose lease lapsed is due again. Every change of a claimed row names its token, so a
notifier whose claim lapsed cannot overwrite what another one recorded since. Statuses: migration
guardrails/0004.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from llmops_guardrails.store import Executor

QUEUED = ("pending", "sending", "parked")
"""Statuses of a delivery still to be made."""

_PUBLIC = ("id AS delivery_id, message_id, alert_id, fingerprint, action, status, attempts, http_status, error, "
           "CASE WHEN status IN ('pending', 'sending', 'parked') THEN next_attempt_at END AS next_attempt_at, "
           "last_attempt_at, delivered_at, created_at, updated_at")


@dataclass(frozen=True)
class NewDelivery:
    message_id: str
    alert_id: str
    fingerprint: str
    channel_id: int
    tenant_id: str
    action: str
    alert: bytes  # the alert message, JSON


async def insert_pending(conn: Executor, *, deliveries: Sequence[NewDelivery]) -> list[asyncpg.Record]:
    """Queue deliveries, due now; one per (message, channel): what exists already (a redelivered batch), or
    was delivered by the notifier before migration 0004, is not queued again. Returns (id, channel_id) of
    the rows inserted."""
    if not deliveries:
        return []
    return await conn.fetch(
        """INSERT INTO notification_deliveries
             (message_id, alert_id, fingerprint, channel_id, tenant_id, action, status, attempts, alert,
              next_attempt_at)
           SELECT w.message_id, w.alert_id, w.fingerprint, w.channel_id, w.tenant_id, w.action, 'pending', 0,
                  w.alert::jsonb, now()
           FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[])
                AS w(message_id, alert_id, fingerprint, channel_id, tenant_id, action, alert)
           WHERE NOT EXISTS (SELECT 1 FROM notification_deliveries old
                             WHERE old.message_id = w.message_id AND old.channel_id = w.channel_id
                               AND old.status = 'delivered' AND old.alert IS NULL)
           ON CONFLICT DO NOTHING
           RETURNING id, channel_id""",
        [d.message_id for d in deliveries], [d.alert_id for d in deliveries], [d.fingerprint for d in deliveries],
        [d.channel_id for d in deliveries], [d.tenant_id for d in deliveries], [d.action for d in deliveries],
        [d.alert.decode() for d in deliveries])


async def due(db: Executor, *, limit: int) -> list[asyncpg.Record]:
    """(id, channel_id, channel_updated_at) of deliveries due now on enabled channels, the most overdue first."""
    return await db.fetch(
        """SELECT d.id, d.channel_id, c.updated_at AS channel_updated_at
           FROM notification_deliveries d JOIN notification_channels c ON c.channel_id = d.channel_id
           WHERE d.status IN ('pending', 'sending', 'parked') AND d.next_attempt_at <= now() AND c.enabled
           ORDER BY d.next_attempt_at, d.id LIMIT $1""", limit)


async def cancel_orphans(db: Executor) -> int:
    """Deliveries still to be made whose channel was deleted become `cancelled`. Returns how many."""
    done = await db.execute(
        """UPDATE notification_deliveries SET status = 'cancelled', claim_token = NULL, updated_at = now()
           WHERE status IN ('pending', 'sending', 'parked') AND channel_id IS NULL""")
    return int(done.split()[-1])


async def claim(db: Executor, *, delivery_id: int, token: uuid.UUID, lease_s: float) -> asyncpg.Record | None:
    """Claim a due delivery on an enabled channel for `lease_s` seconds; with it, the alert and the channel as
    they are now (its `url` and `secret` sealed: `channel_secrets.opened`). None when it is not due (done,
    claimed by another notifier, not yet time) or the channel is disabled or gone."""
    return await db.fetchrow(
        """UPDATE notification_deliveries d
           SET status = 'sending', claim_token = $2, claimed_at = now(),
               next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
           FROM notification_channels c
           WHERE d.id = $1 AND c.channel_id = d.channel_id AND c.enabled
             AND d.status IN ('pending', 'sending', 'parked') AND d.next_attempt_at <= now()
           RETURNING d.id, d.message_id, d.attempts, d.action, d.alert::text AS alert,
                     c.channel_id, c.tenant_id, c.name, c.kind, c.url, c.secret, c.sealed, c.min_severity,
                     c.repeat_interval_s, c.updated_at AS channel_updated_at""",
        delivery_id, token, lease_s)


async def record_attempt(db: Executor, *, delivery_id: int, token: uuid.UUID, attempts: int,
                         http_status: int | None, error: str | None, hold_s: float) -> bool:
    """A failed attempt of a claimed delivery that will be tried again in a moment: keep the claim for
    `hold_s` more seconds. False when the claim was lost (it lapsed and another notifier took it)."""
    done = await db.execute(
        """UPDATE notification_deliveries
           SET attempts = $3, http_status = $4, error = $5, last_attempt_at = now(),
               next_attempt_at = now() + make_interval(secs => $6), updated_at = now()
           WHERE id = $1 AND status = 'sending' AND claim_token = $2""",
        delivery_id, token, attempts, http_status, error, hold_s)
    return done.endswith(" 1")


async def finish(db: Executor, *, delivery_id: int, token: uuid.UUID, status: str, attempts: int,
                 http_status: int | None, error: str | None) -> bool:
    """A claimed delivery `delivered` or `suppressed`. False when the claim was lost."""
    done = await db.execute(
        """UPDATE notification_deliveries
           SET status = $3, attempts = $4, http_status = $5, error = $6, claim_token = NULL,
               last_attempt_at = CASE WHEN $3 = 'delivered' THEN now() ELSE last_attempt_at END,
               delivered_at = CASE WHEN $3 = 'delivered' THEN now() END, updated_at = now()
           WHERE id = $1 AND status = 'sending' AND claim_token = $2""",
        delivery_id, token, status, attempts, http_status, error)
    return done.endswith(" 1")


async def supersede_older(db: Executor, *, delivery_id: int) -> int:
    """After a delivery: earlier messages of the same alert still queued for the same channel are stale
    (an update or the resolution went out first) and become `superseded`. Returns how many."""
    done = await db.execute(
        """UPDATE notification_deliveries o SET status = 'superseded', claim_token = NULL, updated_at = now()
           FROM notification_deliveries d
           WHERE d.id = $1 AND o.channel_id = d.channel_id AND o.alert_id = d.alert_id AND o.id <> d.id
             AND o.status IN ('pending', 'parked') AND o.alert IS NOT NULL
             AND (o.action = 'resolve', (o.alert->>'count')::int) < (d.action = 'resolve', (d.alert->>'count')::int)""",
        delivery_id)
    return int(done.split()[-1])


async def park(db: Executor, *, delivery_id: int, token: uuid.UUID, attempts: int, http_status: int | None,
               error: str | None, delay_s: float, attempted: bool) -> bool:
    """Park a claimed delivery, to be tried again in `delay_s` seconds (`attempted`: after a failed attempt,
    whose outcome replaces the last one's). False when the claim was lost."""
    done = await db.execute(
        """UPDATE notification_deliveries
           SET status = 'parked', claim_token = NULL, next_attempt_at = now() + make_interval(secs => $6),
               attempts = $3, http_status = CASE WHEN $7 THEN $4 ELSE http_status END,
               error = CASE WHEN $7 THEN $5 ELSE coalesce($5, error) END,
               last_attempt_at = CASE WHEN $7 THEN now() ELSE last_attempt_at END, updated_at = now()
           WHERE id = $1 AND status = 'sending' AND claim_token = $2""",
        delivery_id, token, attempts, http_status, error, delay_s, attempted)
    return done.endswith(" 1")


async def release(db: Executor, *, delivery_id: int, token: uuid.UUID) -> None:
    """Give a claim back, due now (the notifier stops before sending): no lease to wait out."""
    await db.execute(
        """UPDATE notification_deliveries
           SET status = CASE WHEN attempts > 0 THEN 'parked' ELSE 'pending' END, claim_token = NULL,
               next_attempt_at = now(), updated_at = now()
           WHERE id = $1 AND status = 'sending' AND claim_token = $2""", delivery_id, token)


async def retry_parked_now(db: Executor, *, tenant_id: str, channel_id: int) -> int:
    """A channel changed (fixed URL or key, enabled again): its parked deliveries are due now."""
    done = await db.execute(
        """UPDATE notification_deliveries SET next_attempt_at = now(), updated_at = now()
           WHERE tenant_id = $1 AND channel_id = $2 AND status = 'parked'""", tenant_id, channel_id)
    return int(done.split()[-1])


async def statuses(db: Executor, *, delivery_ids: Sequence[int]) -> dict[int, str]:
    rows = await db.fetch("SELECT id, status FROM notification_deliveries WHERE id = ANY($1::bigint[])",
                          list(delivery_ids))
    return {r["id"]: r["status"] for r in rows}


async def list_for_channel(db: Executor, *, tenant_id: str, channel_id: int, status: str | None, limit: int,
                           before_id: int | None) -> list[asyncpg.Record]:
    """A channel's deliveries, newest first (by id), of one status or all; `before_id` pages."""
    return await db.fetch(
        f"""SELECT {_PUBLIC} FROM notification_deliveries
            WHERE tenant_id = $1 AND channel_id = $2 AND ($3::text IS NULL OR status = $3)
              AND ($4::bigint IS NULL OR id < $4)
            ORDER BY id DESC LIMIT $5""",  # noqa: S608 (our columns)
        tenant_id, channel_id, status, before_id, limit)

