"""The guardrails worker (a real process) stopped mid-stream, between its commit and its offsets, and started
again: what came out is counted against what was sent.

The stop falls exactly where a redelivery follows: the clean topic takes no message of more than 200
bytes, so the worker's first batch commits its transaction, then fails to publish its clean events and
the process ends, its offsets uncommitted. The topic is then made to take them, and a second process
starts, which gets that batch again.

Ground truth, from what was sent: every event has exactly its one card finding, the tenant's one alert
counts every event once, and every event reached the clean topic, redacted (Kafka may hold one twice:
at-least-once, with the same content).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings, environment
from llmops_shared.topics import TopicSpec
from tests.integration.guardrails.conftest import pipeline_settings, wait_until
from tests.integration.guardrails.guardrails_support import luhn_card
from tests.support.events import collect, make_event, partitions

pytestmark = pytest.mark.integration

EVENTS = 240
SETTINGS = ("database_url", "kafka_bootstrap", "redis_url", "group", "raw_topic", "clean_topic", "alerts_topic",
            "finding_hash_salt", "batch_max_events", "batch_max_wait_ms")


async def start_worker(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "llmops_guardrails.worker", env=env,
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=out)


async def clean_topic(bootstrap: str, name: str, *, max_message_bytes: int) -> None:
    """Create the topic, or change it, with `max_message_bytes` (retention: an hour)."""
    configs = {"max.message.bytes": str(max_message_bytes), "retention.ms": "3600000"}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if name in await admin.list_topics():
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=configs)])
        else:
            await admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1, topic_configs=configs)])
    finally:
        await admin.close()


async def committed(bootstrap: str, group: str, topic: str) -> dict[TopicPartition, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) for tp in await partitions(bootstrap, topic)}
    finally:
        await consumer.stop()


async def test_a_worker_process_stopped_mid_stream_and_started_again_loses_and_double_counts_nothing(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, tmp_path: Path) -> None:
    settings = pipeline_settings(stack, tenant[2:], batch_max_events=20, batch_max_wait_ms=50)
    await ensure_topics(stack.kafka_bootstrap, tuple(TopicSpec(t, partitions=3, retention_ms=3_600_000) for t in (
        settings.raw_topic, settings.alerts_topic)))
    await clean_topic(stack.kafka_bootstrap, settings.clean_topic, max_message_bytes=200)  # takes no clean event
    cards = [luhn_card() for _ in range(EVENTS)]
    events = [{**make_event(app_id="support-bot", input=[{"role": "user", "content": f"my card is {card}"}]),
               "tenant_id": tenant} for card in cards]
    producer = durable_producer(stack.kafka_bootstrap, client_id="guardrails-restart-test")
    await producer.start()
    try:
        for e in events:
            await producer.send(settings.raw_topic, orjson.dumps(e), key=e["trace_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()
    env = {**os.environ, **environment(settings, SETTINGS)}
    log = tmp_path / "worker.log"

    async def findings() -> int:
        return int(await pg_pool.fetchval("SELECT count(*) FROM guardrail_findings WHERE tenant_id = $1", tenant))

    async def scanned(n: int) -> bool:
        return await findings() >= n

    first = await start_worker(env, log)
    try:
        code = await asyncio.wait_for(first.wait(), 90)
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    stored_at_stop = await findings()
    assert code != 0 and "MessageSizeTooLarge" in log.read_text(), log.read_text()[-2000:]
    assert 0 < stored_at_stop < EVENTS  # stopped mid-stream, its first batch written ...
    assert set((await committed(stack.kafka_bootstrap, settings.group, settings.raw_topic)).values()) == {None}
    # ... and its offsets not committed: the next process gets that batch again.
    await clean_topic(stack.kafka_bootstrap, settings.clean_topic, max_message_bytes=1_000_000)

    second = await start_worker(env, log)
    try:
        await wait_until(lambda: scanned(EVENTS), timeout_s=90,
                         what=f"every event scanned after the restart\n{log}")
        clean = await collect(stack.kafka_bootstrap, settings.clean_topic,
                              dict.fromkeys(await partitions(stack.kafka_bootstrap, settings.clean_topic), 0),
                              until=lambda found: len({orjson.loads(r.value)["event_id"] for r in found}) >= EVENTS)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 30)
    assert second.returncode == 0, log.read_text()[-2000:]

    rows = await pg_pool.fetch("SELECT event_id::text AS e, entity_type FROM guardrail_findings WHERE tenant_id = $1",
                               tenant)
    assert sorted(r["e"] for r in rows) == sorted(e["event_id"] for e in events)  # one finding per event
    assert {r["entity_type"] for r in rows} == {"CREDIT_CARD"}
    alert = await pg_pool.fetchrow("SELECT count FROM guardrail_alerts WHERE tenant_id = $1 "
                                   "AND rule_id = 'payment-data-alert'", tenant)
    assert alert["count"] == EVENTS
    by_id: dict[str, set[bytes]] = {}
    for record in clean:
        by_id.setdefault(orjson.loads(record.value)["event_id"], set()).add(record.value)
    assert set(by_id) == {e["event_id"] for e in events}
    assert all(len(copies) == 1 for copies in by_id.values())  # a redelivered event is redacted the same
    published = b"\n".join(r.value for r in clean)
    assert not any(card.encode() in published for card in cards)  # redacted, before and after the restart
