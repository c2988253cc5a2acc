"""`notification_channels`: a tenant's webhook, Slack and PagerDuty channels (names unique per tenant)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from llmops_guardrails.store import Executor

_COLUMNS = ("channel_id, tenant_id, name, kind, url, secret, min_severity, repeat_interval_s, enabled, created_at, "
            "updated_at")
CHANGEABLE = ("name", "url", "secret", "min_severity", "repeat_interval_s", "enabled")
"""Columns `update_channel` may set, in the order it sets them."""


async def insert_channel(db: Executor, *, tenant_id: str, name: str, kind: str, url: str, secret: str,
                         min_severity: str, repeat_interval_s: int, enabled: bool) -> asyncpg.Record:
    """Raises `asyncpg.UniqueViolationError` when the tenant has a channel by that name."""
    row = await db.fetchrow(
        f"""INSERT INTO notification_channels (tenant_id, name, kind, url, secret, min_severity,
                                             repeat_interval_s, enabled)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_COLUMNS}""",  # noqa: S608 (our columns)
        tenant_id, name, kind, url, secret, min_severity, repeat_interval_s, enabled)
    assert row is not None
    return row


async def list_channels(db: Executor, *, tenant_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        f"SELECT {_COLUMNS} FROM notification_channels WHERE tenant_id = $1 ORDER BY channel_id",  # noqa: S608
        tenant_id)


async def get_channel(db: Executor, *, tenant_id: str, channel_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {_COLUMNS} FROM notification_channels WHERE tenant_id = $1 AND channel_id = $2",  # noqa: S608
        tenant_id, channel_id)


async def update_channel(db: Executor, *, tenant_id: str, channel_id: int, changes: Mapping[str, Any]
                         ) -> asyncpg.Record | None:
    """Set the `CHANGEABLE` columns present in `changes` (at least one); None when there is no such channel.

    Raises `asyncpg.UniqueViolationError` when the new name is another channel's.
    """
    names = [k for k in CHANGEABLE if k in changes]
    assert names, "update_channel needs a change"
    sets = [f"{k} = ${i + 3}" for i, k in enumerate(names)]
    return await db.fetchrow(
        f"""UPDATE notification_channels SET {', '.join(sets)}, updated_at = now()
            WHERE tenant_id = $1 AND channel_id = $2 RETURNING {_COLUMNS}""",  # noqa: S608 (column names are ours)
        tenant_id, channel_id, *[changes[k] for k in names])


async def delete_channel(db: Executor, *, tenant_id: str, channel_id: int) -> bool:
    """False when there was no such channel. Its delivery log stays (`channel_id` becomes NULL there)."""
    done = await db.fetchval(
        "DELETE FROM notification_channels WHERE tenant_id = $1 AND channel_id = $2 RETURNING channel_id",
        tenant_id, channel_id)
    return done is not None


async def enabled_channels(db: Executor, *, tenant_ids: Iterable[str]) -> list[asyncpg.Record]:
    """The enabled channels of these tenants, in id order, with what the notifier needs to send."""
    return await db.fetch(
        """SELECT channel_id, tenant_id, name, kind, url, secret, min_severity, repeat_interval_s
           FROM notification_channels WHERE enabled AND tenant_id = ANY($1::text[]) ORDER BY channel_id""",
        list(tenant_ids))
