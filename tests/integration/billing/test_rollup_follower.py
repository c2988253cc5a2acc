"""The per-event rollups off the batch transaction (billing/0017): the worker's batch statement leaves
`usage_daily_users` and `usage_trace_costs` one pending row per batch, and the follower adds it exactly once.

Every comparison with the ledger here applies what is pending explicitly (`run_once`, `flush`): nothing
waits on the follower's interval, except the worker-process test, which polls for the rollups its own
follower keeps."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from llmops_billing.ledger import LedgerRow
from llmops_billing.rollup_follower import RollupFollower, flush
from llmops_billing.store import pending_rollups
from llmops_billing.store.ledger import write_batch
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from tests.integration.billing.conftest import wait_for
from tests.integration.billing.test_ledger_write import rows_for
from tests.support.billing_rollups import SUMS, rollups_equal_ledger
from tests.support.events import make_event

pytestmark = pytest.mark.integration

FOLLOWED = ("usage_daily_users", "usage_trace_costs")


def events(n: int, *, offset: int = 0) -> list[dict[str, Any]]:
    """`n` events over two days, three users, two traces a day; one of an unknown model (unpriced)."""
    return [make_event(occurred_at=f"2026-11-{23 + (i % 2)}T10:{i % 60:02d}:00Z", user_id=f"u-{i % 3}",
                       trace_id=f"trace-{i % 4}", app_id="app", model="mystery-llm" if i == 5 else "gpt-4o-mini",
                       usage={"input_tokens": 100 + offset + i, "output_tokens": 10 + i})
            for i in range(n)]


async def write(pool: asyncpg.Pool, rows: list[LedgerRow], *, pending: bool) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return len((await write_batch(conn, rows=rows, pending_rollups=pending)).inserted)


async def followed(pool: asyncpg.Pool, tenant: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in FOLLOWED:
        key = "bucket, user_id, app_id, environment, provider, model_key" if table == "usage_daily_users" \
            else "bucket, trace_id"
        rows = await pool.fetch(f"SELECT {key}, {', '.join(SUMS)} FROM {table} WHERE tenant_id = $1 "  # noqa: S608
                                f"ORDER BY {key}", tenant)
        out[table] = [tuple(r) for r in rows]
    return out


def without_users(rollups: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {table: sorted((r[:1] + r[2:] if table == "usage_daily_users" else r) for r in rows)
            for table, rows in rollups.items()}


async def pending_of(pool: asyncpg.Pool, tenant: str) -> int:
    """Pending rows holding rows of `tenant` (other tests' rows may be pending too)."""
    return int(await pool.fetchval(
        "SELECT count(*) FROM billing_rollup_pending p WHERE EXISTS (SELECT 1 FROM unnest(p.items) i "
        "WHERE i.tenant_id = $1)", tenant))


async def test_a_deferred_batch_leaves_one_pending_row_that_the_follower_adds_as_the_statement_would(
        pg_pool: asyncpg.Pool) -> None:
    inline, deferred = f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}"
    batch = events(12)
    assert await write(pg_pool, rows_for(inline, *batch), pending=False) == 12
    assert await write(pg_pool, rows_for(deferred, *batch), pending=True) == 12

    # Written with the batch: the ledger and every other rollup. Left pending: the two per-event rollups.
    assert await followed(pg_pool, deferred) == {table: [] for table in FOLLOWED}
    assert await pending_of(pg_pool, deferred) == 1
    for table in ("usage_hourly", "usage_daily", "usage_daily_tags", "usage_hourly_totals", "usage_monthly_users",
                  "usage_hourly_models"):
        assert await pg_pool.fetchval(f"SELECT sum(event_count) FROM {table} WHERE tenant_id = $1",  # noqa: S608
                                      deferred) == 12, table

    applied = await RollupFollower(pg_pool, interval_s=1.0).run_once()
    assert applied >= 1 and await pending_of(pg_pool, deferred) == 0
    # the same rows as written inline (users are pseudonyms per tenant: compared without them)
    assert without_users(await followed(pg_pool, deferred)) == without_users(await followed(pg_pool, inline))
    await rollups_equal_ledger(pg_pool, deferred, follow=False)

    # Applying again (nothing pending) and a redelivered batch (nothing inserted, nothing pending) add nothing.
    before = await followed(pg_pool, deferred)
    assert await write(pg_pool, rows_for(deferred, *batch), pending=True) == 0
    assert await pending_of(pg_pool, deferred) == 0
    await flush(pg_pool)
    assert await followed(pg_pool, deferred) == before


