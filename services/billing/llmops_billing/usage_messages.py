"""`billing.usage`: each inserted ledger row, priced, for the monitors service; sent through an outbox.

The messages (the JSON of `llmops_shared.usage_events.UsageMessage`, key `tenant_id/app_id`, made by
`ledger.usage_record`) of a batch are written to ONE row of `billing_usage_outbox_batches` in the ledger's
transaction (by the worker's batch statement, `store.ledger.write_batch`, billing/0018; before that, one
`billing_usage_outbox` row per message, which `store.usage_outbox.add` still writes for tests and tools).
After the commit the worker takes its batch's row (deleted, locked until its transaction ends), sends the
batch's messages and commits (`publish_usage`); `UsageRelay`, a task of every billing worker, takes and sends
whatever a crashed process left in either table: at start-up everything, then every `interval_s` what is
older than `min_age_s`. A send that fails rolls its transaction back, so the rows stay for the relay.
Exactly the rows that were committed are sent; a message is sent twice only if its process died after Kafka
had it and before its delete committed, or when a send is retried after Kafka took part of it (`retry_send`
sends the whole set again); it keeps its `(tenant_id, event_id)`, on which the monitors worker drops the
repeat. Messages go out as one record batch per partition (`llmops_shared.kafka.send_keyed`: the partitions
and order `producer.send` would give them, without its per-message work).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from llmops_billing.alerts import relay_rounds
from llmops_billing.ledger import UsageRecord
from llmops_billing.store import usage_outbox
from llmops_shared.kafka import send_keyed
from llmops_shared.worker import Resources, is_transient, retry_send

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UsageBatch:
    """A batch's usage messages and the `billing_usage_outbox_batches` row that holds them (`WriteResult`)."""

    outbox_id: int
    messages: tuple[UsageRecord, ...]


async def publish_usage(resources: Resources, topic: str, batch: UsageBatch | None) -> int:
    """The worker's step after its commit: take the batch's row (unless a relay holds or sent it), send its
    messages (retried while Kafka refuses), commit the delete. Returns how many were sent. Postgres failing
    meanwhile leaves the row to the relay."""
    if batch is None or not batch.messages:
        return 0
    try:
        async with resources.pool.acquire() as conn, conn.transaction():
            taken = await usage_outbox.take_batch(conn, batch_id=batch.outbox_id)
            if taken:
                await retry_send(resources, topic, [(m.key, m.value) for m in batch.messages], what="usage messages")
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("could not send usage messages; the outbox relay sends them",
                    extra={"error_type": type(exc).__name__, "messages": len(batch.messages)})
        return 0
    return len(batch.messages) if taken else 0


BATCH_ROWS = 5
"""Batch rows of the usage outbox the relay takes and sends per transaction (up to 10,000 messages)."""


class UsageRelay:
    """Sends the usage messages a crashed process left in the outbox; see the module docstring."""

    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer, *, topic: str, interval_s: float,
                 min_age_s: float, batch: int = 1_000) -> None:
        self.pool = pool
        self.producer = producer
        self.topic = topic
        self.interval_s = interval_s
        self.min_age_s = min_age_s
        self.batch = batch

    async def run_once(self, *, min_age_s: float | None = None) -> int:
        """Drain: take, send and delete pending rows until none is left (batch rows, `BATCH_ROWS` per
        transaction, then single messages, `batch` per transaction); returns how many messages were sent."""
        age = self.min_age_s if min_age_s is None else min_age_s
        sent = 0
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                batches = await usage_outbox.take_pending_batches(conn, min_age_s=age, limit=BATCH_ROWS)
                messages = [(key.encode(), payload.encode())
                            for r in sorted(batches, key=lambda r: r["created_at"])
                            for key, payload in zip(r["msg_keys"], r["payloads"], strict=True)]
                await asyncio.gather(*await send_keyed(self.producer, self.topic, messages))
            sent += len(messages)
            if len(batches) < BATCH_ROWS:
                break
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                taken = await usage_outbox.take_pending(conn, min_age_s=age, limit=self.batch)
                taken = sorted(taken, key=lambda r: r["created_at"])
                await asyncio.gather(*await send_keyed(
                    self.producer, self.topic, [(r["msg_key"].encode(), r["payload"].encode()) for r in taken]))
            sent += len(taken)
            if len(taken) < self.batch:
                break
        if sent:
            log.info("sent usage messages left in the outbox", extra={"messages": sent})
        return sent

    async def run(self, stopping: asyncio.Event | None = None) -> None:
        """At start-up everything pending (a crashed process's rows), then every `interval_s` the rows older
        than `min_age_s` (a live worker sends its own well before)."""
        await relay_rounds(lambda first: self.run_once(min_age_s=0.0 if first else None),
                           interval_s=self.interval_s, what="usage messages", stopping=stopping)
