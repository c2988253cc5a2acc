"""The billing alert outbox on the real Postgres: claimed rows are sent once, sent rows are purged.

Two relays (two billing workers) and a worker's own publish step race for the same pending alerts; the
producer here is slow on purpose, so without a claim every relay would read every pending row before any
of them marks one published. Each alert must be sent exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import asyncpg
import pytest

from llmops_billing.alerts import Alert, OutboxRelay, unpriced_model_alert
from llmops_billing.settings import BillingSettings
from llmops_billing.store import outbox
from llmops_billing.worker import UsageLedgerHandler
from llmops_shared.db import create_pool
from llmops_shared.settings import CommonSettings
from llmops_shared.worker import Resources
from tests.integration.billing.conftest import WORKER_NOW

pytestmark = pytest.mark.integration


class SlowProducer:
    """Takes its time over every send (as a broker under load does) and remembers what it was given."""

    def __init__(self, delay_s: float = 0.3) -> None:
        self.delay_s = delay_s
        self.sent: list[bytes] = []

    async def send(self, _topic: str, value: bytes, *, key: bytes | None = None) -> asyncio.Future[None]:
        await asyncio.sleep(self.delay_s)
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def alerts_for(tenant: str, n: int) -> list[Alert]:
    return [unpriced_model_alert(tenant_id=tenant, provider="acme", model=f"m-{i}-{uuid.uuid4().hex[:6]}",
                                 model_key=f"m-{i}", reason="unknown_model", event_count=1, first_seen_at=WORKER_NOW,
                                 alerted_at=WORKER_NOW) for i in range(n)]


async def add(pool: asyncpg.Pool, alerts: list[Alert]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, alerts=alerts)


def sent_ids(*producers: SlowProducer) -> Counter[str]:
    import orjson

    return Counter(orjson.loads(v)["alert_id"] for p in producers for v in p.sent)


async def test_two_relays_never_both_send_the_same_pending_alert(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    alerts = alerts_for(tenant, 6)
    await add(pg_pool, alerts)
    other_pool = await create_pool(stack.database_url, max_size=2)  # another worker process's
    try:
        first, second = SlowProducer(), SlowProducer()
        relays = [OutboxRelay(pg_pool, first, topic="t", interval_s=1, min_age_s=0),  # type: ignore[arg-type]
                  OutboxRelay(other_pool, second, topic="t", interval_s=1, min_age_s=0)]  # type: ignore[arg-type]
        sent = await asyncio.gather(*(r.run_once() for r in relays))
        ours = {a.alert_id for a in alerts}
        counts = sent_ids(first, second)
        assert {i: n for i, n in counts.items() if i in ours} == dict.fromkeys(ours, 1)
        assert sum(sent) >= len(ours)
        for relay in relays:  # and nothing is left to send
            assert await relay.run_once() == 0
        assert sent_ids(first, second) == counts
    finally:
        await other_pool.close()
    assert await pg_pool.fetchval("SELECT count(*) FROM billing_alert_outbox WHERE tenant_id = $1 "
                                  "AND published_at IS NULL", tenant) == 0


async def test_a_worker_sends_its_batch_s_alerts_unless_a_relay_holds_them(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    alerts = alerts_for(tenant, 4)
    await add(pg_pool, alerts)
    settings = BillingSettings(**stack.model_dump())
    handler = UsageLedgerHandler(settings)
    worker_producer, relay_producer = SlowProducer(0.05), SlowProducer(0.5)
    relay = OutboxRelay(pg_pool, relay_producer, topic="t", interval_s=1, min_age_s=0)  # type: ignore[arg-type]
    resources = Resources(pg_pool, worker_producer, asyncio.Event())  # type: ignore[arg-type]

    relay_round = asyncio.create_task(relay.run_once())
    await _until(lambda: bool(relay_producer.sent))  # the relay holds every pending row now, sending slowly
    await handler.publish(alerts, resources)  # the worker's publish step for the same alerts: it skips them
    await relay_round
    ours = {a.alert_id for a in alerts}
    assert {i: n for i, n in sent_ids(relay_producer).items() if i in ours} == dict.fromkeys(ours, 1)
    assert not set(sent_ids(worker_producer)) & ours

    fresh = alerts_for(tenant, 2)  # alerts nobody holds: the worker sends them itself, once
    await add(pg_pool, fresh)
    await handler.publish(fresh, resources)
    await handler.publish(fresh, resources)  # a publish step retried: they are published already
    assert sent_ids(worker_producer) == Counter({a.alert_id: 1 for a in fresh})


async def test_sent_alerts_are_purged_after_their_retention_and_pending_ones_never(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    old_sent, new_sent, pending = alerts_for(tenant, 3)
    await add(pg_pool, [old_sent, new_sent, pending])
    await outbox.mark_published(pg_pool, alerts=[old_sent, new_sent])
    await pg_pool.execute("UPDATE billing_alert_outbox SET published_at = now() - interval '8 days', "
                          "created_at = now() - interval '8 days' WHERE alert_id = $1", uuid.UUID(old_sent.alert_id))
    await pg_pool.execute("UPDATE billing_alert_outbox SET created_at = now() - interval '9 days' "
                          "WHERE alert_id = $1", uuid.UUID(pending.alert_id))
    relay = OutboxRelay(pg_pool, SlowProducer(0), topic="t", interval_s=1, min_age_s=3600,  # type: ignore[arg-type]
                        keep_sent_s=7 * 86_400)
    await relay.run_once(min_age_s=10 * 86_400)  # sends nothing (too young), then purges
    left = await pg_pool.fetch("SELECT alert_id::text FROM billing_alert_outbox WHERE tenant_id = $1", tenant)
    assert {r["alert_id"] for r in left} == {new_sent.alert_id, pending.alert_id}


async def _until(condition: Any, timeout_s: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
