"""The notifier against real Postgres, Redis and a real local HTTP receiver: formats, routing, retries,
parking, Postgres and Redis failures, and a crash between sending and recording."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from llmops_devtools.stack.redis import RedisServer
from llmops_guardrails.store import deliveries as deliveries_store
from llmops_shared.settings import CommonSettings
from tests.integration.guardrails.conftest import wait_until
from tests.integration.guardrails.notifier.conftest import SECRET, alert, running
from tests.support.receiver import Receiver
from tests.support.servers import free_port

pytestmark = pytest.mark.integration


async def test_each_channel_gets_its_format_once_signed_and_without_raw_text(
        stack: CommonSettings, pg_pool, redis_client, channels: Receiver, tenant: str) -> None:
    async with running(stack, pg_pool, redis_client, channels.url) as n:
        first = alert(tenant)
        assert set((await n.deliver_now([first])).values()) == {"delivered"}
        assert await n.deliver_now([first]) == {}  # redelivered after a crash: nothing queued, nothing sent
        await n.deliver_now([alert(tenant, alert_id=first.alert_id, count=5)])  # an update within the repeat interval
        await n.deliver_now([alert(tenant, alert_id=first.alert_id, count=5, status="resolved")])

    hook = channels.on("/hook")
    assert len(hook) == 2  # trigger + resolve
    body = hook[0].body
    expected = "sha256=" + hmac.new(SECRET.encode(), f"{hook[0].headers['x-llmops-timestamp']}.".encode() + body,
                                    hashlib.sha256).hexdigest()
    assert hook[0].headers["x-llmops-signature"] == expected
    assert hook[0].headers["x-llmops-message-id"] == first.message_id  # the idempotency key
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
    async with running(stack, pg_pool, redis_client, channels.url) as n:
        await n.deliver_now([alert(tenant, severity="info")])
    assert len(channels.on("/hook")) == 1
    assert channels.on("/slack") == [] and channels.on("/pd") == []


async def test_failed_sends_are_retried_with_backoff(stack: CommonSettings, pg_pool, redis_client,
                                                     channels: Receiver, tenant: str) -> None:
    channels.script.extend([500, 503])  # the first two requests fail, whichever channel they reach
    async with running(stack, pg_pool, redis_client, channels.url) as n:
        await n.deliver_now([alert(tenant, severity="warning")])
    assert len(channels.on("/hook")) == 1 and len(channels.on("/slack")) == 1
    assert len(channels.attempts) == 4
    attempts = await pg_pool.fetchval(
        "SELECT sum(attempts) FROM notification_deliveries WHERE tenant_id = $1 AND status = 'delivered'", tenant)
    assert attempts == 4


async def test_a_channel_that_stays_down_is_parked_not_dropped_and_delivered_once_it_recovers(
        stack: CommonSettings, pg_pool, redis_client, channels: Receiver, tenant: str) -> None:
    channels.script.extend([500] * 4)  # max_attempts: the whole first run fails
    async with running(stack, pg_pool, redis_client, channels.url, park_backoff_base_s=0.5) as n:
        a = alert(tenant, severity="info")
        assert set((await n.deliver_now([a])).values()) == {"parked"}
        parked = await pg_pool.fetchrow(
            """SELECT status, attempts, http_status, error, next_attempt_at > now() AS later
               FROM notification_deliveries WHERE alert_id = $1""", a.alert_id)
        assert dict(parked) == {"status": "parked", "attempts": 4, "http_status": 500, "error": "HTTP 500",
                                "later": True}
        assert channels.on("/hook") == []
        # The receiver answers again: the notifier retries the parked delivery in the background.
        await wait_until(lambda: pg_pool.fetchval(
            "SELECT status = 'delivered' FROM notification_deliveries WHERE alert_id = $1", a.alert_id),
            timeout_s=20, what="the parked delivery delivered")
    assert len(channels.on("/hook")) == 1
    assert await pg_pool.fetchval("SELECT attempts FROM notification_deliveries WHERE alert_id = $1", a.alert_id) == 5


async def test_with_redis_down_notifications_are_delayed_not_lost(
        stack: CommonSettings, pg_pool, channels: Receiver, tenant: str, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", port=free_port())
    server.start()
    redis = aioredis.from_url(f"redis://127.0.0.1:{server.port}/0", socket_connect_timeout=0.2, socket_timeout=0.5)
    try:
        server.stop()
        async with running(stack, pg_pool, redis, channels.url) as n:
            holding = logging.Handler(logging.WARNING)
            held: list[str] = []
            holding.emit = lambda record: held.append(record.getMessage())  # type: ignore[method-assign]
            dispatch_log = logging.getLogger("llmops_guardrails.notifier.dispatch")

            async def retried_twice() -> bool:  # the notifier met Redis down, waited, and met it again
                return sum("Redis unavailable; holding" in m for m in held) >= 2

            dispatch_log.addHandler(holding)
            try:
                task = asyncio.create_task(n.deliver_now([alert(tenant)]))
                await wait_until(retried_twice, timeout_s=20, what="the notifier holding for Redis")
            finally:
                dispatch_log.removeHandler(holding)
            assert not task.done() and channels.requests == []  # held, not dropped
            server.start()
            await asyncio.wait_for(task, 20)
        assert len(channels.on("/hook")) == 1 and len(channels.on("/pd")) == 1
    finally:
        await redis.aclose()
        server.stop()


class FlakyPostgres:
    """A store function that fails with a connection error the first `times` calls, then works."""

    def __init__(self, real: Any, times: int) -> None:
        self.real = real
        self.times = times
        self.failed = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed < self.times:
            self.failed += 1
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return await self.real(*args, **kwargs)


@pytest.mark.parametrize("call", ["claim", "finish", "insert_pending", "due"])
async def test_a_postgres_blip_in_a_store_call_is_retried_and_the_page_goes_out_once(
        *, stack: CommonSettings, pg_pool, redis_client, channels: Receiver, tenant: str,
        monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    """`finish` fails after the send: retried, it records the delivery, nothing is sent twice."""
    flaky = FlakyPostgres(getattr(deliveries_store, call), times=2)
    monkeypatch.setattr(deliveries_store, call, flaky)
    async with running(stack, pg_pool, redis_client, channels.url) as n:
        statuses = await n.deliver_now([alert(tenant, severity="info")])

        async def retried() -> bool:  # the sweeper's calls (`due`) come on their own time
            return flaky.failed == 2 and flaky.times == 2

        await wait_until(retried, what="both failures retried")
        assert n.dispatcher.failure is None and not n.dispatcher.stopping.is_set()
    assert list(statuses.values()) == ["delivered"]
    assert flaky.failed == 2
    assert len(channels.on("/hook")) == 1 and len(channels.attempts) == 1


async def test_a_crash_between_send_and_record_sends_again_with_the_same_idempotency_key(
        *, stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client, channels: Receiver, tenant: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At least once, with an idempotency key: the first notifier dies after the send, before recording it;
    once its claim lapses another notifier sends it again, with the same key, and records it once."""
    real_finish = deliveries_store.finish
    sent = asyncio.Event()

    async def dies_before_recording(*_args: Any, **_kwargs: Any) -> bool:
        sent.set()
        await asyncio.Event().wait()  # never returns: the process is killed here
        return False

    lease = {"timeout_s": 1.0, "claim_lease_s": 1.5}
    a = alert(tenant, severity="warning")  # webhook and Slack
    monkeypatch.setattr(deliveries_store, "finish", dies_before_recording)
    async with running(stack, pg_pool, redis_client, channels.url, **lease) as first:
        queued = asyncio.create_task(first.deliver_now([a]))
        await asyncio.wait_for(sent.wait(), 10)
        await wait_until(lambda: _all_sent(channels, 2), what="both channels sent to")
        queued.cancel()
    # the first notifier is gone (its lanes cancelled mid-record): the rows are still `sending`
    assert {r["status"] for r in await pg_pool.fetch(
        "SELECT status FROM notification_deliveries WHERE alert_id = $1", a.alert_id)} == {"sending"}
    monkeypatch.setattr(deliveries_store, "finish", real_finish)
    async with running(stack, pg_pool, redis_client, channels.url, **lease):
        await wait_until(lambda: pg_pool.fetchval(
            "SELECT bool_and(status = 'delivered') FROM notification_deliveries WHERE alert_id = $1", a.alert_id),
            what="delivered by the second notifier")
    hooks = channels.on("/hook")
    assert len(hooks) == 2  # sent twice ...
    [delivery_id] = await pg_pool.fetch(
        """SELECT d.id FROM notification_deliveries d JOIN notification_channels c USING (channel_id)
           WHERE d.alert_id = $1 AND c.kind = 'webhook'""", a.alert_id)
    # ... with one idempotency key: the delivery's id, as the deliveries API shows it
    assert [h.headers["x-llmops-delivery-id"] for h in hooks] == [str(delivery_id["id"])] * 2
    assert {h.headers["x-llmops-message-id"] for h in hooks} == {a.message_id}
    assert len(channels.on("/slack")) == 2  # Slack takes no key: documented
    assert await pg_pool.fetchval("SELECT count(*) FROM notification_deliveries WHERE alert_id = $1", a.alert_id) == 2


async def _all_sent(receiver: Receiver, n: int) -> bool:
    return len(receiver.requests) >= n
