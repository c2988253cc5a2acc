"""Kafka helpers shared by the services: the durable producer and topic creation."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from llmops_shared.topics import TOPICS, TopicSpec

log = logging.getLogger(__name__)


def durable_producer(bootstrap: str, *, client_id: str, request_timeout_ms: int = 10_000,
                     linger_ms: int = 2) -> AIOKafkaProducer:
    """An idempotent producer that reports a send only once every in-sync replica has it."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=request_timeout_ms,
        retry_backoff_ms=100,
    )


async def ensure_topics(bootstrap: str, topics: tuple[TopicSpec, ...] = TOPICS, *, timeout_s: float = 30) -> list[str]:
    """Create the suite's topics that do not exist yet. Returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if not missing:
            return []
        with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent creator won
            await admin.create_topics(
                [NewTopic(t.name, num_partitions=t.partitions, replication_factor=1, topic_configs=t.config)
                 for t in missing]
            )
        return [t.name for t in missing]
    finally:
        await admin.close()
