"""`notification_channels`: a tenant's webhook, Slack and PagerDuty channels (names unique per tenant).

`url` and `secret` hold sealed values (Fernet tokens, `sealed`) with their masks beside them (`url_hint`,
`secret_hint`); rows from before migration 0011 hold plain text until they are sealed
(`llmops_guardrails.channel_secrets`). The API reads the masks only; the notifier opens the values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from llmops_guardrails.store import Executor

_COLUMNS = ("channel_id, tenant_id, name, kind, url, secret, sealed, url_hint, secret_hint, min_severity, "
            "repeat_interval_s, enabled, created_at, updated_at")
CHANGEABLE = ("name", "url", "secret", "sealed", "url_hint", "secret_hint", "min_severity", "repeat_interval_s",
              "enabled")
"""Columns `update_channel` may set, in the order it sets them."""
SECRET_COLUMNS = ("url", "secret", "sealed", "url_hint", "secret_hint")
"""What sealing writes (`channel_secrets.Sealed.columns`)."""


async def insert_channel(db: Executor, *, tenant_id: str, name: str, kind: str, values: Mapping[str, Any],
                         min_severity: str, repeat_interval_s: int, enabled: bool) -> asyncpg.Record:
    """`values`: the `SECRET_COLUMNS`, sealed. Raises `asyncpg.UniqueViolationError` when the tenant has a
    channel by that name."""
    row = await db.fetchrow(
        f"""INSERT INTO notification_channels (tenant_id, name, kind, url, secret, sealed, url_hint, secret_hint,
                                             min_severity, repeat_interval_s, enabled)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {_COLUMNS}""",  # noqa: S608 (our columns)
        tenant_id, name, kind, *[values[k] for k in SECRET_COLUMNS], min_severity, repeat_interval_s, enabled)
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
    """(channel_id, tenant_id, min_severity) of the enabled channels of these tenants, in id order: what the
    notifier routes alerts by (it opens a channel's values only when it delivers)."""
    return await db.fetch(
        """SELECT channel_id, tenant_id, min_severity
           FROM notification_channels WHERE enabled AND tenant_id = ANY($1::text[]) ORDER BY channel_id""",
        list(tenant_ids))


async def secret_columns(db: Executor) -> list[asyncpg.Record]:
    """(channel_id, url, secret, sealed) of every channel: what `channel_secrets.reseal` goes through."""
    return await db.fetch("SELECT channel_id, url, secret, sealed FROM notification_channels ORDER BY channel_id")


async def replace_secrets(db: Executor, *, channel_id: int, old_url: str, old_secret: str,
                          values: Mapping[str, Any]) -> bool:
    """Write a channel's `SECRET_COLUMNS` (sealed again) if its values are still `old_url` and `old_secret`:
    a row the API changed meanwhile is left as it is. Not a change of the channel (`updated_at` stays)."""
    done = await db.execute(
        """UPDATE notification_channels SET url = $4, secret = $5, sealed = $6, url_hint = $7, secret_hint = $8
           WHERE channel_id = $1 AND url = $2 AND secret = $3""",
        channel_id, old_url, old_secret, *[values[k] for k in SECRET_COLUMNS])
    return done.endswith(" 1")
