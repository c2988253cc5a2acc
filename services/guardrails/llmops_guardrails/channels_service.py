"""Notification channels of a tenant (`notification_channels`), for the notifier: create, list, change, delete.

- `webhook`: any http(s) URL; the body is signed with the channel's secret (HMAC-SHA256, see
  `notifier.channels`). Without a secret given, one is generated; it is returned once, at creation.
- `slack`: a Slack incoming-webhook URL (itself a secret: shown with its path masked).
- `pagerduty`: the Events API v2 URL (default `https://events.pagerduty.com/v2/enqueue`); `secret` is the
  integration's routing key, required.

Secrets are never returned after creation (`has_secret` says whether there is one). Deleting a channel
keeps its delivery log (its rows' `channel_id` becomes NULL).
"""

from __future__ import annotations

import secrets as secrets_module
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmops_guardrails.store import Executor
from llmops_guardrails.store import channels as channels_store

Kind = Literal["webhook", "slack", "pagerduty"]
Severity = Literal["info", "warning", "critical"]
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    return value


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    kind: Kind
    url: str | None = Field(None, max_length=2000, description="required for webhook and slack")
    secret: str | None = Field(None, min_length=1, max_length=500,
                               description="webhook signing key (generated when absent) or PagerDuty routing key")
    min_severity: Severity = "warning"
    repeat_interval_s: int = Field(3600, ge=0, le=30 * 24 * 3600)
    enabled: bool = True

    _url = field_validator("url")(_check_url)


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    url: str | None = Field(None, max_length=2000)
    secret: str | None = Field(None, min_length=1, max_length=500)
    min_severity: Severity | None = None
    repeat_interval_s: int | None = Field(None, ge=0, le=30 * 24 * 3600)
    enabled: bool | None = None

    _url = field_validator("url")(_check_url)


class ChannelError(ValueError):
    pass


class ChannelNotFound(LookupError):
    pass


class ChannelNameTaken(RuntimeError):
    pass


def _shown_url(kind: str, url: str) -> str:
    if kind != "slack":
        return url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def public(row: asyncpg.Record | dict[str, Any], *, secret: str | None = None) -> dict[str, Any]:
    def ts(v: datetime | None) -> str | None:
        return v.isoformat() if v else None

    out = {
        "channel_id": row["channel_id"], "name": row["name"], "kind": row["kind"],
        "url": _shown_url(row["kind"], row["url"]), "has_secret": bool(row["secret"]),
        "min_severity": row["min_severity"], "repeat_interval_s": row["repeat_interval_s"], "enabled": row["enabled"],
        "created_at": ts(row["created_at"]), "updated_at": ts(row["updated_at"]),
    }
    if secret is not None:
        out["secret"] = secret  # shown once, at creation
    return out


async def create(*, db: Executor, tenant_id: str, body: ChannelCreate) -> dict[str, Any]:
    url, secret, generated = body.url, body.secret, False
    if body.kind == "pagerduty":
        url = url or PAGERDUTY_EVENTS_URL
        if not secret:
            raise ChannelError("secret: a pagerduty channel needs the integration's routing key")
    elif not url:
        raise ChannelError(f"url: a {body.kind} channel needs a URL")
    if body.kind == "webhook" and not secret:
        secret, generated = "whsec_" + secrets_module.token_urlsafe(32), True
    try:
        row = await channels_store.insert_channel(
            db, tenant_id=tenant_id, name=body.name, kind=body.kind, url=url, secret=secret or "",
            min_severity=body.min_severity, repeat_interval_s=body.repeat_interval_s, enabled=body.enabled)
    except asyncpg.UniqueViolationError as exc:
        raise ChannelNameTaken(f"a channel named {body.name!r} exists") from exc
    return public(row, secret=secret if generated else None)


async def list_channels(*, db: Executor, tenant_id: str) -> list[dict[str, Any]]:
    rows = await channels_store.list_channels(db, tenant_id=tenant_id)
    return [public(r) for r in rows]


async def get(*, db: Executor, tenant_id: str, channel_id: int) -> dict[str, Any]:
    row = await channels_store.get_channel(db, tenant_id=tenant_id, channel_id=channel_id)
    if row is None:
        raise ChannelNotFound(str(channel_id))
    return public(row)


async def update(*, db: Executor, tenant_id: str, channel_id: int, body: ChannelUpdate) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if any(changes.get(k, "") is None for k in channels_store.CHANGEABLE):
        raise ChannelError("fields cannot be set to null")
    if not any(k in changes for k in channels_store.CHANGEABLE):
        return await get(db=db, tenant_id=tenant_id, channel_id=channel_id)
    try:
        row = await channels_store.update_channel(db, tenant_id=tenant_id, channel_id=channel_id, changes=changes)
    except asyncpg.UniqueViolationError as exc:
        raise ChannelNameTaken(f"a channel named {changes.get('name')!r} exists") from exc
    if row is None:
        raise ChannelNotFound(str(channel_id))
    return public(row)


async def delete(*, db: Executor, tenant_id: str, channel_id: int) -> None:
    if not await channels_store.delete_channel(db, tenant_id=tenant_id, channel_id=channel_id):
        raise ChannelNotFound(str(channel_id))
