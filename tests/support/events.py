"""Valid interaction events for tests, and a reader that collects what reached a Kafka topic."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition


def make_event(**overrides: Any) -> dict[str, Any]:
    """One valid event as a producer sends it (no tenant_id: the API key sets it)."""
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC).isoformat(),
        "app_id": "support-bot",
        "environment": "test",
        "trace_id": f"tr-{uuid.uuid4().hex}",
        "span_id": f"sp-{uuid.uuid4().hex[:16]}",
        "span_kind": "llm",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input": [{"role": "system", "content": "You are a helpful support agent."},
                  {"role": "user", "content": "Where is my order?"}],
        "output": "It ships today.",
        "usage": {"input_tokens": 20, "output_tokens": 5},
        "latency_ms": 250.0,
        "status": "ok",
        "tags": ["test"],
        "metadata": {"source": "tests"},
    }
    event.update(overrides)
    return event


async def partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    tps = await partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def collect(bootstrap: str, topic: str, since: dict[TopicPartition, int], *,
                  until: Callable[[list[ConsumerRecord]], bool], timeout_s: float = 20,
                  keep: Callable[[ConsumerRecord], bool] = lambda _r: True) -> list[ConsumerRecord]:
    """Records of `topic` after the offsets `since` that `keep` accepts, until `until(records)` holds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[ConsumerRecord] = []
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout_s
        while not until(found) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                found.extend(r for r in records if keep(r))
        return found
    finally:
        await consumer.stop()


