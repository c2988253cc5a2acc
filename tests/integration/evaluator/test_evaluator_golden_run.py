"""A golden-dataset run against the local OpenAI-compatible test server (target and judge alike)."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_evaluator.golden import (
    GoldenRunConfig,
    TargetClient,
    TargetError,
    compare,
    dataset_sha256,
    junit_xml,
    parse_golden,
    run_golden,
)
from llmops_evaluator.judge_client import JudgeClient, JudgeStatus
from llmops_evaluator.retry import RetryPolicy
from tests.integration.evaluator.evaluator_support import SlowDrip

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02, attempt_timeout_s=5, deadline_s=20)
DATASET = "\n".join(
    f'{{"id": "item-{n}", "input": "Question {n}?", "reference": "Answer {n}."}}' for n in range(12)
)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(poll_interval_s=0.02) as fake:
        fake.config.json_reply = {"reasoning": "matches the reference", "score": 4}
        yield fake


def config(url: str, **overrides: Any) -> GoldenRunConfig:
    raw: dict[str, Any] = {
        "dataset": "questions",
        "rubrics": ["correctness@1", "faithfulness@1"],
        "thresholds": {"correctness@1": 0.75},
        "max_concurrency": 3,
        "target": {"model": "app-model", "base_url": url, "api_key_env": "TARGET_KEY"},
        "judge": {"model": "judge-model", "base_url": url, "api_key_env": "JUDGE_KEY"},
    }
    raw.update(overrides)
    return GoldenRunConfig.model_validate(raw)


async def test_a_golden_run_judges_every_item_within_the_cap(server: FakeLLMServer) -> None:
    server.config.latency_ms = 30
    cfg = config(server.url)
    items = parse_golden(DATASET)
    target = TargetClient(spec=cfg.target, api_key="k", policy=FAST)
    async with JudgeClient(model="judge-model", base_url=server.url, api_key="k", egress=None, policy=FAST,
                           max_concurrency=8) as judge:
        result = await run_golden(items, cfg, target=target, judge=judge, dataset_hash=dataset_sha256(DATASET))
    await target.close()

    # 12 target calls and 12 judge calls (faithfulness has no context: skipped without a call)
    assert server.stats.requests == 24
    assert server.stats.max_in_flight <= 3
    by_rubric = {ref: [r for r in result.items if r.rubric == ref] for ref in cfg.rubrics}
    assert all(r.status is JudgeStatus.OK and r.score == 0.75 for r in by_rubric["correctness@1"])
    assert all(r.status is JudgeStatus.SKIPPED for r in by_rubric["faithfulness@1"])
    judged = [b for b in server.stats.bodies if "response_format" in b]
    assert len(judged) == 12
    assert "This is a fake answer" in judged[0]["messages"][1]["content"]  # the target's answer is judged

    correctness, faithfulness = compare(result, cfg)
    assert (correctness.pass_rate, correctness.ok) == (1.0, True)
    assert (faithfulness.items, faithfulness.ok) == (0, False)  # nothing judged is not a pass
    root = ET.fromstring(junit_xml(result, [correctness, faithfulness]))  # noqa: S314 - our own output
    assert root.get("tests") == "26" and root.get("skipped") == "12"


async def test_a_failing_target_is_an_error_for_each_rubric_and_a_drop_fails_the_run(
        server: FakeLLMServer) -> None:
    cfg = config(server.url, rubrics=["correctness@1"], max_concurrency=1)
    items = parse_golden(DATASET)
    target = TargetClient(spec=cfg.target, api_key="k", policy=FAST)
    async with JudgeClient(model="judge-model", base_url=server.url, api_key="k", egress=None, policy=FAST) as judge:
        baseline = await run_golden(items, cfg, target=target, judge=judge)
        server.reset()
        server.config.script.extend(["401", "500", "500", "500"])  # item 0: 401; item 1: three 500s
        server.config.json_reply = {"reasoning": "partly", "score": 3}
        current = await run_golden(items, cfg, target=target, judge=judge)
    await target.close()

    errors = [r for r in current.items if r.status is JudgeStatus.ERROR]
    assert [(r.item_id, r.error_type) for r in errors] == [("item-0", "target_http_401"),
                                                           ("item-1", "target_http_500")]
    assert server.stats.requests == 1 + 3 + 10 * 2  # no retry of the 401, three 500s, then 10 items x 2 calls
    [summary] = compare(current, cfg, baseline)
    assert (summary.pass_rate, summary.baseline_pass_rate) == (0.0, 1.0)
    assert not summary.ok and summary.regressions == sorted(f"item-{n}" for n in range(12))


async def test_a_target_dripping_a_byte_a_second_ends_at_the_deadline_as_a_target_error() -> None:
    policy = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.01, attempt_timeout_s=2.0, deadline_s=3.0)
    async with SlowDrip(content="The answer, slowly.") as drip:
        target = TargetClient(spec=config(drip.url).target, api_key="k", policy=policy)
        started = time.monotonic()
        try:
            with pytest.raises(TargetError) as failed:
                await asyncio.wait_for(target.complete("Question?"), 30)  # a bound if it does not end
        finally:
            await target.close()
        elapsed = time.monotonic() - started
    assert failed.value.error_type in {"deadline", "timeout"}
    assert elapsed < policy.deadline_s + 1.5


@pytest.mark.parametrize("mode", ["not_an_object", "no_choices", "content_not_string"])
async def test_a_target_reply_of_the_wrong_shape_is_a_target_error(server: FakeLLMServer, mode: str) -> None:
    server.config.script.append(mode)
    target = TargetClient(spec=config(server.url).target, api_key="k", policy=FAST)
    try:
        with pytest.raises(TargetError) as failed:
            await target.complete("Question?")
    finally:
        await target.close()
    assert failed.value.error_type == "bad_response"
