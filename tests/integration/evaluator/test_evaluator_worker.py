"""The evaluator's stream worker on the real Kafka, Postgres and Redis, judging with the local test server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_devtools.testing import free_port
from llmops_evaluator.cache import JudgmentCache
from llmops_evaluator.config import JUDGE_TAG
from llmops_evaluator.evaluations import JUDGE_ERROR
from llmops_evaluator.registry import EvaluatorRegistry
from llmops_evaluator.worker import EvaluatorHandler, open_runtime
from llmops_shared import deadletters
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import DEAD_LETTERS
from llmops_shared.worker import Message, Resources
from tests.integration.evaluator.evaluator_support import (
    JUDGE_ENV,
    REPLY,
    create_topics,
    evaluator_config,
    eventually,
    expected_keys,
    register,
    result_keys,
    running_worker,
    send,
    worker_settings,
)
from tests.support.events import collect, end_offsets, make_event

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(poll_interval_s=0.02) as fake:
        fake.config.json_reply = dict(REPLY)
        yield fake


def events(tenant: str, n: int, **overrides: Any) -> list[dict[str, Any]]:
    # Distinct answers: no two events share a judgment, so nothing comes from the cache.
    return [{**make_event(output=f"Order {uuid.uuid4().hex[:6]}-{i} ships today.", **overrides), "tenant_id": tenant}
            for i in range(n)]


async def test_the_worker_scores_exactly_the_sampled_share_within_the_cap(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer) -> None:
    config = evaluator_config(tenant, server.url, sample_rate=0.5, max_concurrency=3)
    await register(pg_pool, config)
    settings = worker_settings(stack, judges=[server.url])
    await create_topics(settings)
    batch = events(tenant, 40)
    judge_own = {**make_event(tags=[JUDGE_TAG]), "tenant_id": tenant}  # the judge's usage: never judged
    other_tenant = {**make_event(), "tenant_id": f"{tenant}-other"}
    expected = expected_keys(batch, config)
    assert 10 < len(expected) // 2 < 30  # about half of 40 events, two rubrics each

    server.hold()  # the judge's answers wait until three calls are in flight: the cap is reached for certain
    async with running_worker(settings):
        await send(settings.kafka_bootstrap, settings.topic, [*batch, judge_own, other_tenant])

        async def cap_reached() -> bool:
            return server.stats.in_flight >= 3

        await eventually(cap_reached, every_s=0.01, what="three judge calls in flight")
        server.release()

        async def all_judged() -> bool:
            return len(await result_keys(pg_pool, tenant)) >= len(expected)

        await eventually(all_judged, what="every sampled judgment stored")

    rows = await pg_pool.fetch("SELECT * FROM evaluation_results WHERE tenant_id = $1", tenant)
    assert {(str(r["event_id"]), r["evaluator_id"], r["rubric"], r["rubric_version"]) for r in rows} == expected
    assert len(rows) == len(expected)
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["raw_score"] for r in rows} == {3}
    assert all(r["judged_at"] is not None and r["usage_event_id"] is not None for r in rows)
    assert server.stats.requests == len(expected)
    assert server.stats.max_in_flight == 3  # the cap, reached above, is never passed

    usage = await collect(settings.kafka_bootstrap, settings.usage_topic,
                          {tp: 0 for tp in await end_offsets(settings.kafka_bootstrap, settings.usage_topic)},
                          until=lambda found: len(found) >= len(expected), timeout_s=10)
    usage_events = [orjson.loads(r.value) for r in usage]
    assert {e["event_id"] for e in usage_events} == {str(r["usage_event_id"]) for r in rows}
    assert all(e["tenant_id"] == tenant and JUDGE_TAG in e["tags"] and e["usage"]["input_tokens"] > 0
               for e in usage_events)
    assert {r.key.decode() for r in usage} == {e["trace_id"] for e in usage_events}

    scores = await collect(settings.kafka_bootstrap, settings.scores_topic,
                           {tp: 0 for tp in await end_offsets(settings.kafka_bootstrap, settings.scores_topic)},
                           until=lambda found: len(found) >= len(expected), timeout_s=10)
    assert {(s["event_id"], s["evaluator_id"], s["rubric"], s["rubric_version"])
            for s in map(orjson.loads, (r.value for r in scores))} == expected


async def test_a_redelivered_batch_is_not_judged_again_and_republishes_the_same_usage_events(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer) -> None:
    config = evaluator_config(tenant, server.url)
    await register(pg_pool, config)
    settings = worker_settings(stack, judges=[server.url])
    await create_topics(settings)
    batch = events(tenant, 10)
    expected = expected_keys(batch, config)

    async with running_worker(settings):
        await send(settings.kafka_bootstrap, settings.topic, batch)

        async def judged(count: int) -> bool:
            return len(await result_keys(pg_pool, tenant)) >= count

        await eventually(lambda: judged(len(expected)), what="first delivery judged")
        calls = server.stats.requests
        before = await pg_pool.fetch("SELECT * FROM evaluation_results WHERE tenant_id = $1 ORDER BY 1, 2, 3",
                                     tenant)
        scores_end = await end_offsets(settings.kafka_bootstrap, settings.scores_topic)
        await send(settings.kafka_bootstrap, settings.topic, batch)  # the same events, delivered again
        await collect(settings.kafka_bootstrap, settings.scores_topic, scores_end,
                      until=lambda found: len(found) >= len(expected), timeout_s=15)

    assert server.stats.requests == calls  # answered from the stored rows: no judge call
    after = await pg_pool.fetch("SELECT * FROM evaluation_results WHERE tenant_id = $1 ORDER BY 1, 2, 3", tenant)
    assert [dict(r) for r in after] == [dict(r) for r in before]
    usage = await collect(settings.kafka_bootstrap, settings.usage_topic,
                          {tp: 0 for tp in await end_offsets(settings.kafka_bootstrap, settings.usage_topic)},
                          until=lambda found: len(found) >= 2 * len(expected), timeout_s=10)
    assert len(usage) == 2 * len(expected)  # published twice (Kafka is at least once) ...
    assert len({orjson.loads(r.value)["event_id"] for r in usage}) == len(expected)  # ... under the same ids
    by_id: dict[str, set[bytes]] = {}
    for record in usage:
        by_id.setdefault(orjson.loads(record.value)["event_id"], set()).add(record.value)
    assert all(len(values) == 1 for values in by_id.values())  # the second is the first, byte for byte


async def test_a_judge_that_fails_for_good_gives_error_rows_and_dead_letters_and_replay_fixes_them(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer) -> None:
    server.config.default_mode = "500"
    config = evaluator_config(tenant, server.url, rubrics=["relevance@1"])
    await register(pg_pool, config)
    settings = worker_settings(stack, judges=[server.url])
    await create_topics(settings)
    batch = events(tenant, 6)
    dlq_since = await end_offsets(settings.kafka_bootstrap, DEAD_LETTERS)

    async with running_worker(settings):
        await send(settings.kafka_bootstrap, settings.topic, [*batch, b"{not json"])

        async def dead_lettered() -> bool:
            count = await pg_pool.fetchval("SELECT count(*) FROM dead_letters WHERE consumer = $1",
                                           settings.group)
            return bool(count >= 7)

        await eventually(dead_lettered, what="dead letters written")

    rows = await pg_pool.fetch("SELECT * FROM evaluation_results WHERE tenant_id = $1", tenant)
    assert len(rows) == 6
    assert {(r["status"], r["error_type"], r["attempts"]) for r in rows} == {("error", "http_500", 2)}
    assert all("gave up after 2 failed attempts" in r["error"] for r in rows)
    dead = await pg_pool.fetch("SELECT * FROM dead_letters WHERE consumer = $1 ORDER BY reason",
                               settings.group)
    assert sorted(d["reason"] for d in dead) == ["bad_json"] + [JUDGE_ERROR] * 6
    judge_dead = [d for d in dead if d["reason"] == JUDGE_ERROR]
    assert {str(d["event_id"]) for d in judge_dead} == {e["event_id"] for e in batch}
    assert {d["tenant_id"] for d in judge_dead} == {tenant}
    assert all(f"{config.id} relevance@1: http_500" in d["error"] for d in judge_dead)
    records = await collect(settings.kafka_bootstrap, DEAD_LETTERS, dlq_since,
                            keep=lambda r: dict(r.headers).get("llmops.consumer") == settings.group.encode(),
                            until=lambda found: len(found) >= 7)
    assert sorted(dict(r.headers)["llmops.reason"].decode() for r in records) == ["bad_json"] + [JUDGE_ERROR] * 6

    # The judge is back: replaying the dead letters turns every error row into a score.
    server.config.default_mode = "ok"
    report = await deadletters.replay(pg_pool, settings.kafka_bootstrap, consumer=settings.group,
                                      reason=JUDGE_ERROR)
    assert (report.pending, report.replayed) == (6, 6)
    async with running_worker(settings):
        async def fixed() -> bool:
            return len(await result_keys(pg_pool, tenant, status="ok")) == 6

        await eventually(fixed, what="error rows replaced after the replay")


# A malformed reply of the judge, and the row it must give (status, error type, usage event published).
BAD_REPLIES = {
    "negative_usage": ("error", "invalid_usage", False),
    "huge_usage": ("error", "invalid_usage", False),
    "content_not_string": ("unparseable", "unparseable", True),
    "no_choices": ("unparseable", "unparseable", True),
    "not_an_object": ("unparseable", "unparseable", False),
    "nul_reasoning": ("ok", None, True),
}


async def test_bad_judge_replies_fail_their_judgment_alone_and_the_worker_keeps_going(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer) -> None:
    config = evaluator_config(tenant, server.url, rubrics=["relevance@1"])
    await register(pg_pool, config)
    settings = worker_settings(stack, judges=[server.url])
    await create_topics(settings)
    good = events(tenant, 10)
    bad: dict[str, dict[str, Any]] = {}
    for mode in BAD_REPLIES:  # the event's answer carries a marker: every call about it gets that reply
        marker = f"marker-{mode}-{uuid.uuid4().hex[:8]}"
        server.config.marked_modes[marker] = mode
        bad[mode] = {**make_event(output=f"Answer {marker}."), "tenant_id": tenant}
    batch = [*good[:5], *bad.values(), *good[5:]]  # one batch (at most 25 events), bad replies in the middle

    async with running_worker(settings):
        await send(settings.kafka_bootstrap, settings.topic, batch)

        async def all_written() -> bool:
            return len(await result_keys(pg_pool, tenant)) >= len(batch)

        await eventually(all_written, what="a row for every judgment, the bad ones included")
        later = events(tenant, 5)
        await send(settings.kafka_bootstrap, settings.topic, later)  # the worker keeps going

        async def later_judged() -> bool:
            return len(await result_keys(pg_pool, tenant)) >= len(batch) + len(later)

        await eventually(later_judged, what="the next batch judged")

    rows = {str(r["event_id"]): r for r in await pg_pool.fetch(
        "SELECT * FROM evaluation_results WHERE tenant_id = $1", tenant)}
    assert len(rows) == len(batch) + len(later)
    assert {rows[e["event_id"]]["status"] for e in [*good, *later]} == {"ok"}
    for mode, expected in BAD_REPLIES.items():
        row = rows[bad[mode]["event_id"]]
        assert (row["status"], row["error_type"], row["usage_event_id"] is not None) == expected, mode
    assert "\x00" not in rows[bad["nul_reasoning"]["event_id"]]["reasoning"]
    dead = await pg_pool.fetch("SELECT event_id::text, reason FROM dead_letters WHERE consumer = $1", settings.group)
    assert sorted((d["event_id"], d["reason"]) for d in dead) == sorted(
        (bad[mode]["event_id"], JUDGE_ERROR) for mode, (status, _, _) in BAD_REPLIES.items() if status != "ok")

    billed = [r for r in rows.values() if r["usage_event_id"] is not None]
    usage = await collect(settings.kafka_bootstrap, settings.usage_topic,
                          {tp: 0 for tp in await end_offsets(settings.kafka_bootstrap, settings.usage_topic)},
                          until=lambda found: len(found) >= len(billed), timeout_s=10)
    usage_events = [orjson.loads(r.value) for r in usage]
    assert {e["event_id"] for e in usage_events} == {str(r["usage_event_id"]) for r in billed}
    assert all(0 < e["usage"]["input_tokens"] <= 100_000_000 for e in usage_events)


async def test_an_evaluator_whose_judge_credential_is_unavailable_writes_error_rows_not_a_gap(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer) -> None:
    config = evaluator_config(tenant, server.url, rubrics=["safety@1"])
    await register(pg_pool, config)
    settings = worker_settings(stack, judges=[server.url])
    await create_topics(settings)
    batch = events(tenant, 3)

    async with running_worker(settings, environ={}):
        await send(settings.kafka_bootstrap, settings.topic, batch)

        async def written() -> bool:
            return len(await result_keys(pg_pool, tenant)) == 3

        await eventually(written, what="error rows written")

    rows = await pg_pool.fetch("SELECT status, error_type, error FROM evaluation_results WHERE tenant_id = $1", tenant)
    assert {(r["status"], r["error_type"]) for r in rows} == {("error", "judge_unavailable")}
    assert {r["error"] for r in rows} == {"credential unavailable"}  # the variable's name is the operator's
    assert server.stats.requests == 0
    count = await pg_pool.fetchval("SELECT count(*) FROM dead_letters WHERE consumer = $1 AND reason = $2",
                                   settings.group, JUDGE_ERROR)
    assert count == 3


async def test_low_scores_and_a_sample_go_to_the_review_queue(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer) -> None:
    server.config.json_reply = {"reasoning": "Off topic.", "score": 2}  # relevance 0.25, safety 0.5
    config = evaluator_config(tenant, server.url, review_below_score=0.4)
    await register(pg_pool, config)
    settings = worker_settings(stack, judges=[server.url])
    await create_topics(settings)
    batch = events(tenant, 4)

    async with running_worker(settings):
        await send(settings.kafka_bootstrap, settings.topic, batch)

        async def written() -> bool:
            return len(await result_keys(pg_pool, tenant)) == 8

        await eventually(written, what="judged")

    queued = await pg_pool.fetch(
        "SELECT event_id::text, rubric, reason, priority FROM review_queue WHERE tenant_id = $1", tenant)
    assert {(q["event_id"], q["rubric"], q["reason"], q["priority"]) for q in queued} == {
        (e["event_id"], "relevance@1", "low_score", 10) for e in batch}


async def test_a_crash_between_publishing_and_the_offset_commit_republishes_the_same_usage_events(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer) -> None:
    config = evaluator_config(tenant, server.url)
    await register(pg_pool, config)
    settings = worker_settings(stack, judges=[server.url])
    await create_topics(settings)
    batch = events(tenant, 5)
    expected = expected_keys(batch, config)

    runtime = await open_runtime(settings, environ=JUDGE_ENV)

    async def crash(*_args: object) -> None:
        raise RuntimeError("killed after publishing, before committing the offsets")

    runtime.worker._commit = crash  # type: ignore[method-assign]
    # sent before the worker starts, so its first poll takes the whole batch (the crash ends it)
    await send(settings.kafka_bootstrap, settings.topic, batch)
    task = asyncio.create_task(runtime.worker.run())
    with pytest.raises(RuntimeError, match="before committing"):
        await asyncio.wait_for(task, 30)
    await runtime.close()
    assert len(await result_keys(pg_pool, tenant, status="ok")) == len(expected)
    calls = server.stats.requests

    usage_topic = {tp: 0 for tp in await end_offsets(settings.kafka_bootstrap, settings.usage_topic)}
    async with running_worker(settings):
        usage = await collect(settings.kafka_bootstrap, settings.usage_topic, usage_topic,
                              until=lambda found: len(found) >= 2 * len(expected), timeout_s=20)
    assert server.stats.requests == calls  # the redelivered batch was not judged again
    assert len(usage) == 2 * len(expected)
    assert len({orjson.loads(r.value)["event_id"] for r in usage}) == len(expected)


async def test_an_event_twice_in_one_batch_is_judged_once(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer) -> None:
    config = evaluator_config(tenant, server.url)
    await register(pg_pool, config)
    settings = worker_settings(stack, judges=[server.url])
    registry = EvaluatorRegistry(settings, cache=None, ledger=None, environ=JUDGE_ENV)
    handler = EvaluatorHandler(settings, registry, None)
    first, second = events(tenant, 2)
    messages = [Message("t", 0, n, None, orjson.dumps(e), 0) for n, e in enumerate([first, second, first])]
    items = [(m, handler.decode(m)) for m in messages]
    try:
        judged, dead = await handler.judge(pg_pool, items)
    finally:
        await registry.close()
    assert [len(work.evaluations) for _, work in judged] == [2, 2, 0]
    assert server.stats.requests == 4 and dead == []
    async with pg_pool.acquire() as conn, conn.transaction():
        written = await handler.write(conn, judged)
    assert len(written) == 4 and len(await result_keys(pg_pool, tenant)) == 4


async def test_two_tenants_events_with_one_id_in_one_batch_are_each_judged_once(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer) -> None:
    """An event id is its tenant's own (issue 11, item 5): tenant B's event with tenant A's id is judged too,
    for B; A's second copy is not; a redelivered batch judges nothing again."""
    other = f"{tenant}-b"
    for owner in (tenant, other):
        await register(pg_pool, evaluator_config(owner, server.url))
    settings = worker_settings(stack, judges=[server.url])
    registry = EvaluatorRegistry(settings, cache=None, ledger=None, environ=JUDGE_ENV)
    handler = EvaluatorHandler(settings, registry, None)
    shared = str(uuid.uuid4())
    a, b = ({**make_event(event_id=shared, output=f"Order {owner} ships today."), "tenant_id": owner}
            for owner in (tenant, other))
    messages = [Message("t", 0, n, None, orjson.dumps(e), 0) for n, e in enumerate([a, b, a])]
    items = [(m, handler.decode(m)) for m in messages]
    try:
        for _ in range(2):  # the second time: a redelivery, answered from the stored rows
            judged, dead = await handler.judge(pg_pool, items)
            assert [len(work.evaluations) for _, work in judged] == [2, 2, 0] and dead == []
            async with pg_pool.acquire() as conn, conn.transaction():
                await handler.write(conn, judged)
    finally:
        await registry.close()
    assert server.stats.requests == 4
    for owner in (tenant, other):
        assert sorted(await result_keys(pg_pool, owner)) == [(shared, f"ev-{owner}", "relevance", 1),
                                                             (shared, f"ev-{owner}", "safety", 1)]


