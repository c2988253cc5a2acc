"""Fixtures for the notifier against real Postgres and Redis: alert messages, a tenant's channels pointing at
a real local HTTP receiver (sealed with the session's channel key, as the API stores them), and a running
notifier (its dispatcher: lanes and sweeper) of a test's own, whose egress policy allows exactly the
receivers a test names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

import asyncpg
import pytest_asyncio
import redis.asyncio as aioredis

from llmops_guardrails.channel_secrets import ChannelCipher, seal
from llmops_guardrails.notifier.service import Notifier, NotifierSettings, open_notifier
from llmops_guardrails.settings import ChannelKeySettings
from llmops_shared.alerts import AlertMessage
from llmops_shared.settings import CommonSettings
from llmops_shared.worker import Resources
from tests.support.receiver import Receiver

SECRET = "whsec-test"


def alert(tenant: str, **overrides: object) -> AlertMessage:
    fields: dict[str, Any] = {
        "alert_id": str(uuid.uuid4()), "source": "guardrails", "tenant_id": tenant, "app_id": "support-bot",
        "rule": "pii.credit_card", "detector": "pii", "severity": "critical",
        "fingerprint": f"{tenant}/support-bot/pii.credit_card/pii", "title": "Credit card number in a prompt",
        "summary": "1 CREDIT_CARD finding in input", "occurred_at": datetime.now(UTC), "count": 1,
    }
    fields.update(overrides)
    return AlertMessage.model_validate(fields)


def session_cipher() -> ChannelCipher:
    """The cipher of the session's channel key (`LLMOPS_GUARDRAILS_CHANNEL_KEYS`, set by the `stack` fixture)."""
    cipher = ChannelKeySettings().channel_cipher()
    assert cipher is not None
    return cipher


async def add_channel(pool: asyncpg.Pool, tenant: str, *, name: str, kind: str, url: str, secret: str = "",
                      min_severity: str = "info", repeat_interval_s: int = 3600, sealed: bool = True) -> int:
    """A channel written straight into the table (past the API's checks): sealed with the session's key, or
    in plain text as rows from before migration 0011 are (`sealed=False`)."""
    await pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", tenant)
    values = (seal(session_cipher(), url=url, secret=secret).columns() if sealed
              else {"url": url, "secret": secret, "url_hint": None, "secret_hint": None, "sealed": False})
    return await pool.fetchval(
        """INSERT INTO notification_channels (tenant_id, name, kind, url, secret, sealed, url_hint, secret_hint,
                                              min_severity, repeat_interval_s)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING channel_id""",
        tenant, name, kind, values["url"], values["secret"], values["sealed"], values["url_hint"],
        values["secret_hint"], min_severity, repeat_interval_s)


async def disable_channels(pool: asyncpg.Pool, tenant: str) -> None:
    """After a test: what it left parked is never sent to a later test's receiver on a reused port."""
    await pool.execute("UPDATE notification_channels SET enabled = false WHERE tenant_id = $1", tenant)


@pytest_asyncio.fixture
async def channels(pg_pool: asyncpg.Pool, tenant: str) -> AsyncIterator[Receiver]:
    """A webhook (info and up), a Slack (warning and up) and a PagerDuty (critical) channel, one receiver.

    The Slack channel's URL is the receiver's, written straight into the table (the API takes Slack's hosts
    only), so that the receiver stands for Slack. PagerDuty's events go to the notifier's `pagerduty_url`,
    the receiver's `/pd` (`running`)."""
    with Receiver() as receiver:
        for name, kind, secret, severity in (("hook", "webhook", SECRET, "info"), ("slack", "slack", "", "warning"),
                                             ("pd", "pagerduty", "routing-123", "critical")):
            await add_channel(pg_pool, tenant, name=name, kind=kind, url="" if kind == "pagerduty" else
                              f"{receiver.url}/{name}", secret=secret, min_severity=severity)
        try:
            yield receiver
        finally:
            await disable_channels(pg_pool, tenant)


def notifier_settings(stack: CommonSettings, **overrides: Any) -> NotifierSettings:
    return NotifierSettings(**{**stack.model_dump(), "backoff_base_s": 0.01, "max_attempts": 4,
                               "redis_retry_max_s": 0.2, "sweep_interval_s": 0.1, "park_backoff_base_s": 0.3,
                               "park_backoff_max_s": 1.0, **overrides})


def allowance(*base_urls: str) -> str:
    """The `LLMOPS_EGRESS_ALLOW` entries for these local servers: their address and port, nothing more."""
    return ",".join(f"{urlsplit(u).hostname}:{urlsplit(u).port}" for u in base_urls)


@asynccontextmanager
async def running(stack: CommonSettings, pool: asyncpg.Pool, redis: aioredis.Redis, *reach: str,
                  **overrides: Any) -> AsyncIterator[Notifier]:
    """A notifier with its lanes and sweeper running, as the process has it (without the Kafka consumer),
    allowed to reach the local servers at `reach` (base URLs) and nothing else that is not public; its
    PagerDuty events go to the first one's `/pd`. `resolver=` answers its DNS questions."""
    resolver = overrides.pop("resolver", None)
    if reach:
        overrides = {"egress_allow": allowance(*reach), "pagerduty_url": f"{reach[0]}/pd", **overrides}
    resources = Resources(pool, cast(Any, None), asyncio.Event())  # the notifier produces nothing
    async with open_notifier(notifier_settings(stack, **overrides), resources, redis=redis, resolver=resolver) as n:
        yield n
