"""Evaluator configs in force at once: a running worker judges with an evaluator created (or changed, or
disabled) a moment ago, well within a second, without waiting for the periodic re-read.

The workers here re-read periodically only once an hour (`evaluators_refresh_s`): what they pick up, they
pick up from the `llmops_config` notification of the commit (`ConfigWatcher`). The in-force time is polled
against a deadline, never slept for.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from llmops_devtools.demo import DEMO_KEY, DEMO_KEY_ENV, demo_credentials, egress_allowance, ensure_demo_evaluator
from llmops_devtools.fake_openai import FakeLLMServer
from llmops_evaluator.credentials import JudgeAccess
from llmops_evaluator.evaluator_store import load_evaluators
from llmops_evaluator.evaluators import create_evaluator, disable_evaluator, replace_evaluator
from llmops_evaluator.registry import EvaluatorRegistry
from llmops_shared.contract import Interaction
from llmops_shared.kafka import durable_producer
from llmops_shared.settings import CommonSettings
from tests.integration.evaluator.evaluator_support import (
    JUDGE_CREDENTIAL,
    REPLY,
    create_topics,
    evaluator_config,
    eventually,
    expected_keys,
    register,
    result_keys,
    running_worker,
    send,
    start_worker,
    worker_env,
    worker_settings,
)
from tests.support.events import make_event

pytestmark = pytest.mark.integration

IN_FORCE_WITHIN_S = 1.0
HOURLY = 3600.0  # the periodic re-read: never within a test


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(poll_interval_s=0.02) as fake:
        fake.config.json_reply = dict(REPLY)
        yield fake


def events(tenant: str, n: int, **overrides: Any) -> list[dict[str, Any]]:
    return [{**make_event(output=f"Order {uuid.uuid4().hex[:6]}-{i} ships today.", **overrides), "tenant_id": tenant}
            for i in range(n)]


async def in_force_after(registry: EvaluatorRegistry, key: tuple[str, str], check: Any, since: float) -> float:
    """Seconds from `since` until the registry holds a version of evaluator `key` (tenant, id) that passes
    `check`."""
    evaluator_id = key[1]
    deadline = since + 10
    while time.monotonic() < deadline:
        active = registry.get(*key)
        if check(active):
            return time.monotonic() - since
        await asyncio.sleep(0.005)
    raise AssertionError(f"{evaluator_id}: the change is not in force after 10 s")


async def test_an_evaluator_created_changed_and_disabled_through_the_api_is_in_force_within_a_second(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer) -> None:
    settings = worker_settings(stack, judges=[server.url], evaluators_refresh_s=HOURLY)
    await create_topics(settings)
    probe = evaluator_config(f"{tenant}-probe", server.url, rubrics=["safety@1"])  # shows the worker is consuming
    await register(pg_pool, probe)
    await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
    body = {"id": f"ev-{tenant}", "rubrics": ["relevance@1"], "sample_rate": 1.0, "max_concurrency": 4,
            "daily_spend_cap_usd": "100",
            "judge": {"model": "judge-model", "base_url": server.url, "credential": JUDGE_CREDENTIAL}}
    judges = JudgeAccess.of(settings)  # what the API checks a config against: the worker's grants
    key = (tenant, body["id"])
    producer = durable_producer(settings.kafka_bootstrap, client_id="test-evaluator")
    await producer.start()

    async def send_now(batch: list[dict[str, Any]]) -> None:  # the producer is up: no start-up in the timing
        await asyncio.gather(*[await producer.send(settings.topic, json.dumps(e).encode(), key=e["trace_id"].encode())
                               for e in batch])

    try:
        async with running_worker(settings) as runtime:
            registry = runtime.registry
            assert registry.watcher is not None and registry.watcher.connected
            before = events(tenant, 3)
            probe_event = {**make_event(), "tenant_id": probe.tenant_id}
            await send_now([*before, probe_event])

            async def consuming() -> bool:
                return len(await result_keys(pg_pool, probe.tenant_id)) == 1

            await eventually(consuming, what="the worker consuming")
            assert registry.selecting(Interaction.model_validate(before[0])) == []  # loaded: none for the tenant

            # Created through the API's domain function, then traffic at once.
            async with pg_pool.acquire() as conn:
                await create_evaluator(conn=conn, tenant_id=tenant, body=body, judges=judges)
            committed = time.monotonic()
            created = events(tenant, 10)
            await send_now(created)
            took = await in_force_after(registry, key, lambda a: a is not None, committed)
            assert took < IN_FORCE_WITHIN_S, f"created: in force after {took:.3f} s"

            async def judged(n: int) -> bool:
                return len(await result_keys(pg_pool, tenant)) >= n

            await eventually(lambda: judged(len(created)), what="the events sent right after judged")

            # Changed: sampling nothing from now on.
            async with pg_pool.acquire() as conn:
                await replace_evaluator(conn=conn, tenant_id=tenant, evaluator_id=body["id"],
                                        body={**body, "sample_rate": 0.0}, judges=judges)
            committed = time.monotonic()
            unsampled = events(tenant, 5)
            await send_now(unsampled)
            took = await in_force_after(registry, key, lambda a: a is not None and a.config.sample_rate == 0,
                                        committed)
            assert took < IN_FORCE_WITHIN_S, f"changed: in force after {took:.3f} s"

            # Disabled, then enabled again with every event sampled: only what comes after is judged.
            async with pg_pool.acquire() as conn:
                await disable_evaluator(conn=conn, tenant_id=tenant, evaluator_id=body["id"])
            committed = time.monotonic()
            await send_now(events(tenant, 2))
            took = await in_force_after(registry, key, lambda a: a is None, committed)
            assert took < IN_FORCE_WITHIN_S, f"disabled: in force after {took:.3f} s"

            async with pg_pool.acquire() as conn:
                await replace_evaluator(conn=conn, tenant_id=tenant, evaluator_id=body["id"],
                                        body={**body, "enabled": True}, judges=judges)
            committed = time.monotonic()
            again = events(tenant, 4)
            await send_now(again)
            took = await in_force_after(registry, key, lambda a: a is not None and a.config.sample_rate == 1,
                                        committed)
            assert took < IN_FORCE_WITHIN_S, f"enabled again: in force after {took:.3f} s"
            await eventually(lambda: judged(len(created) + len(again)), what="the events after re-enabling judged")
    finally:
        await producer.stop()

    judged_ids = {key[0] for key in await result_keys(pg_pool, tenant)}
    assert judged_ids == {e["event_id"] for e in [*created, *again]}  # not before, not while off
    assert {key[0] for key in await result_keys(pg_pool, tenant, status="ok")} == judged_ids


async def test_a_worker_started_before_the_demo_evaluator_existed_judges_the_demo_traffic_at_once(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer, tmp_path: Path) -> None:
    """`make up` then `llmops demo`: the worker process starts with no evaluator for the tenant, the demo
    creates its evaluator, then sends its traffic: the traffic is judged (the README's judge scores)."""
    server.config.schema_replies = True
    server.config.json_reply = None  # as the local stack's fake LLM answers
    await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
    settings = worker_settings(stack, evaluators_refresh_s=HOURLY)
    await create_topics(settings)
    log = tmp_path / "worker.log"
    # As the local stack's services have it: the demo credential granted to the demo tenant (this test's)
    # for the fake LLM, its key, and the one egress allowance the fake LLM needs.
    demo_env = {DEMO_KEY_ENV: DEMO_KEY, "LLMOPS_EGRESS_ALLOW": egress_allowance(server.url),
                "LLMOPS_EVALUATOR_CREDENTIALS": json.dumps(demo_credentials(tenants=[tenant], judge_url=server.url))}
    worker = await start_worker(worker_env(settings, **demo_env), log)
    try:
        async def started() -> bool:
            return log.exists() and "evaluator worker starting" in log.read_text()

        await eventually(started, timeout_s=60, what="the worker process started")
        assert await load_evaluators(conn=pg_pool, tenant_id=tenant) == []  # it loaded none for the tenant

        await ensure_demo_evaluator(pg_pool, server.url, tenant_id=tenant, evaluator_id=f"demo-{tenant}")
        traffic = events(tenant, 24, app_id="support-bot") + events(tenant, 6, app_id="rag-search")
        await send(settings.kafka_bootstrap, settings.topic, traffic)
        [config] = await load_evaluators(conn=pg_pool, tenant_id=tenant)
        expected = expected_keys(traffic, config)
        assert expected  # half of the support bot's events, two rubrics each

        async def all_judged() -> bool:
            return len(await result_keys(pg_pool, tenant)) >= len(expected)

        await eventually(all_judged, timeout_s=30, what=f"the demo traffic judged\n{log}")
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), 30)
    assert worker.returncode == 0, log.read_text()[-2000:]
    assert set(await result_keys(pg_pool, tenant)) == expected
    assert set(await result_keys(pg_pool, tenant, status="ok")) == expected
