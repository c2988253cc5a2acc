"""The `llmops` command itself (its installed entry point, in a process of its own) against the session's
database, Kafka and Redis: `dlq list`, `dlq replay`, `keys revoke`, `keys list`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from llmops_ingest.api import create_app
from llmops_ingest.settings import IngestSettings
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from llmops_shared.worker import StreamWorker, WorkerSettings
from tests.integration.shared.test_worker import RowWriter
from tests.support.events import collect, end_offsets, make_event
from tests.support.servers import serve

pytestmark = pytest.mark.integration

LLMOPS = Path(sys.executable).with_name("llmops")


async def llmops(*args: str) -> subprocess.CompletedProcess[str]:
    """`llmops ARGS` with this session's environment (its database, its topic prefix)."""
    return await asyncio.to_thread(subprocess.run, [str(LLMOPS), *args], env=dict(os.environ), capture_output=True,
                                   text=True, timeout=120, check=False)


async def test_dlq_list_and_replay_through_the_command(stack: CommonSettings, pg_pool: asyncpg.Pool,
                                                       tenant: str) -> None:
    await pg_pool.execute("CREATE TABLE IF NOT EXISTS worker_test_rows (event_id uuid PRIMARY KEY)")
    topic = f"{TOPIC_PREFIX}cli-dlq.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, partitions=1, retention_ms=3_600_000),))
    crashing = orjson.dumps({**make_event(tags=["explode"]), "tenant_id": tenant})
    producer = durable_producer(stack.kafka_bootstrap, client_id="test-cli")
    await producer.start()
    handler = RowWriter(topic)
    worker = StreamWorker(handler, WorkerSettings(**stack.model_dump(), batch_max_events=10, batch_max_wait_ms=50),
                          pool=pg_pool, producer=producer)
    try:
        await producer.send_and_wait(topic, crashing, key=b"crash-key")
        await producer.send_and_wait(topic, b"{not json", key=b"junk-key")
        task = asyncio.create_task(worker.run())
        try:
            for _ in range(300):
                if await pg_pool.fetchval("SELECT count(*) FROM dead_letters WHERE consumer = $1", handler.name) == 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            worker.stopping.set()
            await asyncio.wait_for(task, 10)
    finally:
        await producer.stop()

    listed = await llmops("dlq", "list", "--consumer", handler.name)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[-1] == "2 pending dead letter(s)"
    as_json = await llmops("dlq", "list", "--consumer", handler.name, "--json")
    assert sorted(r["reason"] for r in json.loads(as_json.stdout)) == ["bad_json", "processing_error"]
    assert all(r["topic"] == topic and r["partition"] == 0 for r in json.loads(as_json.stdout))

    since = await end_offsets(stack.kafka_bootstrap, topic)
    replayed = await llmops("dlq", "replay", "--consumer", handler.name, "--reason", "processing_error")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.strip() == "replayed 1 of 1; 0 no longer on the dead-letter topic"
    [back] = await collect(stack.kafka_bootstrap, topic, since, until=lambda found: len(found) >= 1)
    assert (back.key, back.value) == (b"crash-key", crashing)  # the original message, to its own topic

    after = await llmops("dlq", "list", "--consumer", handler.name)
    assert after.stdout.splitlines()[-1] == "1 pending dead letter(s)" and "bad_json" in after.stdout
    again = await llmops("dlq", "replay", "--consumer", handler.name, "--reason", "processing_error")
    assert again.stdout.strip() == "replayed 0 of 0; 0 no longer on the dead-letter topic"


async def test_keys_revoke_through_the_command_takes_effect_at_once(stack: CommonSettings, tenant: str,
                                                                    make_key) -> None:  # type: ignore[no-untyped-def]
    key = await make_key(tenant, ["ingest:write"])
    key_id = key.split("_")[1]
    with serve(create_app(IngestSettings(**stack.model_dump()))) as url:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            async def send() -> int:
                return (await client.post("/v1/interactions", json={"interactions": [make_event()]})).status_code

            assert await send() == 202  # the key is now in the API's Redis cache
            revoked = await llmops("keys", "revoke", key_id)
            assert (revoked.returncode, revoked.stdout.strip()) == (0, f"revoked {key_id}"), revoked.stderr
            assert await send() == 401  # at once: the command dropped the cached look-up
    twice = await llmops("keys", "revoke", key_id)
    assert (twice.returncode, twice.stdout.strip()) == (1, f"no active key {key_id}")
    listed = await llmops("keys", "list", "--tenant", tenant, "--json")
    [row] = json.loads(listed.stdout)
    assert (row["key_id"], row["tenant_id"], row["revoked_at"] is not None) == (key_id, tenant, True)
