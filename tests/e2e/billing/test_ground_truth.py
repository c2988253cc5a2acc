"""Ground truth: thousands of events with known tokens and prices through the billing worker, which is
killed (SIGKILL) mid-stream and restarted, with about a tenth of the events sent twice. Afterwards the
ledger, the hourly and daily rollups and the monthly statements equal the ground truth to the last
decimal place.

The worker runs as its own process (`python -m llmops_billing.worker`), as in production, on a topic
and consumer group of this test's own. Expected costs are computed here with plain Decimal arithmetic
from the price file's own numbers, not with the code under test.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from llmops_billing import statements
from llmops_billing.rollup_follower import flush
from llmops_devtools.testing import litellm_price_table
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from tests.support.billing_rollups import rollups_equal_ledger
from tests.support.events import end_offsets, make_event

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EVENTS = 3_000
DUPLICATE_SHARE = 0.1
MODELS = [("gpt-4o-mini", "openai"), ("gpt-4o", "openai"), ("o3-mini", "openai"),
          ("claude-sonnet-4-20250514", "anthropic"), ("deepseek-chat", "deepseek")]
START = datetime(2026, 10, 30, 18, 0, tzinfo=UTC)  # spans the October/November boundary


def expected_cost(prices: dict[str, Decimal], usage: dict[str, int]) -> Decimal:
    cache_read, cache_write = usage["cache_read_input_tokens"], usage["cache_write_input_tokens"]
    reasoning = usage["reasoning_tokens"]
    return ((usage["input_tokens"] - cache_read - cache_write) * prices["input"]
            + cache_read * prices["cache_read"] + cache_write * prices["cache_write"]
            + (usage["output_tokens"] - reasoning) * prices["output"] + reasoning * prices["reasoning"]
            + prices["request"])


def make_events(tenant: str, rng: random.Random) -> list[dict[str, Any]]:
    events = []
    for i in range(EVENTS):
        model, provider = MODELS[i % len(MODELS)]
        input_tokens = rng.randint(1, 150_000)
        cache_read = rng.randint(0, input_tokens // 2) if i % 3 == 0 else 0
        cache_write = rng.randint(0, (input_tokens - cache_read) // 3) if model.startswith("claude") else 0
        output_tokens = rng.randint(0, 8_000)
        reasoning = rng.randint(0, output_tokens) if model == "o3-mini" else 0
        event = make_event(
            occurred_at=(START + timedelta(seconds=61 * i)).isoformat(), model=model, provider=provider,
            app_id=f"app-{i % 4}", user_id=f"user-{i % 9}", tags=[f"team-{i % 3}"],
            prompt={"name": "assist", "version": str(i % 2)},
            usage={"input_tokens": input_tokens, "cache_read_input_tokens": cache_read,
                   "cache_write_input_tokens": cache_write, "output_tokens": output_tokens,
                   "reasoning_tokens": reasoning})
        if i % 250 == 7:  # an unknown model: recorded unpriced, never a silent zero
            event["model"], event["provider"] = "house-model-x", "acme"
        if i % 500 == 11:  # an agent step: not billed at all
            event["span_kind"] = "agent"
        events.append({**event, "tenant_id": tenant})
    return events


class Ground:
    """What the ledger must hold, computed from the events alone."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        prices = litellm_price_table(model for model, _provider in MODELS)
        self.billed = [e for e in events if e["span_kind"] == "llm"]
        self.priced = [e for e in self.billed if e["model"] in prices]
        self.cost: dict[str, Decimal] = {e["event_id"]: expected_cost(prices[e["model"]], e["usage"])
                                         for e in self.priced}
        self.total = sum(self.cost.values(), Decimal(0))
        self.input_tokens = sum(e["usage"]["input_tokens"] for e in self.billed)
        self.by_day_model: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.by_hour: dict[datetime, Decimal] = defaultdict(Decimal)
        self.by_month: dict[str, Decimal] = defaultdict(Decimal)
        for e in self.priced:
            at = datetime.fromisoformat(e["occurred_at"]).astimezone(UTC)
            self.by_day_model[(at.date().isoformat(), e["model"])] += self.cost[e["event_id"]]
            self.by_hour[at.replace(minute=0, second=0, microsecond=0)] += self.cost[e["event_id"]]
            self.by_month[at.strftime("%Y-%m")] += self.cost[e["event_id"]]


