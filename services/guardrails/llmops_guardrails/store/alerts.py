"""`guardrail_alerts` (at most one unresolved alert per fingerprint: a partial unique index) and
`guardrail_alert_events` (which events were counted into which alert; unique on (fingerprint, event_id,
occurred_at): partitioned by month of `occurred_at`, migration guardrails/0010)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from llmops_guardrails.store import Executor
from llmops_shared.partitions import ensure_month_partitions

# -- grouping (the stream worker, inside its batch transaction) -------------------------------------------


async def counted_events(conn: asyncpg.Connection, *, fingerprints: Sequence[str], event_ids: Sequence[uuid.UUID]
                         ) -> list[asyncpg.Record]:
    """(fingerprint, event_id, alert_id) of the given (fingerprint, event_id) pairs that were counted already."""
    return await conn.fetch(
        """SELECT e.fingerprint, e.event_id, e.alert_id FROM guardrail_alert_events e
           JOIN unnest($1::text[], $2::uuid[]) AS w(fingerprint, event_id)
             ON e.fingerprint = w.fingerprint AND e.event_id = w.event_id""",
        list(fingerprints), list(event_ids))


async def alerts_by_id(conn: Executor, *, alert_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM guardrail_alerts WHERE alert_id = ANY($1::uuid[]) ORDER BY alert_id",
                            list(alert_ids))


async def lock_unresolved(conn: asyncpg.Connection, *, fingerprint: str) -> asyncpg.Record | None:
    """The fingerprint's unresolved alert, locked until the transaction ends."""
    return await conn.fetchrow(
        "SELECT * FROM guardrail_alerts WHERE fingerprint = $1 AND status <> 'resolved' FOR UPDATE", fingerprint)


async def close(conn: asyncpg.Connection, *, alert_id: uuid.UUID, by: str) -> asyncpg.Record:
    """Resolve an alert whatever its state (the grouping window ran out)."""
    row = await conn.fetchrow(
        """UPDATE guardrail_alerts SET status = 'resolved', resolved_at = now(), resolved_by = $2,
                  updated_at = now()
           WHERE alert_id = $1 RETURNING *""", alert_id, by)
    assert row is not None
    return row


async def open_alert(conn: asyncpg.Connection, *, alert_id: uuid.UUID, fingerprint: str, tenant_id: str,
                     app_id: str, rule_id: str, detector: str, severity: str, policy_severity: str,
                     kinds: Sequence[str], title: str, first_seen: datetime, last_seen: datetime
                     ) -> asyncpg.Record | None:
    """A new alert with count 0, or None when the fingerprint has an unresolved one (another worker's)."""
    return await conn.fetchrow(
        """INSERT INTO guardrail_alerts (alert_id, fingerprint, tenant_id, app_id, rule_id, detector, severity,
                                         policy_severity, kinds, title, summary, count, first_seen, last_seen)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', 0, $11, $12)
           ON CONFLICT (fingerprint) WHERE status <> 'resolved' DO NOTHING
           RETURNING *""",
        alert_id, fingerprint, tenant_id, app_id, rule_id, detector, severity, policy_severity, list(kinds), title,
        first_seen, last_seen)


