"""SIGKILL the evaluator worker (a real process) in the middle of a batch, restart it, count what came out.

Ground truth: every (event, evaluator, rubric) the evaluator selects has exactly one result row, `ok`; and
the judge's usage events on the usage topic carry exactly one distinct event id per judgment (Kafka may
hold a usage event twice after the kill: billing keys on the event id, so it counts once).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import asyncpg
import orjson
import pytest

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_shared.settings import CommonSettings
from tests.integration.evaluator.evaluator_support import (
    REPLY,
    create_topics,
    evaluator_config,
    eventually,
    expected_keys,
    register,
    result_keys,
    send,
    start_worker,
    worker_env,
    worker_settings,
)
from tests.support.events import collect, end_offsets, make_event

pytestmark = pytest.mark.integration


async def test_a_worker_killed_mid_batch_loses_and_duplicates_no_score(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, tmp_path: Path) -> None:
    with FakeLLMServer(poll_interval_s=0.02) as server:
        server.config.json_reply = dict(REPLY)
        server.config.latency_ms = 100
        config = evaluator_config(tenant, server.url, max_concurrency=4)  # two rubrics
        await register(pg_pool, config)
        settings = worker_settings(stack, judges=[server.url], batch_max_events=20,
                                   consumer_session_timeout_ms=6000)
        await create_topics(settings)
        batch = [{**make_event(output=f"Parcel {uuid.uuid4().hex[:8]} leaves today."), "tenant_id": tenant}
                 for _ in range(60)]
        expected = expected_keys(batch, config)
        assert len(expected) == 120
        await send(settings.kafka_bootstrap, settings.topic, batch)
        env = worker_env(settings)
        log = tmp_path / "worker.log"

        first = await start_worker(env, log)
        try:
            async def mid_batch() -> bool:
                stored = len(await result_keys(pg_pool, tenant))
                return stored >= 30 and server.stats.in_flight > 0

            await eventually(mid_batch, timeout_s=40, every_s=0.02, what="the worker judging a later batch")
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        stored_at_kill = len(await result_keys(pg_pool, tenant))
        assert first.returncode == -signal.SIGKILL
        assert 30 <= stored_at_kill < 120, log.read_text()[-2000:]

        second = await start_worker(env, log)
        try:
            async def complete() -> bool:
                return len(await result_keys(pg_pool, tenant)) >= 120

            await eventually(complete, timeout_s=60, what=f"every judgment stored after the restart\n{log}")
            async def published() -> bool:
                return bool(sum((await end_offsets(settings.kafka_bootstrap, settings.usage_topic)).values()) >= 120)

            await eventually(published, timeout_s=20, what="usage events published")
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), 30)
        assert second.returncode == 0, log.read_text()[-2000:]

    rows = await pg_pool.fetch("SELECT event_id::text, evaluator_id, rubric, rubric_version, status, usage_event_id "
                               "FROM evaluation_results WHERE tenant_id = $1", tenant)
    assert len(rows) == 120
    assert {(r["event_id"], r["evaluator_id"], r["rubric"], r["rubric_version"]) for r in rows} == expected
    assert {r["status"] for r in rows} == {"ok"}

    usage_ends = await end_offsets(settings.kafka_bootstrap, settings.usage_topic)
    usage = await collect(settings.kafka_bootstrap, settings.usage_topic, dict.fromkeys(usage_ends, 0),
                          until=lambda found: len(found) >= sum(usage_ends.values()), timeout_s=10)
    ids = [orjson.loads(r.value)["event_id"] for r in usage]
    assert len(set(ids)) == 120  # billing counts each judgment once ...
    assert set(ids) == {str(r["usage_event_id"]) for r in rows}  # ... and exactly the stored ones
    assert len(ids) >= 120  # (duplicates on Kafka are allowed)
    # The judge was asked once per judgment, plus at most the two batches in flight at the kill (not stored).
    assert 120 <= server.stats.requests <= 120 + 2 * 2 * settings.batch_max_events
