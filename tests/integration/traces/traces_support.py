"""Helpers of the traces service's integration tests: events around a fixed `NOW`, topics, sending, waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import TopicSpec
from llmops_shared.worker import StreamWorker
from llmops_traces.settings import TracesSettings
from tests.support.events import make_event

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
"""The traces worker's and API's "now" in these tests; their events happen around it."""


def span_event(tenant: str, *, at: datetime | None = None, **overrides: Any) -> dict[str, Any]:
    """A clean event of `tenant` at `at` (default: ten minutes before `NOW`)."""
    return {**make_event(occurred_at=(at or NOW - timedelta(minutes=10)).isoformat()), "tenant_id": tenant,
            **overrides}


def traces_settings(stack: CommonSettings, **overrides: Any) -> TracesSettings:
    topic = f"test.traces.{uuid.uuid4().hex[:8]}"
    values: dict[str, Any] = {**stack.model_dump(), "topic": topic, "group": f"traces-test-{topic[-8:]}",
                              "batch_max_events": 50, "batch_max_wait_ms": 50, "requests_per_s": None}
    values.update(overrides)
    return TracesSettings(**values)


async def create_topic(settings: TracesSettings, partitions: int = 2) -> None:
    await ensure_topics(settings.kafka_bootstrap, (TopicSpec(settings.topic, partitions=partitions,
                                                             retention_ms=3_600_000),))


async def send(bootstrap: str, topic: str, events: list[dict[str, Any] | bytes]) -> None:
    producer = durable_producer(bootstrap, client_id="traces-test")
    await producer.start()
    try:
        futures = []
        for event in events:
            if isinstance(event, bytes):
                futures.append(await producer.send(topic, event, key=b"k"))
            else:
                futures.append(await producer.send(topic, orjson.dumps(event), key=event["trace_id"].encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout_s:g} s")
        await asyncio.sleep(0.05)


async def span_count(pool: asyncpg.Pool, tenant: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM trace_spans WHERE tenant_id = $1", tenant))


@dataclass
class RunningWriter:
    settings: TracesSettings
    worker: StreamWorker[Any, Any]
    task: asyncio.Task[None]
    producer: AIOKafkaProducer

    async def send(self, *events: dict[str, Any] | bytes) -> None:
        await send(self.settings.kafka_bootstrap, self.settings.topic, list(events))


