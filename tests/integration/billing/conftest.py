"""Fixtures for billing's integration tests: a worker running in this process on a topic of its own.

The worker's clock is fixed at `WORKER_NOW` (its "now": `priced_at`, the budget periods it alerts on,
its partition window), so no test depends on today's date; it reloads prices only when its
`ConfigWatcher` says they changed (the periodic refresh is an hour), as a deployed worker does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from llmops_billing.settings import BillingSettings
from llmops_billing.worker import UsageLedgerHandler
from llmops_shared.clock import fixed
from llmops_shared.config_changes import ConfigWatcher
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from llmops_shared.worker import StreamWorker

WORKER_NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
"""The billing worker's "now" in these tests; their events happen around it."""


@dataclass
class RunningWorker:
    settings: BillingSettings
    handler: UsageLedgerHandler
    worker: StreamWorker[Any, Any]
    task: asyncio.Task[None]
    producer: AIOKafkaProducer

    async def send(self, *events: dict[str, Any] | bytes) -> None:
        for event in events:
            value = event if isinstance(event, bytes) else orjson.dumps(event)
            await self.producer.send_and_wait(self.settings.topic, value, key=b"k")


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def billing_worker(stack: CommonSettings, pg_pool: asyncpg.Pool) -> AsyncIterator[RunningWorker]:
    """A billing worker consuming a fresh topic with a fresh consumer group; stopped after the test."""
    topic = f"{TOPIC_PREFIX}billing.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, partitions=2, retention_ms=3_600_000),
                                                TopicSpec(f"{topic}.usage", partitions=2, retention_ms=3_600_000)))
    settings = BillingSettings(**{**stack.model_dump(), "pseudonym_key": f"billing-test-{topic}"}, topic=topic,
                               usage_topic=f"{topic}.usage", group=f"billing-test-{topic[-8:]}",
                               batch_max_events=50, batch_max_wait_ms=50, price_refresh_s=3600,
                               outbox_relay_min_age_s=0.0)
    producer = durable_producer(stack.kafka_bootstrap, client_id="billing-test")
    await producer.start()
    watcher = ConfigWatcher(stack.database_url)
    await watcher.start()
    handler = UsageLedgerHandler(settings, watcher=watcher, clock=fixed(WORKER_NOW))
    worker: StreamWorker[Any, Any] = StreamWorker(handler, settings, pool=pg_pool, producer=producer)
    task = asyncio.create_task(worker.run())
    running = RunningWorker(settings, handler, worker, task, producer)
    try:
        yield running
    finally:
        worker.stopping.set()
        await asyncio.wait_for(task, 15)
        await producer.stop()
        await watcher.close()
