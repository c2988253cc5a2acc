"""Postgres stopped under a running billing worker, on an instance of this test's own (the shared stack's
database is never touched): the batch in progress is retried, no offset is committed while the database is
down, and after it is back every event is in the ledger exactly once, rollups included."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import TopicPartition

from llmops_billing.settings import BillingSettings
from llmops_billing.worker import UsageLedgerHandler
from llmops_devtools.stack.postgres import PostgresServer
from llmops_devtools.testing import free_port
from llmops_shared import db, migrations
from llmops_shared.clock import fixed
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from llmops_shared.worker import StreamWorker
from tests.integration.billing.conftest import WORKER_NOW, wait_for
from tests.support.events import committed, make_event

pytestmark = pytest.mark.integration

BEFORE, DURING = 20, 30


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A Postgres server of this test's own (run as the `postgres` user when we are root, so its folder is
    outside pytest's private temporary directory)."""
    home = Path(tempfile.mkdtemp(prefix="llmops-pg-outage-"))
    home.chmod(0o755)
    server = PostgresServer(home / "postgres", port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(home, ignore_errors=True)



def events(tenant: str, n: int) -> list[dict[str, Any]]:
    return [{**make_event(occurred_at="2026-11-24T10:15:00Z", usage={"input_tokens": 1000 + i, "output_tokens": i}),
             "tenant_id": tenant} for i in range(n)]


async def test_a_postgres_outage_mid_stream_loses_and_duplicates_nothing(
        stack: CommonSettings, own_postgres: PostgresServer, tenant: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llmops_shared.worker")
    url = f"postgresql://postgres@127.0.0.1:{own_postgres.port}/llmops_outage"
    await db.ensure_database(url)
    await migrations.migrate(url)
    run = uuid.uuid4().hex[:8]
    settings = BillingSettings(**{**stack.model_dump(), "database_url": url}, topic=f"{TOPIC_PREFIX}outage.{run}",
                               alerts_topic=f"{TOPIC_PREFIX}outage.alerts.{run}", group=f"test-outage-{run}",
                               batch_max_events=10, batch_max_wait_ms=20, db_retry_max_s=0.5, price_refresh_s=3600)
    partition = TopicPartition(settings.topic, 0)
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(settings.topic, partitions=1, retention_ms=None),))
    sent = events(tenant, BEFORE + DURING)

    pool = await db.create_pool(url, max_size=4)
    producer = durable_producer(stack.kafka_bootstrap, client_id="test-outage")
    await producer.start()
    worker: StreamWorker[Any, Any] = StreamWorker(UsageLedgerHandler(settings, clock=fixed(WORKER_NOW)), settings,
                                                  pool=pool, producer=producer)
    task = asyncio.create_task(worker.run())

    async def ledger_rows() -> int:
        return int(await pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant))

    try:
        for e in sent[:BEFORE]:
            await producer.send_and_wait(settings.topic, orjson.dumps(e))

        async def first_part_committed() -> bool:
            return (await committed(stack.kafka_bootstrap, settings.group, partition) or 0) == BEFORE

        await wait_for(first_part_committed, timeout_s=30)
        assert await ledger_rows() == BEFORE

        await asyncio.to_thread(own_postgres.stop, "immediate")
        for e in sent[BEFORE:]:
            await producer.send_and_wait(settings.topic, orjson.dumps(e))
        # The worker has the new events and cannot write them: it keeps retrying, and commits nothing.
        def write_retries() -> int:
            return sum(1 for r in caplog.records if r.getMessage() == "database unavailable; retrying"
                       and getattr(r, "worker", None) == settings.group)

        async def retried_several_times() -> bool:
            return write_retries() >= 3

        await wait_for(retried_several_times, timeout_s=30)
        assert not task.done(), "the worker stopped during the outage"
        assert (await committed(stack.kafka_bootstrap, settings.group, partition) or 0) == BEFORE

        await asyncio.to_thread(own_postgres.start)

        async def all_written() -> bool:
            try:
                return await ledger_rows() == BEFORE + DURING
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):  # the pool reconnects
                return False

        await wait_for(all_written, timeout_s=60)

        async def all_committed() -> bool:
            return (await committed(stack.kafka_bootstrap, settings.group, partition) or 0) == BEFORE + DURING

        await wait_for(all_committed, timeout_s=30)
    finally:
        worker.stopping.set()
        await asyncio.wait_for(task, 30)
        await producer.stop()

    rows = await pool.fetch("SELECT event_id::text, input_tokens FROM usage_ledger WHERE tenant_id = $1", tenant)
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in sent)
    tokens = await pool.fetchval("SELECT sum(input_tokens) FROM usage_hourly WHERE tenant_id = $1", tenant)
    assert Decimal(tokens) == sum(e["usage"]["input_tokens"] for e in sent)  # rollups counted each event once
    await pool.close()
