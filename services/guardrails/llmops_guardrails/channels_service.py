"""Notification channels of a tenant (`notification_channels`), for the notifier: create, list, change, delete.

- `webhook`: any http(s) URL the notifier may reach; the body is signed with the channel's secret
  (HMAC-SHA256, see `notifier.channels`). Without a secret given, one is generated; it is returned once,
  at creation.
- `slack`: a Slack incoming-webhook URL, https on Slack's webhook hosts (`notifier.channels.SLACK_HOSTS`).
- `pagerduty`: no URL (its events go to PagerDuty's Events API, the operator's `LLMOPS_NOTIFIER_PAGERDUTY_URL`);
  `secret` is the integration's routing key, required.

Where a URL leads is checked against the egress policy when it is stored (`Invalid` on `url`, "destination
not allowed", whatever the reason: a tenant learns nothing of the operator's network) and again by the
notifier when it connects. URLs and secrets are stored sealed with the operator's channel keys and shown
masked (`channel_secrets`); without a key, nothing is stored (`Unavailable`). A generated webhook secret
is the one value shown whole, once, in the answer that creates it.

Deleting a channel keeps its delivery log (its rows' `channel_id` becomes NULL; what was still to be sent
is cancelled). Changing a channel makes its parked deliveries due at once (a fixed URL or key is tried
now, not after the backoff). `list_deliveries` shows a channel's deliveries, e.g. the parked ones.
"""

from __future__ import annotations

import logging
import secrets as secrets_module
from dataclasses import dataclass
from typing import Any

import asyncpg

from llmops_guardrails.channel_secrets import ChannelCipher, hints, seal
from llmops_guardrails.notifier.channels import Kind, url_problem
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
from llmops_shared.egress import NOT_ALLOWED, DestinationNotAllowed, EgressPolicy

log = logging.getLogger("llmops_guardrails.channels")

NO_KEY = "channels cannot be stored: the operator has configured no channel encryption key"
_NULLABLE_NEVER = ("name", "url", "secret", "min_severity", "repeat_interval_s", "enabled")


@dataclass(frozen=True)
class ChannelGuards:
    """What stores a channel's URL and secret: the egress policy that checks where a URL leads, and the
    cipher that seals them (None: no key configured)."""

    egress: EgressPolicy
    cipher: ChannelCipher | None

    async def check_url(self, kind: Kind, url: str) -> None:
        """`Invalid` on `url` unless a channel of `kind` takes it and the notifier may reach it."""
        problem = url_problem(kind, url)
        if problem is not None:
            raise problems.Invalid("url", problem)
        if url:
            try:
                await self.egress.check_url(url)
            except DestinationNotAllowed:
                raise problems.Invalid("url", NOT_ALLOWED) from None

    def sealer(self) -> ChannelCipher:
        if self.cipher is None:
            log.error("a channel cannot be stored: LLMOPS_GUARDRAILS_CHANNEL_KEYS is not set")
            raise problems.Unavailable(NO_KEY)
        return self.cipher


def channel_public(row: asyncpg.Record | dict[str, Any]) -> ChannelPublic:
    url_hint, secret_hint = hints(row)
    return ChannelPublic(
        channel_id=row["channel_id"], name=row["name"], kind=row["kind"], url=url_hint,
        has_secret=bool(row["secret"]), secret_hint=secret_hint, min_severity=row["min_severity"],
        repeat_interval_s=row["repeat_interval_s"], enabled=row["enabled"], created_at=row["created_at"],
        updated_at=row["updated_at"])


def _name_taken(name: object) -> problems.Conflict:
    return problems.Conflict(f"a channel named {name!r} exists")


async def create(db: Executor, *, tenant_id: str, body: ChannelCreate, guards: ChannelGuards) -> ChannelCreated:
    """A new channel; a generated webhook secret is in the answer, once. `Invalid` for a URL its kind does
    not take or the notifier may not reach, or without a needed routing key; `Conflict` when the tenant has
    a channel by that name; `Unavailable` without a channel key."""
    url, secret, generated = body.url or "", body.secret or "", False
    await guards.check_url(body.kind, url)
    if body.kind == "pagerduty" and not secret:
        raise problems.Invalid("secret", "a pagerduty channel needs the integration's routing key")
    if body.kind == "webhook" and not secret:
        secret, generated = "whsec_" + secrets_module.token_urlsafe(32), True
    sealed = seal(guards.sealer(), url=url, secret=secret)
    try:
        row = await channels_store.insert_channel(
            db, tenant_id=tenant_id, name=body.name, kind=body.kind, values=sealed.columns(),
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


async def update(db: Executor, *, tenant_id: str, channel_id: int, body: ChannelUpdate,
                 guards: ChannelGuards) -> ChannelPublic:
    """Change the fields given; none may be set to null (`Invalid`); a new URL is checked as at creation;
    `Conflict` for another channel's name."""
    changes = body.model_dump(exclude_unset=True)
    for field in _NULLABLE_NEVER:
        if field in changes and changes[field] is None:
            raise problems.Invalid(field, "cannot be set to null")
    if not changes:
        return await get(db, tenant_id=tenant_id, channel_id=channel_id)
    if "url" in changes or "secret" in changes:
        changes = await _sealed_changes(db, tenant_id=tenant_id, channel_id=channel_id, changes=changes,
                                        guards=guards)
    try:
        row = await channels_store.update_channel(db, tenant_id=tenant_id, channel_id=channel_id, changes=changes)
    except asyncpg.UniqueViolationError as exc:
        raise _name_taken(changes.get("name")) from exc
    if row is None:
        raise problems.NotFound("no such channel")
    await deliveries_store.retry_parked_now(db, tenant_id=tenant_id, channel_id=channel_id)
    return channel_public(row)


async def _sealed_changes(db: Executor, *, tenant_id: str, channel_id: int, changes: dict[str, Any],
                          guards: ChannelGuards) -> dict[str, Any]:
    """`changes` with a new URL (checked) and secret sealed. A row not sealed yet (from before migration
    0011) has both sealed, the one not changed as it is."""
    current = await channels_store.get_channel(db, tenant_id=tenant_id, channel_id=channel_id)
    if current is None:
        raise problems.NotFound("no such channel")
    if "url" in changes:
        await guards.check_url(current["kind"], changes["url"])
    cipher = guards.sealer()
    if not current["sealed"]:
        changes = {"url": current["url"], "secret": current["secret"], **changes}
    sealed = seal(cipher, url=changes.get("url", ""), secret=changes.get("secret", ""))
    out = {**changes, "sealed": True}
    if "url" in changes:
        out.update(url=sealed.url, url_hint=sealed.url_hint)
    if "secret" in changes:
        out.update(secret=sealed.secret, secret_hint=sealed.secret_hint)
    return out


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
