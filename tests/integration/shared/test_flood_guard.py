"""The dead-letter flood guard, end to end: a worker *process* fed nothing but bad messages stops with exit
code 3, and the offsets of the batch that tripped it stay uncommitted, so fixing the producer (or the
worker) and restarting loses nothing."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from llmops_billing.settings import BillingSettings
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings, environment
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from tests.support.events import committed

pytestmark = pytest.mark.integration

BAD = 12



async def test_a_flood_of_bad_messages_stops_the_worker_process_with_exit_3_and_commits_nothing(
        stack: CommonSettings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    settings = BillingSettings(**stack.model_dump(), topic=f"{TOPIC_PREFIX}flood.{run}",
                               alerts_topic=f"{TOPIC_PREFIX}flood.alerts.{run}",
                               group=f"test-flood-{run}", dlq_max_consecutive=5, batch_max_events=100,
                               batch_max_wait_ms=2000)
    partition = TopicPartition(settings.topic, 0)
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(settings.topic, partitions=1, retention_ms=None),))
    producer = durable_producer(stack.kafka_bootstrap, client_id="test-flood")
    await producer.start()
    try:  # all sent before the worker starts: its first batch holds every one of them
        for n in range(BAD):
            await producer.send_and_wait(settings.topic, b"{not json %d" % n)
    finally:
        await producer.stop()

    names = ("database_url", "kafka_bootstrap", "redis_url", "topic", "alerts_topic", "group", "dlq_max_consecutive",
             "batch_max_events", "batch_max_wait_ms")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "llmops_billing.worker", env={**os.environ, **environment(settings, names)},
            stdout=asyncio.subprocess.DEVNULL, stderr=out)
        try:
            code = await asyncio.wait_for(worker.wait(), 90)
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    assert code == 3, log.read_text()[-3000:]
    assert "dead-letter flood" in log.read_text()
    assert await committed(stack.kafka_bootstrap, settings.group, partition) in (None, 0)