async def delete(conn: asyncpg.Connection, *, alert_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM guardrail_alerts WHERE alert_id = $1", alert_id)


async def count_events(conn: asyncpg.Connection, *, alert_id: uuid.UUID, fingerprint: str,
                       event_ids: Sequence[uuid.UUID], occurred_at: Sequence[datetime]) -> set[uuid.UUID]:
    """Record events as counted into an alert; returns the ids that were not counted before."""
    await ensure_month_partitions(conn, "guardrail_alert_events", occurred_at)
    inserted = await conn.fetch(
        """INSERT INTO guardrail_alert_events (alert_id, event_id, fingerprint, occurred_at)
           SELECT $1, u.event_id, $2, u.occurred_at
           FROM unnest($3::uuid[], $4::timestamptz[]) AS u(event_id, occurred_at)
           ON CONFLICT DO NOTHING
           RETURNING event_id""",
        alert_id, fingerprint, list(event_ids), list(occurred_at))
    return {r["event_id"] for r in inserted}


async def update_counts(conn: asyncpg.Connection, *, alert_id: uuid.UUID, count: int, first_seen: datetime,
                        last_seen: datetime, severity: str, policy_severity: str, kinds: Sequence[str], title: str,
                        summary: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        """UPDATE guardrail_alerts SET count = $2, first_seen = $3, last_seen = $4, severity = $5,
                  policy_severity = $6, kinds = $7, title = $8, summary = $9, updated_at = now()
           WHERE alert_id = $1 RETURNING *""",
        alert_id, count, first_seen, last_seen, severity, policy_severity, list(kinds), title, summary)
    assert row is not None
    return row


# -- the life cycle (the API), scoped to a tenant ---------------------------------------------------------


async def list_alerts(db: Executor, *, tenant_id: str, statuses: Sequence[str], severities: Sequence[str],
                      app_id: str | None, rule_id: str | None, detector: str | None, since: datetime | None,
                      until: datetime | None, after: tuple[datetime, uuid.UUID] | None, limit: int
                      ) -> list[asyncpg.Record]:
    """Newest first by (last_seen, alert_id); `after` is the last row of the previous page."""
    return await db.fetch(
        """SELECT * FROM guardrail_alerts
           WHERE tenant_id = $1
             AND (cardinality($2::text[]) = 0 OR status = ANY($2::text[]))
             AND (cardinality($3::text[]) = 0 OR severity = ANY($3::text[]))
             AND ($4::text IS NULL OR app_id = $4)
             AND ($5::text IS NULL OR rule_id = $5)
             AND ($6::text IS NULL OR detector = $6)
             AND ($7::timestamptz IS NULL OR last_seen >= $7)
             AND ($8::timestamptz IS NULL OR last_seen < $8)
             AND ($9::timestamptz IS NULL OR (last_seen, alert_id) < ($9, $10::uuid))
           ORDER BY last_seen DESC, alert_id DESC
           LIMIT $11""",
        tenant_id, list(statuses), list(severities), app_id, rule_id, detector, since, until,
        after[0] if after else None, after[1] if after else None, limit)


async def get_alert(db: Executor, *, tenant_id: str, alert_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM guardrail_alerts WHERE tenant_id = $1 AND alert_id = $2",
                             tenant_id, alert_id)


async def acknowledge(db: Executor, *, tenant_id: str, alert_id: uuid.UUID, by: str) -> asyncpg.Record | None:
    """Acknowledge an open alert; None when there is no open alert by that id."""
    return await db.fetchrow(
        """UPDATE guardrail_alerts SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = $3,
                  updated_at = now()
           WHERE tenant_id = $1 AND alert_id = $2 AND status = 'open' RETURNING *""", tenant_id, alert_id, by)


async def resolve(db: Executor, *, tenant_id: str, alert_id: uuid.UUID, by: str) -> asyncpg.Record | None:
    """Resolve an unresolved alert; None when there is no unresolved alert by that id."""
    return await db.fetchrow(
        """UPDATE guardrail_alerts SET status = 'resolved', resolved_at = now(), resolved_by = $3,
                  updated_at = now()
           WHERE tenant_id = $1 AND alert_id = $2 AND status <> 'resolved' RETURNING *""", tenant_id, alert_id, by)


async def alert_events(db: Executor, *, tenant_id: str, alert_id: uuid.UUID, limit: int) -> list[asyncpg.Record]:
    """The events counted into one of the tenant's alerts, newest first (event_id, occurred_at)."""
    return await db.fetch(
        """SELECT e.event_id, e.occurred_at FROM guardrail_alert_events e
           JOIN guardrail_alerts a ON a.alert_id = e.alert_id
           WHERE a.tenant_id = $1 AND e.alert_id = $2
           ORDER BY e.occurred_at DESC, e.event_id LIMIT $3""", tenant_id, alert_id, limit)