async def all_committed(bootstrap: str, topic: str, group: str) -> bool:
    """Whether `group` has committed every partition of `topic` up to its end."""
    ends = await end_offsets(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return all([await consumer.committed(tp) == end for tp, end in ends.items()])
    finally:
        await consumer.stop()


def start_worker(stack: CommonSettings, topic: str, group: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LLMOPS_DATABASE_URL": stack.database_url, "LLMOPS_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
           "LLMOPS_BILLING_TOPIC": topic, "LLMOPS_BILLING_GROUP": group, "LLMOPS_BILLING_BATCH_MAX_EVENTS": "100",
           "LLMOPS_BILLING_BATCH_MAX_WAIT_MS": "50", "LLMOPS_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "llmops_billing.worker"], env=env)


async def count(pool: asyncpg.Pool, tenant: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant))


async def test_ledger_rollups_and_statements_equal_the_ground_truth_after_sigkill_and_duplicates(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    rng = random.Random(20261124)
    events = make_events(tenant, rng)
    ground = Ground(events)
    topic, group = f"{TOPIC_PREFIX}billing.gt.{uuid.uuid4().hex[:8]}", f"billing-gt-{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, partitions=3, retention_ms=3_600_000),))
    producer = durable_producer(stack.kafka_bootstrap, client_id="ground-truth")
    await producer.start()

    async def send(batch: list[dict[str, Any] | bytes]) -> None:
        futures = [await producer.send(topic, item if isinstance(item, bytes) else orjson.dumps(item),
                                       key=(b"bad" if isinstance(item, bytes) else item["trace_id"].encode()))
                   for item in batch]
        await asyncio.gather(*futures)

    duplicates = rng.sample(events, int(EVENTS * DUPLICATE_SHARE))
    bad = [b"{truncated", b"[]", b"\xff\xfe", orjson.dumps({"event_id": "nope"}), b""]
    worker = start_worker(stack, topic, group)
    try:
        first, second = events[: EVENTS // 2], events[EVENTS // 2:]
        await send([*first[:700], bad[0], bad[1], *first[700:]])
        # SIGKILL once some rows are committed and before all of them are.
        deadline = asyncio.get_running_loop().time() + 40
        while (seen := await count(pg_pool, tenant)) < 150:
            assert worker.poll() is None, "the worker died on its own"
            assert asyncio.get_running_loop().time() < deadline, "the worker wrote nothing"
            await asyncio.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        at_kill = await count(pg_pool, tenant)
        assert 0 < seen <= at_kill < len(ground.billed), "the kill must land mid-stream"
        print(f"killed with {at_kill} of {len(ground.billed)} ledger rows written")

        await send([*second[:800], *duplicates[: len(duplicates) // 2], bad[2], *second[800:], bad[3], bad[4]])
        worker = start_worker(stack, topic, group)
        await send(duplicates[len(duplicates) // 2:])
        deadline = asyncio.get_running_loop().time() + 60
        while await count(pg_pool, tenant) < len(ground.billed):
            assert worker.poll() is None, "the restarted worker died"
            assert asyncio.get_running_loop().time() < deadline, "the ledger did not catch up"
            await asyncio.sleep(0.1)
        # Let any redelivered batch land (it must change nothing): wait until the worker has committed every
        # offset of the topic, so nothing is left to deliver again.
        deadline = asyncio.get_running_loop().time() + 60
        while not await all_committed(stack.kafka_bootstrap, topic, group):
            assert worker.poll() is None, "the restarted worker died"
            assert asyncio.get_running_loop().time() < deadline, "the worker did not commit every offset"
            await asyncio.sleep(0.1)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)
        await producer.stop()

    # The ledger: one row per billed event, each priced exactly as the ground truth says.
    rows = await pg_pool.fetch("SELECT event_id::text AS id, cost_total, unpriced, input_tokens FROM usage_ledger "
                               "WHERE tenant_id = $1", tenant)
    assert len(rows) == len(ground.billed) == len({r["id"] for r in rows})
    assert {r["id"]: r["cost_total"] for r in rows if not r["unpriced"]} == ground.cost
    assert sum(r["unpriced"] for r in rows) == len(ground.billed) - len(ground.priced)
    assert sum((r["cost_total"] or Decimal(0) for r in rows), Decimal(0)) == ground.total
    assert sum(r["input_tokens"] for r in rows) == ground.input_tokens

    # The rollups: totals and every bucket.
    for table in ("usage_hourly", "usage_daily"):
        totals = await pg_pool.fetchrow(
            f"SELECT sum(event_count) AS n, sum(cost_total) AS c, sum(input_tokens) AS i FROM {table} "  # noqa: S608
            "WHERE tenant_id = $1", tenant)
        assert (totals["n"], totals["c"], totals["i"]) == (len(ground.billed), ground.total, ground.input_tokens)
    daily = await pg_pool.fetch("SELECT bucket, model_key, sum(cost_total) AS c FROM usage_daily WHERE tenant_id = $1 "
                                "AND unpriced_count = 0 GROUP BY 1, 2", tenant)
    assert {(r["bucket"].isoformat(), r["model_key"]): r["c"] for r in daily} == dict(ground.by_day_model)
    hourly = await pg_pool.fetch("SELECT bucket, sum(cost_total) AS c FROM usage_hourly WHERE tenant_id = $1 "
                                 "GROUP BY 1", tenant)
    assert {r["bucket"]: r["c"] for r in hourly if r["c"]} == dict(ground.by_hour)
    # The per-event rollups follow the ledger (the worker's follower, about every second): apply what is
    # still pending (a batch the killed process committed, or the last ones), then they add up too.
    await flush(pg_pool)
    for table in ("usage_daily_users", "usage_trace_costs"):
        totals = await pg_pool.fetchrow(
            f"SELECT sum(event_count) AS n, sum(cost_total) AS c, sum(input_tokens) AS i FROM {table} "  # noqa: S608
            "WHERE tenant_id = $1", tenant)
        assert (totals["n"], totals["c"], totals["i"]) == (len(ground.billed), ground.total, ground.input_tokens), table
    await rollups_equal_ledger(pg_pool, tenant, follow=False)  # every bucket of every rollup
    # By tag: an event counts under each of its tags ('' when none), exactly as the ledger's tags say.
    tags = await pg_pool.fetch("SELECT tag, sum(event_count) AS n, sum(cost_total) AS c FROM usage_daily_tags "
                               "WHERE tenant_id = $1 GROUP BY 1", tenant)
    ledger_tags = await pg_pool.fetch(
        "SELECT coalesce(t.tag, '') AS tag, count(*) AS n, coalesce(sum(l.cost_total), 0) AS c FROM usage_ledger l "
        "LEFT JOIN LATERAL unnest(l.tags) AS t(tag) ON true WHERE l.tenant_id = $1 GROUP BY 1", tenant)
    assert {r["tag"]: (r["n"], r["c"]) for r in tags} == {r["tag"]: (r["n"], r["c"]) for r in ledger_tags}

    # The statements: line items times prices add up to the ground truth of each month.
    async with pg_pool.acquire() as conn:
        for month, expected in ground.by_month.items():
            body = await statements.statement(conn, tenant_id=tenant, month=statements.parse_month(month))
            assert Decimal(body["total"]) == expected, month
            lines = (Decimal(i["quantity"]) * Decimal(i["unit_price"]) for i in body["items"])
            assert sum(lines, Decimal(0)) == expected
    assert len(ground.by_month) == 2

    # The bad messages: each dead-lettered once, kill or no kill.
    dead = await pg_pool.fetch("SELECT reason FROM dead_letters WHERE consumer = $1", group)
    assert len(dead) == len(bad)
