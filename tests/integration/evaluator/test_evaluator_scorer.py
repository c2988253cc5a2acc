"""The scorer with the real Redis (cache, spend cap) and the local OpenAI-compatible test server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_evaluator.cache import JudgmentCache
from llmops_evaluator.config import EvaluatorConfig
from llmops_evaluator.judge_client import JudgeClient, JudgeStatus
from llmops_evaluator.retry import RetryPolicy
from llmops_evaluator.scorer import Scorer
from llmops_evaluator.spend import SpendLedger, spend_day
from llmops_shared.contract import Interaction
from tests.support.events import make_event

pytestmark = pytest.mark.integration

REPLY = {"reasoning": "fine", "score": 3}  # on the scale of relevance (1-5) and safety (1-3)
FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02, attempt_timeout_s=5, deadline_s=20)
ENV = {"EVAL_TEST_KEY": "sk-test"}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(poll_interval_s=0.02) as fake:
        fake.config.json_reply = dict(REPLY)
        yield fake


def make_config(tenant: str, url: str, **overrides: Any) -> EvaluatorConfig:
    raw: dict[str, Any] = {
        "id": f"ev-{tenant}",
        "tenant_id": tenant,
        "rubrics": ["relevance@1", "safety@1"],
        "judge": {"model": "judge-model", "base_url": url, "credential": "test-judge"},
        "max_concurrency": 4,
        "daily_spend_cap_usd": "100",
    }
    raw.update(overrides)
    return EvaluatorConfig.model_validate(raw)


def interaction(tenant: str, n: int) -> Interaction:
    return Interaction.model_validate({**make_event(output=f"Order {n} ships today."), "tenant_id": tenant})


def scorer_for(config: EvaluatorConfig, redis: Any, published: list[Interaction] | None = None,
               ledger: SpendLedger | None = None) -> Scorer:
    async def publish(event: Interaction) -> None:
        if published is not None:
            published.append(event)

    judge = JudgeClient.from_spec(config.judge, api_key=ENV["EVAL_TEST_KEY"], egress=None,
                                  max_concurrency=config.max_concurrency, policy=FAST)
    return Scorer(config=config, judge=judge, cache=JudgmentCache(redis, ttl_s=600), ledger=ledger,
                  publish_usage=publish)


async def test_a_repeated_run_is_answered_from_the_cache_with_zero_http_calls(
        server: FakeLLMServer, redis_client: Any, tenant: str) -> None:
    config = make_config(tenant, server.url)
    events = [interaction(tenant, n) for n in range(10)]
    published: list[Interaction] = []
    scorer = scorer_for(config, redis_client, published)

    first = [e for event in events for e in await scorer.score(event)]
    assert server.stats.requests == 20
    assert all(e.result.status is JudgeStatus.OK and not e.result.from_cache for e in first)
    assert len(published) == 20  # one usage event per judgment that called the judge

    again = [e for event in events for e in await scorer.score(event)]
    assert server.stats.requests == 20  # zero HTTP calls
    assert all(e.result.from_cache and e.result.attempts == 0 and e.result.input_tokens == 0 for e in again)
    assert [(e.result.score, e.result.label, e.result.reasoning) for e in again] == \
        [(e.result.score, e.result.label, e.result.reasoning) for e in first]
    assert len(published) == 20  # nothing spent, nothing billed
    await scorer.judge.close()


async def test_usage_events_carry_what_the_judge_spent(server: FakeLLMServer, redis_client: Any,
                                                       tenant: str) -> None:
    config = make_config(tenant, server.url, rubrics=["safety@1"])
    published: list[Interaction] = []
    scorer = scorer_for(config, redis_client, published)
    [evaluation] = await scorer.score(interaction(tenant, 1))
    [event] = published
    assert evaluation.usage_event == event
    assert event.tenant_id == tenant and event.tags == ["llmops:judge"] and event.usage is not None
    assert (event.usage.input_tokens, event.usage.output_tokens) == (evaluation.result.input_tokens,
                                                                     evaluation.result.output_tokens)
    assert event.usage.output_tokens == len(json.dumps(REPLY)) // 4  # what the test server reports
    await scorer.judge.close()


async def test_failures_are_not_cached(server: FakeLLMServer, redis_client: Any, tenant: str) -> None:
    config = make_config(tenant, server.url, rubrics=["safety@1"])
    scorer = scorer_for(config, redis_client)
    server.config.script.append("401")
    [failed] = await scorer.score(interaction(tenant, 1))
    assert (failed.result.status, failed.result.error_type) == (JudgeStatus.ERROR, "http_401")
    [retried] = await scorer.score(interaction(tenant, 1))
    assert retried.result.status is JudgeStatus.OK and not retried.result.from_cache
    assert server.stats.requests == 2
    await scorer.judge.close()


async def test_a_new_rubric_version_or_another_tenant_is_judged_again(
        server: FakeLLMServer, redis_client: Any, tenant: str) -> None:
    def tone(version: int) -> dict[str, Any]:
        return {"rubrics": [f"tone@{version}"],
                "custom_rubrics": [{"name": "tone", "version": version, "criteria": "Polite.", "steps": ["Read."]}]}

    v1 = scorer_for(make_config(tenant, server.url, **tone(1)), redis_client)
    v2 = scorer_for(make_config(tenant, server.url, **tone(2)), redis_client)
    other_tenant = f"{tenant}-b"
    v1_other = scorer_for(make_config(other_tenant, server.url, **tone(1)), redis_client)

    await v1.score(interaction(tenant, 1))
    await v1.score(interaction(tenant, 1))
    assert server.stats.requests == 1
    await v2.score(interaction(tenant, 1))
    assert server.stats.requests == 2
    await v1_other.score(interaction(other_tenant, 1))
    assert server.stats.requests == 3
    for scorer in (v1, v2, v1_other):
        await scorer.judge.close()


async def test_rubrics_that_do_not_apply_are_skipped_without_a_call(
        server: FakeLLMServer, redis_client: Any, tenant: str) -> None:
    config = make_config(tenant, server.url, rubrics=["faithfulness@1", "correctness@1"])
    scorer = scorer_for(config, redis_client)
    evaluations = await scorer.score(interaction(tenant, 1))
    assert [(e.result.status, e.result.error_type, e.result.error) for e in evaluations] == [
        (JudgeStatus.SKIPPED, "not_applicable", "no context (metadata.context)"),
        (JudgeStatus.SKIPPED, "not_applicable", "no reference (metadata.reference)"),
    ]
    assert server.stats.requests == 0
    await scorer.judge.close()


async def test_the_daily_spend_cap_stops_judge_calls(server: FakeLLMServer, redis_client: Any,
                                                     tenant: str) -> None:
    # Output tokens at 1 USD each, none for input. The test server reports len(reply) // 4 = 8 output
    # tokens per answer; each call first reserves max_tokens = 16 USD. Cap 30:
    # call 1: 0 + 16 <= 30, costs 8; call 2: 8 + 16 <= 30, costs 8; call 3: 16 + 16 > 30, refused.
    assert len(json.dumps(REPLY)) // 4 == 8
    config = make_config(tenant, server.url, rubrics=["safety@1"], daily_spend_cap_usd="30",
                         judge={"model": "judge-model", "base_url": server.url, "credential": "test-judge",
                                "max_tokens": 16, "output_usd_per_mtok": "1000000"})
    ledger = SpendLedger(redis_client, prefix=f"llmops:test:spend:{tenant}")
    scorer = scorer_for(config, redis_client, ledger=ledger)
    results = [(await scorer.score(interaction(tenant, n)))[0].result for n in range(4)]
    assert [r.status for r in results] == [JudgeStatus.OK, JudgeStatus.OK, JudgeStatus.SKIPPED, JudgeStatus.SKIPPED]
    assert results[2].error_type == "spend_cap" and "30" in (results[2].error or "")
    assert server.stats.requests == 2
    assert await ledger.spent(config.tenant_id, config.id, spend_day()) == Decimal(16)
    await scorer.judge.close()


async def test_fifty_judgments_at_once_never_spend_past_the_cap(server: FakeLLMServer, redis_client: Any,
                                                               tenant: str) -> None:
    # Each call reserves max_tokens = 16 USD and costs 8 (see above). Cap 100, 50 judgments at once, the
    # judge slow enough that they all wait on it together. Every reservation is held while its call is in
    # flight, so at most 100 // 16 = 6 calls can be granted before any settles; whatever the interleaving,
    # the money actually spent (8 per call made) never passes the cap, and no call is made once it would.
    server.config.latency_ms = 50
    config = make_config(tenant, server.url, rubrics=["safety@1"], daily_spend_cap_usd="100", max_concurrency=50,
                         judge={"model": "judge-model", "base_url": server.url, "credential": "test-judge",
                                "max_tokens": 16, "output_usd_per_mtok": "1000000"})
    ledger = SpendLedger(redis_client, prefix=f"llmops:test:spend:{tenant}")
    scorer = scorer_for(config, redis_client, ledger=ledger)
    outcomes = await asyncio.gather(*(scorer.score(interaction(tenant, n)) for n in range(50)))
    await scorer.judge.close()
    results = [evaluations[0].result for evaluations in outcomes]
    made = sum(r.status is JudgeStatus.OK for r in results)
    assert made == server.stats.requests
    assert {r.error_type for r in results if r.status is not JudgeStatus.OK} == {"spend_cap"}
    spent = await ledger.spent(config.tenant_id, config.id, spend_day())
    assert spent == Decimal(8) * made <= Decimal(100)
    # At least 6 (all reserved before any settles); at most 11 (10 settled = 80, + 16 reserved = 96; a 12th
    # would need 88 + 16 = 104).
    assert 6 <= made <= 11
