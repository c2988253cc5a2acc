"""`kafka.send_keyed` on the real Kafka: record batches per partition land where `producer.send` puts the same
messages, in the same order per partition, with the same keys and values."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from llmops_shared.kafka import durable_producer, ensure_topics, send_keyed
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from tests.support.events import collect

pytestmark = pytest.mark.integration


def by_partition(records: list[ConsumerRecord]) -> dict[int, list[tuple[bytes, bytes]]]:
    out: dict[int, list[tuple[bytes, bytes]]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        out.setdefault(record.partition, []).append((record.key, record.value))
    return out


async def test_send_keyed_gives_each_message_the_partition_and_order_send_gives_it(stack: CommonSettings) -> None:
    run = uuid.uuid4().hex[:8]
    batched, plain = f"{TOPIC_PREFIX}keyed.{run}.batched", f"{TOPIC_PREFIX}keyed.{run}.plain"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(batched, partitions=6, retention_ms=3_600_000),
                                                TopicSpec(plain, partitions=6, retention_ms=3_600_000)))
    # 40 keys over 6 partitions, 3,000 messages of ~600 bytes: more than one record batch per partition.
    messages = [(f"tenant-{i % 3}/app-{i % 40}".encode(), f"{i:06d}".encode() + b"x" * 600) for i in range(3000)]
    producer = durable_producer(stack.kafka_bootstrap, client_id=f"test-keyed-{run}")
    await producer.start()
    try:
        futures = await send_keyed(producer, batched, messages)
        assert len(futures) > 6
        await asyncio.gather(*futures)
        await asyncio.gather(*[await producer.send(plain, value, key=key) for key, value in messages])
    finally:
        await producer.stop()

    async def read(topic: str) -> list[ConsumerRecord]:
        since = {TopicPartition(topic, p): 0 for p in range(6)}
        return await collect(stack.kafka_bootstrap, topic, since, until=lambda found: len(found) >= len(messages))

    got, expected = by_partition(await read(batched)), by_partition(await read(plain))
    assert sum(len(v) for v in got.values()) == len(messages)
    assert len(expected) > 1 and got == expected
