"""Batches in flight as a pipeline, on real Kafka and Postgres: the next batch is prepared while the one
before is in its transaction, and starts its own transaction once that one has committed, while that one
is still publishing; offsets are committed in order, and never for a batch whose predecessor failed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import TopicPartition

from llmops_shared.contract import Interaction
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from llmops_shared.worker import InteractionHandler, Message, Resources, StreamWorker, WorkerSettings
from tests.support.events import committed, make_event
from tests.support.polling import until

pytestmark = pytest.mark.integration

BATCH = 10
"""Events per batch; the topic has one partition and two batches' worth of events."""


class Probe(InteractionHandler[int]):
    """One row per event, idempotent. Logs each step as (step, first offset of the batch). `hold_write`
    holds the first batch's transaction (failing it with a transient error while held); `hold_publish`
    holds the first batch's publish, and `fail_publish` makes it raise once released."""

    def __init__(self, group: str, topic: str, table: str) -> None:
        self.name = group
        self.topics = (topic,)
        self.table = table
        self.log: list[tuple[str, int]] = []
        self.hold_write = False
        self.hold_publish = False
        self.fail_publish = False
        self.release = asyncio.Event()
        self.caught_up: list[tuple[int, bool]] = []  # (first offset, `Resources.caught_up`) per batch

    async def prepare(self, items: list[tuple[Message, Interaction]], resources: Resources
                      ) -> tuple[list[tuple[Message, Interaction]], list[Any]]:
        self.log.append(("prepare", items[0][0].offset))
        self.caught_up.append((items[0][0].offset, resources.caught_up))
        return items, []

    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, Interaction]]) -> list[int]:
        first = items[0][0].offset
        self.log.append(("write", first))
        if self.hold_write and first == 0:
            await asyncio.wait_for(self.release.wait(), 60)
            raise asyncpg.PostgresConnectionError("the connection broke")  # transient: retried until stopping
        inserted = await conn.fetch(
            f"INSERT INTO {self.table} (event_id) SELECT unnest($1::uuid[]) "
            "ON CONFLICT DO NOTHING RETURNING event_id", [e.event_id for _, e in items])
        return [first] * len(inserted)

    async def publish(self, results: list[int], resources: Resources) -> None:
        first = results[0] if results else -1
        self.log.append(("publish", first))
        if self.hold_publish and first == 0:
            await asyncio.wait_for(self.release.wait(), 60)
            if self.fail_publish:
                raise RuntimeError("Kafka refused the batch's messages")
        self.log.append(("published", first))


class Setup:
    def __init__(self, stack: CommonSettings, pg_pool: asyncpg.Pool) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.stack, self.pool = stack, pg_pool
        self.topic, self.group = f"{TOPIC_PREFIX}pipeline.{suffix}", f"test-pipeline-{suffix}"
        self.table = f"pipeline_rows_{suffix}"
        self.settings = WorkerSettings(**stack.model_dump(), batch_max_events=BATCH, batch_max_wait_ms=50,
                                       batches_in_flight=2)

    async def start(self, tenant: str) -> None:
        await ensure_topics(self.stack.kafka_bootstrap, (TopicSpec(self.topic, partitions=1, retention_ms=None),))
        await self.pool.execute(f"CREATE TABLE {self.table} (event_id uuid PRIMARY KEY)")
        producer = durable_producer(self.stack.kafka_bootstrap, client_id="test")
        await producer.start()
        try:
            for _ in range(2 * BATCH):
                event = {**make_event(), "tenant_id": tenant}
                await producer.send(self.topic, orjson.dumps(event), key=b"k")
            await producer.flush()
        finally:
            await producer.stop()

    def worker(self, handler: Probe) -> StreamWorker[Interaction, int]:
        producer = durable_producer(self.stack.kafka_bootstrap, client_id="test")
        return StreamWorker(handler, self.settings, pool=self.pool, producer=producer)

    async def rows(self) -> int:
        count: int = await self.pool.fetchval(f"SELECT count(*) FROM {self.table}")  # noqa: S608
        return count

    async def committed(self) -> int | None:
        return await committed(self.stack.kafka_bootstrap, self.group, TopicPartition(self.topic, 0))


async def _run(worker: StreamWorker[Interaction, int]) -> None:
    await worker.producer.start()
    try:
        await worker.run()
    finally:
        await worker.producer.stop()


