"""Dead letters: record them, list them, and send them back to their topic once the cause is fixed.

A dead letter is a row in `dead_letters` (why, where from; no payload) plus the original message on
`llm.dead-letters` (headers say where from). Replay reads the dead-letter topic, re-publishes each
pending message to the topic it came from (same key and value) and marks its row replayed. Consumers
are idempotent on tenant and `event_id`, so a replayed event that another service already handled
changes nothing there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from llmops_shared.kafka import durable_producer
from llmops_shared.topics import DEAD_LETTERS

Origin = tuple[str, str, int, int]  # consumer, topic, partition, offset


class Row(NamedTuple):
    """One dead letter as stored: where the message came from and why it was given up on (no payload)."""

    topic: str
    partition: int
    offset: int
    message_key: bytes | None
    reason: str
    error: str
    event_id: str | None
    tenant_id: str | None


async def record(conn: asyncpg.Connection, *, consumer: str, rows: Sequence[Row]) -> None:
    """Store dead letters of `consumer`, idempotently (a redelivered batch records each once)."""
    if not rows:
        return
    await conn.executemany(
        """INSERT INTO dead_letters
               (consumer, topic, partition, "offset", message_key, reason, error, event_id, tenant_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::uuid, $9)
           ON CONFLICT (consumer, topic, partition, "offset") DO NOTHING""",
        [(consumer, *row) for row in rows],
    )


@dataclass(frozen=True)
class ReplayReport:
    pending: int
    replayed: int
    missing: int  # rows whose message is no longer on the dead-letter topic (retention)


async def pending(conn: asyncpg.Connection | asyncpg.Pool, consumer: str | None, reason: str | None,
                  limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT id, consumer, topic, partition, "offset", reason, error, created_at FROM dead_letters
           WHERE replayed_at IS NULL AND ($1::text IS NULL OR consumer = $1) AND ($2::text IS NULL OR reason = $2)
           ORDER BY id LIMIT $3""",
        consumer, reason, limit,
    )


async def replay(pool: asyncpg.Pool, bootstrap: str, *, consumer: str | None = None, reason: str | None = None,
                 limit: int = 10_000) -> ReplayReport:
    rows = await pending(pool, consumer, reason, limit)
    wanted: dict[Origin, int] = {(r["consumer"], r["topic"], r["partition"], r["offset"]): r["id"] for r in rows}
    if not wanted:
        return ReplayReport(0, 0, 0)
    producer = durable_producer(bootstrap, client_id="llmops-dlq-replay")
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await producer.start()
    await reader.start()
    replayed: list[int] = []
    try:
        partitions = [TopicPartition(DEAD_LETTERS, p) for p in sorted(await producer.partitions_for(DEAD_LETTERS))]
        ends = await reader.end_offsets(partitions)
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        done = {tp for tp in partitions if ends[tp] == 0}
        while len(done) < len(partitions) and len(replayed) < len(wanted):
            batches = await reader.getmany(timeout_ms=1000)
            if not batches:
                break
            for tp, records in batches.items():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    origin = (headers.get("llmops.consumer", ""), headers.get("llmops.topic", ""),
                              int(headers.get("llmops.partition", -1)), int(headers.get("llmops.offset", -1)))
                    row_id = wanted.get(origin)
                    if row_id is not None and row_id not in replayed:
                        await (await producer.send(origin[1], record.value, key=record.key))
                        replayed.append(row_id)
                    if record.offset + 1 >= ends[tp]:
                        done.add(tp)
        if replayed:
            await pool.execute("UPDATE dead_letters SET replayed_at = now() WHERE id = ANY($1::bigint[])", replayed)
    finally:
        await asyncio.gather(reader.stop(), producer.stop(), return_exceptions=True)
    return ReplayReport(len(wanted), len(replayed), len(wanted) - len(replayed))
