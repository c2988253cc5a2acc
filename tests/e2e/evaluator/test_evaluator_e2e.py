"""End to end: an app's LLM calls through the SDK and the ingest API, judged by the evaluator worker.

app (openai client + llmops_sdk) --HTTP--> ingest API --> llm.interactions.raw --> evaluator worker
    --> judge (the local OpenAI-compatible test server) --> Postgres scores for the sampled share
    --> the judge's own usage events back on llm.interactions.raw, as the tenant's, for billing.

The billing worker (`llmops_billing.worker`) runs alongside on the raw topic and must put every judge
usage event in `usage_ledger`, priced, under the tenant: one distinct event id per judgment.

The worker reads the raw topic here (`LLMOPS_EVALUATOR_SOURCE_TOPIC`), as it does where guardrails do not run, and
its consumer group starts at the topic's current end, so the test judges only its own traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import openai
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

import llmops_sdk
from llmops_billing.settings import BillingSettings
from llmops_billing.worker import UsageLedgerHandler
from llmops_devtools.fake_openai import FakeLLMServer
from llmops_evaluator.config import JUDGE_TAG, sampled
from llmops_ingest.api import create_app as create_ingest_app
from llmops_ingest.settings import IngestSettings
from llmops_shared.kafka import durable_producer
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import EVALUATION_SCORES, INTERACTIONS_RAW
from llmops_shared.worker import StreamWorker
from tests.integration.evaluator.evaluator_support import (
    JUDGE_CREDENTIAL,
    REPLY,
    evaluator_config,
    eventually,
    register,
    result_keys,
    running_worker,
    tenant_of,
    worker_settings,
)
from tests.support.events import collect, end_offsets
from tests.support.servers import serve

pytestmark = pytest.mark.integration

APP = "support-bot"
CALLS = 30



async def start_group_at_end(bootstrap: str, topic: str, group: str) -> None:
    """Commit the group's offsets at the topic's end: the worker sees only what comes after."""
    ends = await end_offsets(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.commit(ends)
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def billing_worker(stack: CommonSettings, pool: asyncpg.Pool) -> AsyncIterator[None]:
    """The billing worker on the raw topic (a group of its own, from the current end)."""
    settings = BillingSettings(**stack.model_dump(), topic=INTERACTIONS_RAW,
                               group=f"test-billing-{uuid.uuid4().hex[:8]}", batch_max_wait_ms=50)
    await start_group_at_end(stack.kafka_bootstrap, INTERACTIONS_RAW, settings.group)
    producer = durable_producer(stack.kafka_bootstrap, client_id="test-billing")
    await producer.start()
    worker: StreamWorker[Any, Any] = StreamWorker(UsageLedgerHandler(settings), settings, pool=pool,
                                             producer=producer)
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.stopping.set()
        await asyncio.wait_for(task, 20)
        await producer.stop()


def app_traffic(llm_url: str, ingest_url: str, key: str, tenant: str) -> None:
    """What an instrumented app does: real openai client calls, one event each, sent by the SDK."""
    recorder = llmops_sdk.Recorder(app_id=APP, endpoint=ingest_url, api_key=key, environment="production",
                                   flush_interval_s=0.1)
    client = llmops_sdk.instrument_openai(openai.OpenAI(base_url=llm_url, api_key="sk-app"), recorder)
    for n in range(CALLS):
        client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "system", "content": "You are ACME's support assistant."},
            {"role": "user", "content": f"Where is order {tenant}-{n}? It was due on day {n}."}])
    assert recorder.close(timeout=10)
    assert recorder.stats().sent == CALLS


async def test_demo_traffic_is_judged_for_the_sampled_share_and_the_judge_usage_is_billed(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, make_key: Any) -> None:
    with FakeLLMServer(poll_interval_s=0.02) as llm:
        llm.config.json_reply = dict(REPLY)
        config = evaluator_config(tenant, llm.url, apps=[APP], sample_rate=0.5, max_concurrency=4, judge={
            "model": "gpt-4o-mini", "provider": "openai", "base_url": llm.url, "credential": JUDGE_CREDENTIAL})
        await register(pg_pool, config)
        settings = worker_settings(stack, judges=[llm.url], topic=INTERACTIONS_RAW, usage_topic=INTERACTIONS_RAW,
                                   scores_topic=EVALUATION_SCORES)
        await start_group_at_end(settings.kafka_bootstrap, INTERACTIONS_RAW, settings.group)
        raw_since = await end_offsets(settings.kafka_bootstrap, INTERACTIONS_RAW)
        scores_since = await end_offsets(settings.kafka_bootstrap, EVALUATION_SCORES)
        key = await make_key(tenant, ["ingest:write"])

        with serve(create_ingest_app(IngestSettings(**stack.model_dump()))) as ingest_url:
            async with billing_worker(stack, pg_pool), running_worker(settings):
                await asyncio.to_thread(app_traffic, llm.url, ingest_url, key, tenant)

                def ours(record: Any) -> bool:
                    return tenant_of(record) == tenant

                app_events = await collect(settings.kafka_bootstrap, INTERACTIONS_RAW, raw_since, keep=ours,
                                           until=lambda found: sum(JUDGE_TAG not in orjson.loads(r.value)["tags"]
                                                                   for r in found) >= CALLS)
                event_ids = [orjson.loads(r.value)["event_id"] for r in app_events
                             if JUDGE_TAG not in orjson.loads(r.value)["tags"]]
                assert len(event_ids) == CALLS
                judged_ids = {e for e in event_ids if sampled(uuid.UUID(e), config.sample_rate)}
                expected = {(e, config.id, r.split("@")[0], 1) for e in judged_ids for r in config.rubrics}
                assert 5 <= len(judged_ids) <= 25

                async def scored() -> bool:
                    return len(await result_keys(pg_pool, tenant)) >= len(expected)

                await eventually(scored, timeout_s=60, what="scores for the sampled share")
                usage = await collect(
                    settings.kafka_bootstrap, INTERACTIONS_RAW, raw_since,
                    keep=lambda r: ours(r) and JUDGE_TAG in orjson.loads(r.value)["tags"],
                    until=lambda found: len({orjson.loads(r.value)["event_id"] for r in found}) >= len(expected))

                async def billed() -> bool:
                    count = await pg_pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant)
                    return bool(count >= CALLS + len(expected))

                await eventually(billed, timeout_s=30, what="the app's and the judge's usage in the ledger")

    rows = await pg_pool.fetch("SELECT * FROM evaluation_results WHERE tenant_id = $1", tenant)
    assert {(str(r["event_id"]), r["evaluator_id"], r["rubric"], r["rubric_version"]) for r in rows} == expected
    assert {(r["status"], r["app_id"]) for r in rows} == {("ok", APP)}
    # The app's LLM calls plus one judge call per judgment, nothing more.
    assert llm.stats.requests == CALLS + len(expected)

    usage_events = [orjson.loads(r.value) for r in usage]
    assert {e["event_id"] for e in usage_events} == {str(r["usage_event_id"]) for r in rows}
    assert {(e["tenant_id"], e["app_id"], e["span_kind"], e["model"]) for e in usage_events} == \
        {(tenant, "llmops-evaluator", "llm", "gpt-4o-mini")}
    assert {e["metadata"]["llmops.judged_event_id"] for e in usage_events} == judged_ids
    assert sum(e["usage"]["input_tokens"] for e in usage_events) == sum(r["input_tokens"] for r in rows)
    scores = await collect(settings.kafka_bootstrap, EVALUATION_SCORES, scores_since, keep=ours,
                           until=lambda found: len(found) >= len(expected))
    assert {orjson.loads(r.value)["event_id"] for r in scores} == judged_ids

    ledger = await pg_pool.fetch(
        "SELECT event_id::text, input_tokens, unpriced, cost_total FROM usage_ledger "
        "WHERE tenant_id = $1 AND app_id = 'llmops-evaluator'", tenant)
    assert {r["event_id"] for r in ledger} == {e["event_id"] for e in usage_events}  # each judgment, once
    assert sum(r["input_tokens"] for r in ledger) == sum(r["input_tokens"] for r in rows)
    assert all(not r["unpriced"] and r["cost_total"] > 0 for r in ledger)
    app_rows = await pg_pool.fetchval(
        "SELECT count(*) FROM usage_ledger WHERE tenant_id = $1 AND app_id = $2", tenant, APP)
    assert app_rows == CALLS