async def test_redis_gone_after_publishing_loses_cache_entries_not_the_worker(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, server: FakeLLMServer) -> None:
    """Found by the chaos run: Redis killed between the commit and the cache write crashed the worker."""
    config = evaluator_config(tenant, server.url)
    await register(pg_pool, config)
    settings = worker_settings(stack, judges=[server.url])
    await create_topics(settings)
    registry = EvaluatorRegistry(settings, cache=None, ledger=None, environ=JUDGE_ENV)
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    handler = EvaluatorHandler(settings, registry, JudgmentCache(unreachable))
    batch = events(tenant, 2)
    items = [(m, handler.decode(m)) for m in
             (Message(settings.topic, 0, n, None, orjson.dumps(e), 0) for n, e in enumerate(batch))]
    scores_from = {tp: 0 for tp in await end_offsets(settings.kafka_bootstrap, settings.scores_topic)}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        judged, _ = await handler.judge(pg_pool, items)
        async with pg_pool.acquire() as conn, conn.transaction():
            written = await handler.write(conn, judged)
        await handler.publish(written, Resources(pg_pool, producer, asyncio.Event()))
    finally:
        await producer.stop()
        await registry.close()
        await unreachable.aclose()
    scores = await collect(settings.kafka_bootstrap, settings.scores_topic, scores_from,
                           until=lambda found: len(found) >= len(written), timeout_s=20)
    assert len(written) == 4 and len(scores) == len(written)


