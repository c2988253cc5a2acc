"""Notification channels of a tenant (`notification_channels`), for the notifier: create, list, change, delete.

- `webhook`: any http(s) URL; the body is signed with the channel's secret (HMAC-SHA256, see
  `notifier.channels`). Without a secret given, one is generated; it is returned once, at creation.
- `slack`: a Slack incoming-webhook URL (itself a secret: shown with its path masked).
- `pagerduty`: the Events API v2 URL (default `https://events.pagerduty.com/v2/enqueue`); `secret` is the
  integration's routing key, required.

Secrets are never returned after creation (`has_secret` says whether there is one). Deleting a channel
keeps its delivery log (its rows' `channel_id` becomes NULL; what was still to be sent is cancelled).
Changing a channel makes its parked deliveries due at once (a fixed URL or key is tried now, not after
the backoff). `list_deliveries` shows a channel's deliveries, e.g. the parked ones.
"""

from __future__ import annotations

import secrets as secrets_module
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from llmops_guardrails.schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelPublic,
    ChannelsPublic,
    ChannelUpdate,
    DeliveriesPublic,
    DeliveryPublic,
    DeliveryStatus,
)
from llmops_guardrails.store import Executor
from llmops_guardrails.store import channels as channels_store
from llmops_guardrails.store import deliveries as deliveries_store
from llmops_shared import cursors, problems

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


def _shown_url(kind: str, url: str) -> str:
    if kind != "slack":
        return url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def channel_public(row: asyncpg.Record | dict[str, Any]) -> ChannelPublic:
    return ChannelPublic(
        channel_id=row["channel_id"], name=row["name"], kind=row["kind"], url=_shown_url(row["kind"], row["url"]),
        has_secret=bool(row["secret"]), min_severity=row["min_severity"], repeat_interval_s=row["repeat_interval_s"],
        enabled=row["enabled"], created_at=row["created_at"], updated_at=row["updated_at"])


def _name_taken(name: object) -> problems.Conflict:
    return problems.Conflict(f"a channel named {name!r} exists")


async def create(db: Executor, *, tenant_id: str, body: ChannelCreate) -> ChannelCreated:
    """A new channel; a generated webhook secret is in the answer, once. `Invalid` without a needed URL or
    routing key, `Conflict` when the tenant has a channel by that name."""
    url, secret, generated = body.url, body.secret, False
    if body.kind == "pagerduty":
        url = url or PAGERDUTY_EVENTS_URL
        if not secret:
            raise problems.Invalid("secret", "a pagerduty channel needs the integration's routing key")
    elif not url:
        raise problems.Invalid("url", f"a {body.kind} channel needs a URL")
    if body.kind == "webhook" and not secret:
        secret, generated = "whsec_" + secrets_module.token_urlsafe(32), True
    try:
        row = await channels_store.insert_channel(
            db, tenant_id=tenant_id, name=body.name, kind=body.kind, url=url, secret=secret or "",
            min_severity=body.min_severity, repeat_interval_s=body.repeat_interval_s, enabled=body.enabled)
    except asyncpg.UniqueViolationError as exc:
        raise _name_taken(body.name) from exc
    shown = channel_public(row).model_dump()
    return ChannelCreated(**shown, secret=secret) if generated else ChannelCreated(**shown)


async def list_channels(db: Executor, *, tenant_id: str) -> ChannelsPublic:
    return ChannelsPublic(channels=[channel_public(r) for r in await channels_store.list_channels(
        db, tenant_id=tenant_id)])


async def get(db: Executor, *, tenant_id: str, channel_id: int) -> ChannelPublic:
    row = await channels_store.get_channel(db, tenant_id=tenant_id, channel_id=channel_id)
    if row is None:
        raise problems.NotFound("no such channel")
    return channel_public(row)


async def update(db: Executor, *, tenant_id: str, channel_id: int, body: ChannelUpdate) -> ChannelPublic:
    """Change the fields given; none may be set to null (`Invalid`); `Conflict` for another channel's name."""
    changes = body.model_dump(exclude_unset=True)
    for field in channels_store.CHANGEABLE:
        if field in changes and changes[field] is None:
            raise problems.Invalid(field, "cannot be set to null")
    if not any(k in changes for k in channels_store.CHANGEABLE):
        return await get(db, tenant_id=tenant_id, channel_id=channel_id)
    try:
        row = await channels_store.update_channel(db, tenant_id=tenant_id, channel_id=channel_id, changes=changes)
    except asyncpg.UniqueViolationError as exc:
        raise _name_taken(changes.get("name")) from exc
    if row is None:
        raise problems.NotFound("no such channel")
    await deliveries_store.retry_parked_now(db, tenant_id=tenant_id, channel_id=channel_id)
    return channel_public(row)


async def delete(db: Executor, *, tenant_id: str, channel_id: int) -> None:
    if not await channels_store.delete_channel(db, tenant_id=tenant_id, channel_id=channel_id):
        raise problems.NotFound("no such channel")


async def list_deliveries(db: Executor, *, tenant_id: str, channel_id: int, status: DeliveryStatus | None,
                          limit: int, cursor: str | None = None) -> DeliveriesPublic:
    """A channel's deliveries, newest first, of one status or all. `NotFound` for another tenant's channel;
    `Invalid` (the `cursor` query parameter) for a cursor of another query."""
    if await channels_store.get_channel(db, tenant_id=tenant_id, channel_id=channel_id) is None:
        raise problems.NotFound("no such channel")
    scope = f"deliveries:{tenant_id}:{channel_id}:{status or ''}"
    before: int | None = None
    if cursor:
        try:
            (before,) = cursors.decode(cursor, scope=scope)
        except cursors.InvalidCursor as exc:
            raise problems.Invalid("cursor", str(exc), location="query") from exc
        except ValueError as exc:
            raise problems.Invalid("cursor", "not a cursor this API returned", location="query") from exc
        if not isinstance(before, int):
            raise problems.Invalid("cursor", "not a cursor this API returned", location="query")
    rows = await deliveries_store.list_for_channel(db, tenant_id=tenant_id, channel_id=channel_id, status=status,
                                                   limit=limit + 1, before_id=before)
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveriesPublic(
        deliveries=[DeliveryPublic(**dict(r)) for r in rows],
        next_cursor=cursors.encode([rows[-1]["delivery_id"]], scope=scope) if more and rows else None)
