"""Valid interaction events for tests (`make_event`, shared with the benchmarks through
`llmops_devtools.testing`), and a reader that collects what reached a Kafka topic."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from llmops_devtools.testing import make_event

__all__ = ["collect", "committed", "end_offsets", "make_event", "partitions"]


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




async def committed(bootstrap: str, group: str, partition: TopicPartition) -> int | None:
    """The consumer group's committed offset on `partition` (None: nothing committed yet)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(partition)
    finally:
        await consumer.stop()
