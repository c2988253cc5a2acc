"""`billing.usage` is crash-safe: the messages of committed ledger rows are sent even when the process dies
between the ledger's commit and the send.

The fault is injected where it matters: the first worker's producer "dies" (raises, as a SIGKILL would stop
it) at its first send to the usage topic, after the batch's transaction committed and before its offsets
were. Then a real billing worker process (`python -m llmops_billing.worker`, its start-up path and its
relays) takes over the same consumer group: the redelivered batch inserts nothing, and the messages of the
rows the dead process committed come from the outbox. Afterwards the usage topic holds exactly one message
per ledger row, and the outbox is empty.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from llmops_billing.ledger import UsageRecord
from llmops_billing.settings import BillingSettings
from llmops_billing.usage_messages import UsageRelay
from llmops_billing.worker import UsageLedgerHandler
from llmops_shared.clock import fixed
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings, environment
from llmops_shared.topics import TopicSpec
from llmops_shared.usage_events import UsageMessage
from llmops_shared.worker import StreamWorker
from tests.integration.billing.conftest import WORKER_NOW, wait_for
from tests.support.events import collect, end_offsets, make_event

pytestmark = pytest.mark.integration


class ProcessDied(Exception):
    """Raised where the process would have died: nothing after this point of the checkpoint runs."""


class DiesOnUsageSend:
    """A producer that sends everything except to `topic`: there the process dies."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.died = asyncio.Event()

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> Any:
        if topic == self.topic:
            self.died.set()
            raise ProcessDied(topic)
        return await self.producer.send(topic, value, **kwargs)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:  # `kafka.send_keyed`'s way
        if topic == self.topic:
            self.died.set()
            raise ProcessDied(topic)
        return await self.producer.send_batch(batch, topic, partition=partition)

    async def partitions_for(self, topic: str) -> Any:
        return await self.producer.partitions_for(topic)

    def create_batch(self) -> Any:
        return self.producer.create_batch()


async def pending_batches_of(pool: asyncpg.Pool, tenant: str) -> int:
    """Batch rows of the usage outbox holding messages of `tenant`."""
    return int(await pool.fetchval(
        "SELECT count(*) FROM billing_usage_outbox_batches b WHERE EXISTS "
        "(SELECT 1 FROM unnest(b.msg_keys) AS k WHERE k LIKE $1 || '/%')", tenant))


def events(tenant: str, n: int) -> list[dict[str, Any]]:
    return [{**make_event(occurred_at="2026-11-24T10:15:00Z", app_id="bot",
                          usage={"input_tokens": 100 + i, "output_tokens": i}), "tenant_id": tenant}
            for i in range(n)]