async def test_batches_pending_together_are_added_in_one_apply_each_exactly_once(pg_pool: asyncpg.Pool,
                                                                                  tenant: str) -> None:
    for b in range(3):  # the same keys in every batch: merged by the apply
        await write(pg_pool, rows_for(tenant, *events(8, offset=100 * b)), pending=True)
    assert await pending_of(pg_pool, tenant) == 3
    await flush(pg_pool)
    assert await pending_of(pg_pool, tenant) == 0
    users = await pg_pool.fetchval("SELECT sum(event_count) FROM usage_daily_users WHERE tenant_id = $1", tenant)
    assert users == 24
    await rollups_equal_ledger(pg_pool, tenant, follow=False)


async def test_an_apply_that_dies_before_its_commit_adds_nothing_and_leaves_the_row_pending(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    await write(pg_pool, rows_for(tenant, *events(6)), pending=True)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with pg_pool.acquire() as conn, conn.transaction():  # the process dies after the apply
            assert await pending_rollups.apply(conn, limit=1_000) >= 1
            raise Crash
    assert await pending_of(pg_pool, tenant) == 1
    assert await followed(pg_pool, tenant) == {table: [] for table in FOLLOWED}
    await rollups_equal_ledger(pg_pool, tenant)  # flushes: added once


async def test_two_followers_never_add_a_row_twice_and_a_flush_waits_for_the_one_in_flight(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    await flush(pg_pool)  # nothing of other tests pending: the row below is the oldest
    await write(pg_pool, rows_for(tenant, *events(6)), pending=True)
    async with pg_pool.acquire() as holder:
        held = holder.transaction()
        await held.start()
        assert await pending_rollups.apply(holder, limit=1_000) == 1  # applied, not committed yet
        # Another follower skips the row held ...
        assert await RollupFollower(pg_pool, interval_s=1.0).run_once() == 0
        assert await pending_of(pg_pool, tenant) == 1
        # ... and a flush waits for it, then finds it gone.
        flushing = asyncio.create_task(flush(pg_pool))
        await asyncio.sleep(0.2)
        assert not flushing.done()
        await held.commit()
    assert await flushing == 0
    assert await pending_of(pg_pool, tenant) == 0
    await rollups_equal_ledger(pg_pool, tenant, follow=False)


async def test_a_follower_starts_a_round_when_enough_batches_committed_or_a_backlog_ended(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    follower = RollupFollower(pg_pool, interval_s=3600.0, batches=3)  # the interval never comes in this test
    stopping = asyncio.Event()
    task = asyncio.create_task(follower.run(stopping))
    try:
        await wait_for(lambda: _true(follower.rounds == 1))  # the first round (at start) is done: now it waits
        for b in range(2):
            await write(pg_pool, rows_for(tenant, *events(4, offset=10 * b)), pending=True)
            follower.committed(last_in_backlog=False)
        assert not follower.nudged  # two full batches of three: it waits
        await write(pg_pool, rows_for(tenant, *events(2, offset=50)), pending=True)
        follower.committed(last_in_backlog=True)  # a short batch: the stream is caught up
        await wait_for(lambda: _true(follower.rounds == 2))
        assert await pending_of(pg_pool, tenant) == 0
        await rollups_equal_ledger(pg_pool, tenant, follow=False)

        await write(pg_pool, rows_for(tenant, *events(4, offset=70)), pending=True)
        for _ in range(3):  # three batches, none short: a round too
            follower.committed(last_in_backlog=False)
        await wait_for(lambda: _true(follower.rounds == 3))
        await rollups_equal_ledger(pg_pool, tenant, follow=False)
    finally:
        stopping.set()
        follower.committed(last_in_backlog=True)
        await asyncio.wait_for(task, 10)


async def _true(value: bool) -> bool:
    return value


async def test_the_worker_process_follows_its_batches_into_the_rollups(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, tmp_path: Path) -> None:
    topic = f"{TOPIC_PREFIX}billing.follow.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, partitions=1, retention_ms=3_600_000),
                                                TopicSpec(f"{topic}.usage", partitions=1, retention_ms=3_600_000)))
    env = {**os.environ, "LLMOPS_DATABASE_URL": stack.database_url, "LLMOPS_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
           "LLMOPS_BILLING_TOPIC": topic, "LLMOPS_BILLING_USAGE_TOPIC": f"{topic}.usage",
           "LLMOPS_BILLING_GROUP": f"billing-follow-{topic[-8:]}", "LLMOPS_BILLING_BATCH_MAX_EVENTS": "10",
           "LLMOPS_BILLING_BATCH_MAX_WAIT_MS": "50", "LLMOPS_BILLING_ROLLUP_FOLLOW_INTERVAL_S": "0.1",
           "LLMOPS_LOG_LEVEL": "WARNING"}
    log = tmp_path / "worker.log"
    producer = durable_producer(stack.kafka_bootstrap, client_id="billing-follow-test")
    await producer.start()
    with log.open("ab") as out:
        worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "llmops_billing.worker", env=env,
                                                      stdout=out, stderr=out)
    try:
        for event in events(30):
            await producer.send_and_wait(topic, orjson.dumps({**event, "tenant_id": tenant}), key=b"k")

        async def followed_all() -> bool:  # the worker's own follower, no flush from here
            n = await pg_pool.fetchval("SELECT sum(event_count) FROM usage_trace_costs WHERE tenant_id = $1", tenant)
            u = await pg_pool.fetchval("SELECT sum(event_count) FROM usage_daily_users WHERE tenant_id = $1", tenant)
            return n == u == 30

        await wait_for(followed_all, timeout_s=60)
        assert await pending_of(pg_pool, tenant) == 0
        await rollups_equal_ledger(pg_pool, tenant, follow=False)
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 20)
        await producer.stop()
    assert worker.returncode == 0, log.read_text()[-3000:]


