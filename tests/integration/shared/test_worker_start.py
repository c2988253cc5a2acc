"""A worker started while Postgres is down waits for it instead of exiting (a supervisor restarting it
through an outage would otherwise count a crash loop and give up), and works once Postgres is back.
On a Postgres server of the test's own, started late: never the shared stack's."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import asyncpg
import pytest

from llmops_shared.contract import Interaction
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from llmops_shared.worker import InteractionHandler, Message, Resources, WorkerSettings, just, run_worker
from tests.support.events import make_event
from tests.support.postgres import own_postgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class Counter(InteractionHandler[str]):
    def __init__(self, topic: str) -> None:
        self.name = f"test-start-{uuid.uuid4().hex[:6]}"
        self.topics = (topic,)
        self.written: list[str] = []

    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, Interaction]]) -> list[str]:
        await conn.fetchval("SELECT 1")
        return [str(e.event_id) for _, e in items]

    async def publish(self, results: list[str], resources: Resources) -> None:
        self.written.extend(results)


async def test_a_worker_started_while_postgres_is_down_waits_for_it(stack: CommonSettings) -> None:
    topic = f"{TOPIC_PREFIX}worker-start.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, partitions=1, retention_ms=3_600_000),))
    event = make_event()
    producer = durable_producer(stack.kafka_bootstrap, client_id="test-worker-start")
    await producer.start()
    try:
        await producer.send_and_wait(topic, Interaction.model_validate({**event, "tenant_id": "t"}).model_dump_json()
                                     .encode())
    finally:
        await producer.stop()

    with own_postgres() as postgres:
        handler = Counter(topic)
        settings = WorkerSettings(**{**stack.model_dump(),
                                     "database_url": f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"},
                                  group=handler.name, db_retry_max_s=0.5, batch_max_wait_ms=50)
        worker = asyncio.create_task(run_worker(settings, lambda _resources: just(handler)))
        await asyncio.sleep(2)  # several attempts to connect, all refused
        assert not worker.done(), worker.exception() if worker.done() else None

        await asyncio.to_thread(postgres.start)
        async with asyncio.timeout(60):
            while event["event_id"] not in handler.written:
                assert not worker.done(), worker.exception() if worker.done() else None
                await asyncio.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)  # the worker's own way to stop
        assert await asyncio.wait_for(worker, 60) == 0