async def test_a_judge_quoting_what_it_judged_leaves_no_personal_data_in_postgres_or_redis(
        stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: Redis, tenant: str,
        server: FakeLLMServer) -> None:
    """The worker on an unredacted topic (where guardrails do not run), its judge quoting the judged text in
    every reasoning: results, the review queue and the judgment cache hold the labels, never the values."""
    server.config.json_reply = None
    server.config.schema_replies = server.config.quote_prompt = True
    email, phone = f"canary-{uuid.uuid4().hex[:12]}@example.com", "+1 415 555 0142"
    config = evaluator_config(tenant, server.url, review_sample_rate=1.0)
    await register(pg_pool, config)
    settings = worker_settings(stack, judges=[server.url])
    await create_topics(settings)
    batch = [{**make_event(input=[{"role": "user", "content": f"Reach me at {email} or {phone}, order {i}."}],
                           output=f"We will write to {email}."), "tenant_id": tenant} for i in range(3)]
    expected = expected_keys(batch, config)
    async with running_worker(settings):
        await send(settings.kafka_bootstrap, settings.topic, batch)

        async def all_judged() -> bool:
            return len(await result_keys(pg_pool, tenant)) >= len(expected)

        await eventually(all_judged, what="every judgment stored")

    rows = await pg_pool.fetch("SELECT row_to_json(r)::text AS j, reasoning FROM evaluation_results r "
                               "WHERE tenant_id = $1", tenant)
    assert rows and all("the text judged reads:" in r["reasoning"] and "[EMAIL_ADDRESS]" in r["reasoning"]
                        for r in rows)  # it did quote, and what it quoted is scrubbed
    review = await pg_pool.fetch("SELECT row_to_json(q)::text AS j FROM review_queue q WHERE tenant_id = $1", tenant)
    cached = [await redis_client.get(k) async for k in redis_client.scan_iter(f"llmops:eval:judgment:{tenant}:*")]
    assert len(cached) == len(expected)
    stored = "\n".join([r["j"] for r in rows] + [r["j"] for r in review] + [c.decode() for c in cached])
    for raw in (email, phone, "415 555 0142"):
        assert raw not in stored
