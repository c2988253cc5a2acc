"""Group members join and leave mid-stream: no worker crashes, every event is stored once, and work in
flight for a partition that moves is either finished before it moves (within the grace period) or
dropped and left to the new owner, never done by both."""

from __future__ import annotations

import asyncio
import collections
import functools
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from llmops_shared.contract import Interaction
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from llmops_shared.worker import (
    DeadLetter,
    InteractionHandler,
    Message,
    Resources,
    StreamWorker,
    WorkerSettings,
)
from tests.support import polling
from tests.support.events import end_offsets, make_event

pytestmark = pytest.mark.integration

PARTITIONS = 6
until = functools.partial(polling.until, timeout_s=60, every_s=0.1)  # this file's waits: up to a minute


class GatedWriter(InteractionHandler[str]):
    """Stores one row per event. `prepare` records what it was asked to work on, and holds this worker's
    first batch until the test opens the gate (a slow judge call in flight during a rebalance)."""

    def __init__(self, group: str, topic: str, table: str, prepared: collections.Counter[str]) -> None:
        self.name = group
        self.topics = (topic,)
        self.table = table
        self.prepared = prepared
        self.gate = asyncio.Event()
        self.held: list[str] = []  # the event ids of the batch held at the gate

    async def prepare(self, items: list[tuple[Message, Interaction]], resources: Resources
                      ) -> tuple[list[tuple[Message, Interaction]], list[DeadLetter]]:
        ids = [str(e.event_id) for _, e in items]
        self.prepared.update(ids)
        if not self.held and not self.gate.is_set():
            self.held = ids
            await self.gate.wait()
        return items, []

    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, Interaction]]) -> list[str]:
        await conn.executemany(f"INSERT INTO {self.table} (event_id, n) VALUES ($1, 1) "  # noqa: S608
                               f"ON CONFLICT (event_id) DO UPDATE SET n = {self.table}.n + 1",
                               [(e.event_id,) for _, e in items])
        return []


async def _scenario(stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, *, grace_s: float) -> dict[str, Any]:
    """Worker A takes a first batch and holds it in `prepare`; B joins (a rebalance revokes A's partitions
    while the batch is in flight); the gate opens (during the revocation's grace, or after it gave up);
    more events come; B leaves; more events come; A alone finishes. Returns what happened."""
    suffix = uuid.uuid4().hex[:8]
    topic, group, table = f"{TOPIC_PREFIX}rebalance.{suffix}", f"test-rebalance-{suffix}", f"rebalance_rows_{suffix}"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, partitions=PARTITIONS, retention_ms=None),))
    await pg_pool.execute(f"CREATE TABLE {table} (event_id uuid PRIMARY KEY, n int NOT NULL)")
    settings = WorkerSettings(**stack.model_dump(), batch_max_events=40, batch_max_wait_ms=50,
                              rebalance_grace_s=grace_s, consumer_session_timeout_ms=6000)
    producer = durable_producer(stack.kafka_bootstrap, client_id="test")
    await producer.start()
    sent: list[str] = []

    async def send(n: int) -> None:
        for _ in range(n):
            event = {**make_event(), "tenant_id": tenant}
            sent.append(event["event_id"])
            await producer.send(topic, orjson.dumps(event), key=event["trace_id"].encode())
        await producer.flush()

    prepared: collections.Counter[str] = collections.Counter()
    a_handler, b_handler = GatedWriter(group, topic, table, prepared), GatedWriter(group, topic, table, prepared)
    b_handler.gate.set()  # only A holds a batch
    a = StreamWorker(a_handler, settings, pool=pg_pool, producer=producer)
    b = StreamWorker(b_handler, settings, pool=pg_pool, producer=producer)
    stored = f"SELECT count(*) FROM {table}"  # noqa: S608
    await send(120)
    a_task = asyncio.create_task(a.run())
    b_task: asyncio.Task[None] | None = None
    try:
        await until(lambda: bool(a_handler.held), "A holds its first batch")
        b_task = asyncio.create_task(b.run())
        if grace_s > 0:
            await until(lambda: a.ownership.revoking, "A is revoking, waiting for its batch in flight")
        else:
            await until(lambda: a.ownership.revocations > 0, "A's partitions were revoked")
        a_handler.gate.set()
        await until(lambda: bool(b.ownership.assigned) and bool(a.ownership.assigned), "both members own partitions")
        await send(120)
        await until(lambda: pg_pool.fetchval(stored), "something stored")
        b.stopping.set()  # B leaves the group mid-stream
        await asyncio.wait_for(b_task, 30)
        await send(120)
        await until(lambda: len(a.ownership.assigned) == PARTITIONS, "A owns every partition again")
        await until(lambda: _equals(pg_pool, stored, len(sent)), "every event stored")
    finally:
        a.stopping.set()
        b.stopping.set()
        a_handler.gate.set()
        await asyncio.wait_for(a_task, 30)  # raises if the worker crashed
        if b_task is not None:
            await asyncio.wait_for(b_task, 30)
        await producer.stop()

    rows = await pg_pool.fetch(f"SELECT event_id::text, n FROM {table}")  # noqa: S608
    return {"sent": sent, "rows": {r["event_id"]: r["n"] for r in rows}, "prepared": prepared,
            "held": a_handler.held, "committed": await _committed(stack.kafka_bootstrap, group, topic),
            "ends": await end_offsets(stack.kafka_bootstrap, topic)}


async def _equals(pool: asyncpg.Pool, sql: str, expected: int) -> bool:
    return bool(await pool.fetchval(sql) == expected)


async def _committed(bootstrap: str, group: str, topic: str) -> dict[Any, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [tp for tp in (await end_offsets(bootstrap, topic))]
        return {tp: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()


async def test_a_batch_in_flight_during_a_rebalance_finishes_within_the_grace_and_is_done_once(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    got = await _scenario(stack, pg_pool, tenant, grace_s=30)
    assert sorted(got["rows"]) == sorted(got["sent"]) and set(got["rows"].values()) == {1}
    assert got["held"] and all(got["prepared"][e] == 1 for e in got["sent"])  # nothing was worked on twice
    assert got["committed"] == got["ends"]


async def test_a_batch_still_in_flight_after_the_grace_is_dropped_and_its_new_owner_does_it(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    got = await _scenario(stack, pg_pool, tenant, grace_s=0)
    assert sorted(got["rows"]) == sorted(got["sent"]) and set(got["rows"].values()) == {1}
    twice = {e for e in got["sent"] if got["prepared"][e] == 2}
    assert twice == set(got["held"])  # the held batch was dropped, then redone by its partitions' owner
    assert all(got["prepared"][e] == 1 for e in got["sent"] if e not in twice)
    assert got["committed"] == got["ends"]
