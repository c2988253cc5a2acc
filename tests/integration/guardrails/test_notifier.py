"""The notifier against real Postgres, Redis and a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from llmops_devtools.stack.redis import RedisServer
from llmops_guardrails.notifier.service import Notifier, NotifierSettings
from llmops_shared.alerts import AlertMessage
from llmops_shared.settings import CommonSettings
from tests.support.receiver import Receiver
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

SECRET = "whsec-test"


def alert(tenant: str, **overrides: object) -> AlertMessage:
    fields: dict = {
        "alert_id": str(uuid.uuid4()), "source": "guardrails", "tenant_id": tenant, "app_id": "support-bot",
        "rule": "pii.credit_card", "detector": "pii", "severity": "critical",
        "fingerprint": f"{tenant}/support-bot/pii.credit_card/pii", "title": "Credit card number in a prompt",
        "summary": "1 CREDIT_CARD finding in input", "occurred_at": datetime.now(UTC), "count": 1,
    }
    fields.update(overrides)
    return AlertMessage.model_validate(fields)


@pytest_asyncio.fixture
async def channels(pg_pool: asyncpg.Pool, tenant: str) -> AsyncIterator[Receiver]:
    with Receiver() as receiver:
        await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
        for name, kind, secret, severity in (("hook", "webhook", SECRET, "info"), ("slack", "slack", "", "warning"),
                                             ("pd", "pagerduty", "routing-123", "critical")):
            await pg_pool.execute(
                """INSERT INTO notification_channels
                     (tenant_id, name, kind, url, secret, min_severity, repeat_interval_s)
                   VALUES ($1, $2, $3, $4, $5, $6, 3600)""",
                tenant, name, kind, f"{receiver.url}/{name}", secret, severity)
        yield receiver


def notifier(stack: CommonSettings, pool: asyncpg.Pool, redis: aioredis.Redis, http: httpx.AsyncClient) -> Notifier:
    settings = NotifierSettings(**stack.model_dump(), backoff_base_s=0.01, max_attempts=4,
                                redis_retry_max_s=0.2)
    return Notifier(settings, redis=redis, http=http, pool=pool)


async def test_each_channel_gets_its_format_once_signed_and_without_raw_text(
        stack: CommonSettings, pg_pool, redis_client, channels: Receiver, tenant: str) -> None:
    async with httpx.AsyncClient() as http:
        n = notifier(stack, pg_pool, redis_client, http)
        first = alert(tenant)
        await n.deliver_all([first])
        await n.deliver_all([first])  # redelivered after a crash: nothing sent twice
        await n.deliver_all([alert(tenant, alert_id=first.alert_id, count=5)])  # an update within the repeat interval
        await n.deliver_all([alert(tenant, alert_id=first.alert_id, count=5, status="resolved")])

    hook = channels.on("/hook")
    assert len(hook) == 2  # trigger + resolve
    body = hook[0].body
    expected = "sha256=" + hmac.new(SECRET.encode(), f"{hook[0].headers['x-llmops-timestamp']}.".encode() + body,
                                    hashlib.sha256).hexdigest()
    assert hook[0].headers["x-llmops-signature"] == expected
    assert orjson.loads(body)["alert"]["fingerprint"] == first.fingerprint
    assert len(channels.on("/slack")) == 2
    pd = [orjson.loads(r.body) for r in channels.on("/pd")]
    assert [e["event_action"] for e in pd] == ["trigger", "resolve"]
    assert {e["dedup_key"] for e in pd} == {first.fingerprint}
    assert pd[0]["routing_key"] == "routing-123" and pd[0]["payload"]["severity"] == "critical"

    log = await pg_pool.fetch("SELECT status, action FROM notification_deliveries WHERE tenant_id = $1 ORDER BY id",
                              tenant)
    assert sorted((r["status"], r["action"]) for r in log) == sorted(
        [("delivered", "trigger")] * 3 + [("suppressed", "trigger")] * 3 + [("delivered", "resolve")] * 3)


async def test_severity_routing(stack: CommonSettings, pg_pool, redis_client, channels: Receiver, tenant: str) -> None:
    async with httpx.AsyncClient() as http:
        await notifier(stack, pg_pool, redis_client, http).deliver_all([alert(tenant, severity="info")])
    assert len(channels.on("/hook")) == 1
    assert channels.on("/slack") == [] and channels.on("/pd") == []


async def test_failed_sends_are_retried_with_backoff(stack: CommonSettings, pg_pool, redis_client,
                                                     channels: Receiver, tenant: str) -> None:
    channels.script.extend([500, 503])  # the first two requests fail, whichever channel they reach
    async with httpx.AsyncClient() as http:
        await notifier(stack, pg_pool, redis_client, http).deliver_all([alert(tenant, severity="warning")])
    assert len(channels.on("/hook")) == 1 and len(channels.on("/slack")) == 1
    assert len(channels.attempts) == 4
    attempts = await pg_pool.fetchval(
        "SELECT sum(attempts) FROM notification_deliveries WHERE tenant_id = $1 AND status = 'delivered'", tenant)
    assert attempts == 4


async def test_a_receiver_that_stays_down_is_logged_as_failed(stack: CommonSettings, pg_pool, redis_client,
                                                              channels: Receiver, tenant: str) -> None:
    channels.script.extend([500] * 4)
    async with httpx.AsyncClient() as http:
        n = notifier(stack, pg_pool, redis_client, http)
        a = alert(tenant, severity="info")
        await n.deliver_all([a])
        failed = await pg_pool.fetchrow(
            "SELECT status, attempts, http_status FROM notification_deliveries WHERE alert_id = $1", a.alert_id)
        assert (failed["status"], failed["attempts"], failed["http_status"]) == ("failed", 4, 500)
        await n.deliver_all([a])  # the repeat key was released: the next delivery tries again
    assert len(channels.on("/hook")) == 1


async def test_with_redis_down_notifications_are_delayed_not_lost(
        stack: CommonSettings, pg_pool, channels: Receiver, tenant: str, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", port=free_port())
    server.start()
    redis = aioredis.from_url(f"redis://127.0.0.1:{server.port}/0", socket_connect_timeout=0.2, socket_timeout=0.5)
    try:
        server.stop()
        async with httpx.AsyncClient() as http:
            task = asyncio.create_task(notifier(stack, pg_pool, redis, http).deliver_all([alert(tenant)]))
            await asyncio.sleep(1.5)
            assert not task.done() and channels.requests == []  # held, not dropped
            server.start()
            await asyncio.wait_for(task, 20)
        assert len(channels.on("/hook")) == 1 and len(channels.on("/pd")) == 1
    finally:
        await redis.aclose()
        server.stop()