async def test_the_next_batch_commits_its_transaction_while_the_one_before_publishes_and_commits_offsets_after_it(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    setup = Setup(stack, pg_pool)
    await setup.start(tenant)
    handler = Probe(setup.group, setup.topic, setup.table)
    handler.hold_publish = True
    worker = setup.worker(handler)
    task = asyncio.create_task(_run(worker))
    try:
        await until(lambda: ("publish", 0) in handler.log, "the first batch publishes (held)")
        # Before: the second batch's transaction waited for the first batch's offsets.
        await until(lambda: _is(setup.rows(), 2 * BATCH), "the second batch's transaction committed")
        assert ("write", BATCH) in handler.log and ("publish", BATCH) not in handler.log
        assert await setup.committed() is None  # neither batch's offsets: the first has not published
        handler.release.set()
        await until(lambda: _is(setup.committed(), 2 * BATCH), "both batches' offsets committed")
    finally:
        worker.stopping.set()
        handler.release.set()
        await asyncio.wait_for(task, 30)
    assert [step for step in handler.log if step[0] != "prepare"] == [
        ("write", 0), ("publish", 0), ("write", BATCH), ("published", 0), ("publish", BATCH), ("published", BATCH)]


async def test_a_failed_publish_commits_no_offsets_of_the_batch_after_it_and_a_restart_counts_nothing_twice(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    setup = Setup(stack, pg_pool)
    await setup.start(tenant)
    handler = Probe(setup.group, setup.topic, setup.table)
    handler.hold_publish = handler.fail_publish = True
    worker = setup.worker(handler)
    task = asyncio.create_task(_run(worker))
    try:
        await until(lambda: _is(setup.rows(), 2 * BATCH), "the second batch's transaction committed")
    finally:
        handler.release.set()
        with pytest.raises(RuntimeError, match="Kafka refused"):
            await asyncio.wait_for(task, 30)
    assert ("publish", BATCH) not in handler.log
    assert await setup.committed() is None  # the second batch's offsets wait for the first's

    again = Probe(setup.group, setup.topic, setup.table)
    worker = setup.worker(again)
    task = asyncio.create_task(_run(worker))
    try:
        await until(lambda: _is(setup.committed(), 2 * BATCH), "everything committed after the restart")
    finally:
        worker.stopping.set()
        await asyncio.wait_for(task, 30)
    assert await setup.rows() == 2 * BATCH  # each event stored once
    publishes = [first for step, first in again.log if step == "publish"]
    assert publishes and set(publishes) == {-1}  # the redelivered batches inserted nothing, published nothing


async def test_a_batch_is_prepared_while_the_one_before_is_in_its_transaction_and_a_failed_transaction_stops_both(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    setup = Setup(stack, pg_pool)
    await setup.start(tenant)
    handler = Probe(setup.group, setup.topic, setup.table)
    handler.hold_write = True
    worker = setup.worker(handler)
    task = asyncio.create_task(_run(worker))
    await until(lambda: ("prepare", BATCH) in handler.log, "the second batch is prepared during the first's write")
    assert handler.log[-2:] == [("write", 0), ("prepare", BATCH)] or handler.log[-2:] == [
        ("prepare", BATCH), ("write", 0)]
    worker.stopping.set()  # the transient failure is no longer retried: the first batch fails
    handler.release.set()
    with pytest.raises(asyncpg.PostgresConnectionError):
        await asyncio.wait_for(task, 30)
    assert ("write", BATCH) not in handler.log  # nothing of the second batch was written ...
    assert await setup.rows() == 0
    assert await setup.committed() is None  # ... and none of its offsets committed


async def _is(value: Awaitable[int | None], expected: int) -> bool:
    return await value == expected


async def test_a_batch_that_reaches_the_end_of_its_partition_is_caught_up_and_one_before_it_is_not(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    setup = Setup(stack, pg_pool)
    await setup.start(tenant)  # two full batches already in the topic: a backlog
    handler = Probe(setup.group, setup.topic, setup.table)
    worker = setup.worker(handler)
    task = asyncio.create_task(_run(worker))
    try:
        await until(lambda: _is(setup.committed(), 2 * BATCH), "both batches' offsets committed")
    finally:
        worker.stopping.set()
        await asyncio.wait_for(task, 30)
    # both batches are full; only the second leaves nothing behind it (a handler may flush after it)
    assert handler.caught_up == [(0, False), (BATCH, True)]
