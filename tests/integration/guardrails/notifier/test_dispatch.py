"""Channels are isolated: a slow or dead endpoint holds up its own lane only, its breaker opens, its pages are
parked (not dropped) and go out when it is back; everyone else's pages keep their latency."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis

from llmops_shared.settings import CommonSettings
from tests.integration.guardrails.conftest import wait_until
from tests.integration.guardrails.notifier.conftest import add_channel, alert, disable_channels, running
from tests.support.dripping import DrippingServer
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration

TIMEOUT_S = 2.0


async def test_a_dripping_endpoint_delays_no_one_else_and_its_breaker_opens(
        stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, tenant: str) -> None:
    slow_tenant, healthy_tenant = tenant, f"t-{uuid.uuid4().hex[:10]}"
    async with DrippingServer() as slow:
        with Receiver() as healthy:
            slow_channel = await add_channel(pg_pool, slow_tenant, name="hook", kind="webhook", url=f"{slow.url}/h")
            await add_channel(pg_pool, healthy_tenant, name="hook", kind="webhook", url=f"{healthy.url}/h")
            alerts = [alert(t, severity="warning") for _ in range(5) for t in (slow_tenant, healthy_tenant)]
            try:
                async with running(stack, pg_pool, redis_client, slow.url, healthy.url, timeout_s=TIMEOUT_S,
                                   claim_lease_s=10, max_attempts=3, breaker_failures=2, breaker_cooldown_s=60) as n:
                    loop = asyncio.get_running_loop()
                    started = loop.time()
                    settled = asyncio.create_task(n.deliver_now(alerts))  # the slow tenant's first, in every pair
                    await wait_until(lambda: _received(healthy, 5), timeout_s=30, what="the healthy pages")
                    healthy_done = loop.time() - started
                    statuses = await asyncio.wait_for(settled, 30)
                    slow_done = loop.time() - started
                    assert n.dispatcher.lanes[slow_channel].breaker.state == "open"
            finally:
                await disable_channels(pg_pool, slow_tenant)
                await disable_channels(pg_pool, healthy_tenant)

    # The healthy receiver had all its pages before the dripping endpoint's first attempt could end ...
    assert healthy_done < TIMEOUT_S, healthy_done
    # ... each attempt there ended at its deadline (two of them: the breaker opened), not when the server chose
    assert 2 * TIMEOUT_S <= slow_done < 2 * TIMEOUT_S + 3, slow_done
    assert slow.connections == 2
    rows = await pg_pool.fetch(
        """SELECT tenant_id, status, attempts, error, next_attempt_at > now() + interval '30 seconds' AS later
           FROM notification_deliveries WHERE tenant_id = ANY($1::text[])""", [slow_tenant, healthy_tenant])
    assert sorted(statuses.values()) == ["delivered"] * 5 + ["parked"] * 5
    slow_rows = [r for r in rows if r["tenant_id"] == slow_tenant]
    assert {r["status"] for r in slow_rows} == {"parked"}  # never dropped: due when the breaker lets a probe through
    assert sorted(r["attempts"] for r in slow_rows) == [0, 0, 0, 0, 2]
    assert all(r["later"] for r in slow_rows)
    assert {r["error"] for r in slow_rows if r["attempts"]} == {f"no answer within {TIMEOUT_S:g} s"}


async def test_a_parked_channel_recovers_through_the_half_open_probe(
        stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, tenant: str) -> None:
    """Down: the breaker opens and the pages are parked; back up: after the cool-down one probe goes, it
    succeeds, and every parked page is delivered."""
    with Receiver() as receiver:
        receiver.script.extend([503] * 2)
        await add_channel(pg_pool, tenant, name="hook", kind="webhook", url=f"{receiver.url}/h")
        try:
            async with running(
                    stack, pg_pool, redis_client, receiver.url, max_attempts=2, breaker_failures=2,
                    breaker_cooldown_s=1.0, park_backoff_base_s=0.5) as n:
                alerts = [alert(tenant, severity="warning", title=f"alert {i}") for i in range(4)]
                assert sorted((await n.deliver_now(alerts)).values()) == ["parked"] * 4
                await wait_until(lambda: _received(receiver, 4), timeout_s=20, what="the parked pages delivered")
        finally:
            await disable_channels(pg_pool, tenant)
    assert len(receiver.attempts) == 6  # two failures opened the breaker; no request while it was open
    assert {r.headers["x-llmops-message-id"] for r in receiver.requests} == {a.message_id for a in alerts}


async def _received(receiver: Receiver, n: int) -> bool:
    return len(receiver.requests) >= n
