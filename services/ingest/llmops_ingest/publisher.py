"""Puts accepted events on `llm.interactions.raw`, and says so only once Kafka has them durably.

The producer (`llmops_shared.kafka.LazyProducer`) is idempotent with `acks=all` and starts on first use,
so the API starts, and answers 503, while Kafka is down. `publish` returns when every event of the
request is acknowledged, or raises `KafkaUnavailable` within the configured timeout: then the API
answers 503 and claims nothing. (An event Kafka took after that timeout is still on the topic; the
client's retry sends it again with the same `event_id`, and every consumer de-duplicates on the tenant and
`event_id`.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from llmops_shared.kafka import KafkaUnavailable, LazyProducer
from llmops_shared.topics import INTERACTIONS_RAW


class EventPublisher:
    def __init__(self, bootstrap: str, *, timeout_s: float, topic: str = INTERACTIONS_RAW) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.topic = topic
        self._producer = LazyProducer(bootstrap, client_id="llmops-ingest", timeout_s=timeout_s)

    async def publish(self, keyed_payloads: Sequence[tuple[bytes, bytes]]) -> None:
        """Send `(key, value)` pairs; return once all are acknowledged by Kafka."""
        await self._producer.send_all(self.topic, keyed_payloads)

    async def check(self) -> None:
        """Readiness: a fresh metadata round trip to the cluster (not the producer's cached view)."""
        producer = await self._producer.get()
        try:
            metadata = await asyncio.wait_for(producer.client.fetch_all_metadata(), self.timeout_s)
        except (KafkaError, TimeoutError) as exc:
            raise KafkaUnavailable(f"no metadata from Kafka: {type(exc).__name__}") from exc
        if not metadata.partitions_for_topic(self.topic):
            raise KafkaUnavailable(f"topic {self.topic} does not exist")

    async def close(self) -> None:
        await self._producer.close()