async def test_the_worker_nudges_its_follower_after_the_last_full_batch_of_a_backlog(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, tmp_path: Path) -> None:
    """Thirty events already in the topic are three full batches of ten: none is short, and three is
    fewer than the follower's ten. The last one's poll reached the end of the partition, so the follower
    starts at once (before: only at its interval, an hour here, so the rollups never came)."""
    topic = f"{TOPIC_PREFIX}billing.burst.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, partitions=1, retention_ms=3_600_000),
                                                TopicSpec(f"{topic}.usage", partitions=1, retention_ms=3_600_000)))
    producer = durable_producer(stack.kafka_bootstrap, client_id="billing-burst-test")
    await producer.start()
    try:
        for i in range(30):  # every event priced and billed: each batch has ten usage messages
            event = make_event(occurred_at=f"2026-11-23T10:{i:02d}:00Z", user_id=f"u-{i % 3}",
                               trace_id=f"trace-{i % 4}", app_id="app", model="gpt-4o-mini",
                               usage={"input_tokens": 100 + i, "output_tokens": 10 + i})
            await producer.send(topic, orjson.dumps({**event, "tenant_id": tenant}), key=b"k")
        await producer.flush()
    finally:
        await producer.stop()
    env = {**os.environ, "LLMOPS_DATABASE_URL": stack.database_url, "LLMOPS_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
           "LLMOPS_BILLING_TOPIC": topic, "LLMOPS_BILLING_USAGE_TOPIC": f"{topic}.usage",
           "LLMOPS_BILLING_GROUP": f"billing-burst-{topic[-8:]}", "LLMOPS_BILLING_BATCH_MAX_EVENTS": "10",
           "LLMOPS_BILLING_BATCH_MAX_WAIT_MS": "50", "LLMOPS_BILLING_ROLLUP_FOLLOW_INTERVAL_S": "3600",
           "LLMOPS_LOG_LEVEL": "WARNING"}
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "llmops_billing.worker", env=env,
                                                      stdout=out, stderr=out)
    try:
        async def ledger_has_all() -> bool:
            return await pg_pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant) == 30

        async def followed_all() -> bool:  # the worker's own follower, no flush from here
            n = await pg_pool.fetchval("SELECT sum(event_count) FROM usage_trace_costs WHERE tenant_id = $1", tenant)
            u = await pg_pool.fetchval("SELECT sum(event_count) FROM usage_daily_users WHERE tenant_id = $1", tenant)
            return n == u == 30

        await wait_for(ledger_has_all, timeout_s=60)
        await wait_for(followed_all, timeout_s=20)
        assert await pending_of(pg_pool, tenant) == 0
        await rollups_equal_ledger(pg_pool, tenant, follow=False)
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 20)
    assert worker.returncode == 0, log.read_text()[-3000:]