async def test_usage_messages_of_rows_committed_before_a_crash_are_sent_after_the_restart(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, tmp_path: Path) -> None:
    topic = f"test.billing.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, 1, 3_600_000),
                                                TopicSpec(f"{topic}.usage", 1, 3_600_000)))
    settings = BillingSettings(**{**stack.model_dump(), "pseudonym_key": f"billing-test-{topic}"}, topic=topic,
                               usage_topic=f"{topic}.usage", group=f"billing-test-{topic[-8:]}",
                               batch_max_events=20, batch_max_wait_ms=50, price_refresh_s=3600,
                               outbox_relay_min_age_s=0.0)
    since = await end_offsets(stack.kafka_bootstrap, settings.usage_topic)
    sent = events(tenant, 50)
    producer = durable_producer(stack.kafka_bootstrap, client_id="billing-test")
    await producer.start()
    try:
        for event in sent:
            await producer.send_and_wait(topic, orjson.dumps(event), key=b"k")
        # The first worker: commits its first batch, then dies at the usage send.
        dying = DiesOnUsageSend(producer, settings.usage_topic)
        handler = UsageLedgerHandler(settings, clock=fixed(WORKER_NOW))
        first: StreamWorker[Any, Any] = StreamWorker(handler, settings, pool=pg_pool, producer=dying)
        with pytest.raises(ProcessDied):
            await asyncio.wait_for(first.run(), 30)
    finally:
        await producer.stop()
    committed_rows = {str(r["event_id"]) for r in await pg_pool.fetch(
        "SELECT event_id FROM usage_ledger WHERE tenant_id = $1", tenant)}
    assert 0 < len(committed_rows) < len(sent)  # the dead process's batch, no more
    nothing_sent = await collect(stack.kafka_bootstrap, settings.usage_topic, since, until=lambda _f: False,
                                 timeout_s=0.5)
    assert nothing_sent == []

    def mine(record: Any) -> bool:
        return bool(orjson.loads(record.value)["tenant_id"] == tenant)

    env = {**os.environ, **environment(settings), "LLMOPS_LOG_LEVEL": "WARNING"}
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        second = await asyncio.create_subprocess_exec(sys.executable, "-m", "llmops_billing.worker", env=env,
                                                      stdout=out, stderr=out)
    try:
        async def all_billed() -> bool:
            n = await pg_pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant)
            return int(n) == len(sent)

        await wait_for(all_billed, timeout_s=60)
        # The relay drains every pending row of the database: rows other tests left (their handlers wrote
        # batches without publishing them) come to this topic too; only this tenant's are this test's.
        records = await collect(stack.kafka_bootstrap, settings.usage_topic, since,
                                until=lambda found: len(found) >= len(sent), timeout_s=30, keep=mine)
        # Anything sent twice would be there by now: read everything again, waiting for one message more.
        records = await collect(stack.kafka_bootstrap, settings.usage_topic, since,
                                until=lambda found: len(found) > len(sent), timeout_s=5, keep=mine)
    finally:
        second.terminate()
        await asyncio.wait_for(second.wait(), 20)
    assert second.returncode == 0, log.read_text()[-3000:]
    published = Counter(str(UsageMessage.model_validate_json(r.value).event_id) for r in records)
    assert not committed_rows - set(published), "the dead process's rows were not sent from the outbox"
    assert not {i for i, n in published.items() if n > 1}, "a row was sent twice"
    assert set(published) == {e["event_id"] for e in sent}  # every row, nothing else
    assert await pg_pool.fetchval("SELECT count(*) FROM billing_usage_outbox WHERE tenant_id = $1", tenant) == 0
    assert await pending_batches_of(pg_pool, tenant) == 0


async def test_two_relays_send_each_pending_row_once(stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str,
                                                     billing_worker: Any) -> None:
    """Rows a crashed process left, drained by two billing workers' relays at once: each sent by one."""
    from llmops_billing.store import usage_outbox

    messages = [UsageMessage(tenant_id=tenant, app_id="bot", event_id=uuid.uuid4(), occurred_at=WORKER_NOW,
                             environment="production", cost_total="0.5") for _ in range(300)]
    batched = [UsageMessage(tenant_id=tenant, app_id="bot", event_id=uuid.uuid4(), occurred_at=WORKER_NOW,
                            environment="production", cost_total="0.25") for _ in range(6 * 50)]
    async with pg_pool.acquire() as conn, conn.transaction():
        await usage_outbox.add(conn, messages=[UsageRecord(m.tenant_id, m.event_id, m.key, m.to_json())
                                               for m in messages])
        for b in range(6):  # and six batch rows (billing/0018), as six batch statements leave them
            part = batched[50 * b:50 * (b + 1)]
            await conn.execute("INSERT INTO billing_usage_outbox_batches (msg_keys, payloads) VALUES ($1, $2)",
                               [m.key.decode() for m in part], [m.to_json().decode() for m in part])
    messages += batched
    topic = billing_worker.settings.usage_topic
    since = await end_offsets(stack.kafka_bootstrap, topic)
    relays = [UsageRelay(pg_pool, billing_worker.producer, topic=topic, interval_s=1, min_age_s=0, batch=7)
              for _ in range(2)]
    counts = await asyncio.gather(*(r.run_once() for r in relays))
    assert sum(counts) >= len(messages)
    records = await collect(stack.kafka_bootstrap, topic, since, until=lambda found: len(found) > len(messages),
                            timeout_s=2, keep=lambda r: orjson.loads(r.value)["tenant_id"] == tenant)
    assert Counter(orjson.loads(r.value)["event_id"] for r in records) == Counter(
        {str(m.event_id): 1 for m in messages})
    assert await pg_pool.fetchval("SELECT count(*) FROM billing_usage_outbox WHERE tenant_id = $1", tenant) == 0
    assert await pending_batches_of(pg_pool, tenant) == 0
