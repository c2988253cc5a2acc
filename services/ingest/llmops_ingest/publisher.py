"""Puts accepted events on `llm.interactions.raw`, and says so only once Kafka has them durably.

The producer is idempotent with `acks=all`. `publish` returns when every event of the request is
acknowledged, or raises `KafkaUnavailable` within the configured timeout: then the API answers 503 and
claims nothing. (An event Kafka took after that timeout is still on the topic; the client's retry
sends it again with the same `event_id`, and every consumer de-duplicates on `event_id`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from llmops_shared.kafka import durable_producer
from llmops_shared.topics import INTERACTIONS_RAW

log = logging.getLogger(__name__)


class KafkaUnavailable(Exception):
    pass


class EventPublisher:
    def __init__(self, bootstrap: str, *, timeout_s: float, topic: str = INTERACTIONS_RAW) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = durable_producer(self.bootstrap, client_id="llmops-ingest",
                                            request_timeout_ms=int(self.timeout_s * 1000))
                try:
                    await asyncio.wait_for(producer.start(), self.timeout_s)
                except (KafkaError, OSError, TimeoutError) as exc:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise KafkaUnavailable(f"cannot reach Kafka at {self.bootstrap}: {type(exc).__name__}") from exc
                self._producer = producer
            return self._producer

    async def publish(self, keyed_payloads: Sequence[tuple[bytes, bytes]]) -> None:
        """Send `(key, value)` pairs; return once all are acknowledged by Kafka."""
        producer = await self._ready_producer()
        try:
            async with asyncio.timeout(self.timeout_s):
                deliveries = [await producer.send(self.topic, value, key=key) for key, value in keyed_payloads]
                await asyncio.gather(*deliveries)
        except TimeoutError as exc:
            raise KafkaUnavailable(f"Kafka did not acknowledge within {self.timeout_s}s") from exc
        except KafkaError as exc:
            # A producer in an error state is replaced, so the next request starts clean.
            await self._reset()
            raise KafkaUnavailable(f"Kafka refused the events: {type(exc).__name__}") from exc

    async def check(self) -> None:
        """Readiness: a fresh metadata round trip to the cluster (not the producer's cached view)."""
        producer = await self._ready_producer()
        try:
            metadata = await asyncio.wait_for(producer.client.fetch_all_metadata(), self.timeout_s)
        except (KafkaError, TimeoutError) as exc:
            raise KafkaUnavailable(f"no metadata from Kafka: {type(exc).__name__}") from exc
        if not metadata.partitions_for_topic(self.topic):
            raise KafkaUnavailable(f"topic {self.topic} does not exist")

    async def _reset(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 2)

    async def close(self) -> None:
        await self._reset()
