"""The stream worker on real Kafka and Postgres: checkpoint order, dead letters, poison isolation."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import orjson
import pytest

from llmops_shared.contract import Interaction
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import DEAD_LETTERS, TopicSpec
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.worker import InteractionHandler, Message, Resources, StreamWorker, WorkerSettings
from tests.support.events import collect, end_offsets, make_event

pytestmark = pytest.mark.integration


class RowWriter(InteractionHandler[str]):
    """A minimal handler: one row per event, idempotent; an event tagged 'explode' crashes the write."""

    def __init__(self, topic: str) -> None:
        self.name = f"test-worker-{uuid.uuid4().hex[:6]}"
        self.topics = (topic,)
        self.published: list[int] = []

    async def write(self, conn: asyncpg.Connection, items: list[tuple[Message, Interaction]]) -> list[str]:
        if any("explode" in e.tags for _, e in items):
            raise ValueError("scanner crashed")
        rows = await conn.fetch(
            """INSERT INTO worker_test_rows (event_id) SELECT unnest($1::uuid[])
               ON CONFLICT DO NOTHING RETURNING event_id""",
            [e.event_id for _, e in items])
        return [str(r["event_id"]) for r in rows]

    async def publish(self, results: list[str], resources: Resources) -> None:
        self.published.append(len(results))


async def test_poison_goes_to_the_dead_letter_topic_and_table_and_the_worker_keeps_going(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    await pg_pool.execute("CREATE TABLE IF NOT EXISTS worker_test_rows (event_id uuid PRIMARY KEY)")
    topic = f"{TOPIC_PREFIX}worker.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, partitions=2, retention_ms=None),))
    good = [{**make_event(), "tenant_id": tenant} for _ in range(30)]
    crashing = {**make_event(tags=["explode"]), "tenant_id": tenant}
    dlq_since = await end_offsets(stack.kafka_bootstrap, DEAD_LETTERS)

    producer = durable_producer(stack.kafka_bootstrap, client_id="test")
    await producer.start()
    for event in good[:15]:
        await producer.send_and_wait(topic, orjson.dumps(event), key=event["trace_id"].encode())
    await producer.send_and_wait(topic, b"{not json", key=b"k")
    await producer.send_and_wait(topic, orjson.dumps(crashing), key=b"k")
    await producer.send_and_wait(topic, orjson.dumps({**good[0], "schema_version": 99}), key=b"k")
    for event in good[15:] + good[:5]:  # five events delivered twice
        await producer.send_and_wait(topic, orjson.dumps(event), key=event["trace_id"].encode())

    handler = RowWriter(topic)
    settings = WorkerSettings(**stack.model_dump(), batch_max_events=10, batch_max_wait_ms=50)
    worker = StreamWorker(handler, settings, pool=pg_pool, producer=producer)
    task = asyncio.create_task(worker.run())
    try:
        ids = [e["event_id"] for e in good]
        for _ in range(200):
            count = await pg_pool.fetchval(
                "SELECT count(*) FROM worker_test_rows WHERE event_id = ANY($1::uuid[])", ids)
            dead = await pg_pool.fetch("SELECT reason, error FROM dead_letters WHERE consumer = $1 ORDER BY \"offset\"",
                                       handler.name)
            if count == 30 and len(dead) == 3:
                break
            await asyncio.sleep(0.1)
    finally:
        worker.stopping.set()
        await asyncio.wait_for(task, 10)
    assert count == 30
    assert [d["reason"] for d in dead] == ["bad_json", "processing_error", "unsupported_schema_version"]
    assert "scanner crashed" in dead[1]["error"]
    assert sum(handler.published) == 30  # duplicates inserted nothing, so published nothing

    records = await collect(stack.kafka_bootstrap, DEAD_LETTERS, dlq_since,
                            keep=lambda r: dict(r.headers).get("llmops.consumer") == handler.name.encode(),
                            until=lambda found: len(found) >= 3)
    assert sorted(dict(r.headers)["llmops.reason"].decode() for r in records) == [
        "bad_json", "processing_error", "unsupported_schema_version"]
    assert {dict(r.headers)["llmops.topic"].decode() for r in records} == {topic}

    await producer.stop()


async def test_replay_sends_dead_letters_back_once_the_cause_is_fixed(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    from llmops_shared import deadletters

    await pg_pool.execute("CREATE TABLE IF NOT EXISTS worker_test_rows (event_id uuid PRIMARY KEY)")
    topic = f"{TOPIC_PREFIX}replay.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, partitions=1, retention_ms=None),))
    crashing = {**make_event(tags=["explode"]), "tenant_id": tenant}
    producer = durable_producer(stack.kafka_bootstrap, client_id="test")
    await producer.start()
    await producer.send_and_wait(topic, orjson.dumps(crashing), key=b"k")

    handler = RowWriter(topic)
    settings = WorkerSettings(**stack.model_dump(), batch_max_events=10, batch_max_wait_ms=50)

    async def run_until(condition_sql: str) -> None:
        worker = StreamWorker(handler, settings, pool=pg_pool, producer=producer)
        task = asyncio.create_task(worker.run())
        try:
            for _ in range(200):
                if await pg_pool.fetchval(condition_sql, handler.name, crashing["event_id"]):
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"not reached: {condition_sql}")
        finally:
            worker.stopping.set()
            await asyncio.wait_for(task, 10)

    await run_until("SELECT count(*) = 1 FROM dead_letters WHERE consumer = $1 AND event_id = $2::uuid")
    report = await deadletters.replay(pg_pool, stack.kafka_bootstrap, consumer=handler.name)
    assert (report.pending, report.replayed, report.missing) == (1, 1, 0)
    assert await deadletters.pending(pg_pool, handler.name, None, 10) == []

    handler.write = _fixed_write  # type: ignore[method-assign]  # the bug is fixed; same consumer group
    await run_until("SELECT $1::text IS NOT NULL AND count(*) = 1 FROM worker_test_rows WHERE event_id = $2::uuid")
    await producer.stop()


async def _fixed_write(conn: asyncpg.Connection, items: list) -> list[str]:
    rows = await conn.fetch("INSERT INTO worker_test_rows (event_id) SELECT unnest($1::uuid[]) "
                            "ON CONFLICT DO NOTHING RETURNING event_id", [e.event_id for _, e in items])
    return [str(r["event_id"]) for r in rows]


async def test_one_poison_event_in_a_large_batch_is_isolated_by_bisection_not_one_by_one(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    await pg_pool.execute("CREATE TABLE IF NOT EXISTS worker_test_rows (event_id uuid PRIMARY KEY)")
    handler = RowWriter("unused")
    attempts: list[int] = []
    write = handler.write

    async def counting_write(conn: asyncpg.Connection, items: list[tuple[Message, Interaction]]) -> list[str]:
        attempts.append(len(items))
        return await write(conn, items)

    handler.write = counting_write  # type: ignore[method-assign]
    events = [{**make_event(), "tenant_id": tenant} for _ in range(256)]
    events[77] = {**make_event(tags=["explode"]), "tenant_id": tenant}
    messages = [Message("t", 0, n, None, orjson.dumps(e), 0) for n, e in enumerate(events)]
    worker = StreamWorker(handler, WorkerSettings(**stack.model_dump()), pool=pg_pool, producer=None,  # type: ignore[arg-type]
                          consumer=object())  # type: ignore[arg-type]
    results, poison = await worker._write(worker.decode(messages))

    assert [p.message.offset for p in poison] == [77] and poison[0].event_id == events[77]["event_id"]
    assert len(results) == 255
    assert len(attempts) <= 1 + 2 * 8  # the whole batch, then two halves per level of a 256-event bisection
    stored = await pg_pool.fetchval("SELECT count(*) FROM worker_test_rows WHERE event_id = ANY($1::uuid[])",
                                    [e["event_id"] for e in events])
    assert stored == 255
    assert await pg_pool.fetchval("SELECT reason FROM dead_letters WHERE consumer = $1", handler.name) == \
        "processing_error"
