"""`billing.usage`: each inserted ledger row, priced, for the monitors service; sent through an outbox.

The messages (the JSON of `llmops_shared.usage_events.UsageMessage`, key `tenant_id/app_id`, made by
`ledger.usage_record`) are written to
`billing_usage_outbox` in the ledger's transaction (by the worker's batch statement, `store.ledger.write_batch`;
`store.usage_outbox.add` writes rows outside a batch, which only the tests do). After the commit the worker
takes its batch's rows (deleted, locked until its transaction ends), sends them and commits
(`publish_usage`); `UsageRelay`, a task of every billing worker, takes and sends whatever a crashed process
left: at start-up everything, then every `interval_s` what is older than `min_age_s`. A send that fails
rolls its transaction back, so the rows stay for the relay. Exactly the rows that were committed are sent;
a message is sent twice only if its process died after Kafka had it and before its delete committed, or
when a send is retried after Kafka took part of it (`retry_send` sends the whole set again); it keeps its
`(tenant_id, event_id)`, on which the monitors worker drops the repeat. Messages go out as one record batch
per partition (`llmops_shared.kafka.send_keyed`: the partitions and order `producer.send` would give them,
without its per-message work).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaProducer

from llmops_billing.alerts import relay_rounds
from llmops_billing.ledger import UsageRecord
from llmops_billing.store import usage_outbox
from llmops_shared.kafka import send_keyed
from llmops_shared.worker import Resources, is_transient, retry_send

log = logging.getLogger(__name__)


async def publish_usage(resources: Resources, topic: str, messages: Sequence[UsageRecord]) -> int:
    """The worker's step after its commit: take the batch's rows (those a relay holds or sent are skipped),
    send them (retried while Kafka refuses), commit the delete. Returns how many were sent. Postgres
    failing meanwhile leaves the rows to the relay."""
    if not messages:
        return 0
    try:
        async with resources.pool.acquire() as conn, conn.transaction():
            taken = await usage_outbox.take(conn, messages=messages)
            if taken:
                await retry_send(resources, topic, [(r["msg_key"].encode(), r["payload"].encode()) for r in taken],
                                 what="usage messages")
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("could not send usage messages; the outbox relay sends them",
                    extra={"error_type": type(exc).__name__, "messages": len(messages)})
        return 0
    return len(taken)


class UsageRelay:
    """Sends the usage messages a crashed process left in the outbox, `batch` rows per transaction."""

    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer, *, topic: str, interval_s: float,
                 min_age_s: float, batch: int = 1_000) -> None:
        self.pool = pool
        self.producer = producer
        self.topic = topic
        self.interval_s = interval_s
        self.min_age_s = min_age_s
        self.batch = batch

    async def run_once(self, *, min_age_s: float | None = None) -> int:
        """Drain: take, send and delete pending rows until none is left; returns how many were sent."""
        sent = 0
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                taken = await usage_outbox.take_pending(
                    conn, min_age_s=self.min_age_s if min_age_s is None else min_age_s, limit=self.batch)
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
