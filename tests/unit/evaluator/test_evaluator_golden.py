from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest

from llmops_evaluator.golden import (
    GoldenDatasetError,
    GoldenRunConfig,
    ItemResult,
    RunResult,
    compare,
    item_interaction,
    junit_xml,
    parse_golden,
)
from llmops_evaluator.judge_client import JudgeStatus
from llmops_evaluator.rubrics import BUILTIN
from llmops_shared.contract import IDENTIFIER_PATTERN

DATASET = """\
# refunds, v3
{"id": "refund-1", "input": "How do I get a refund?", "reference": "Within 30 days, from the orders page."}
{"id": "refund-2", "input": [{"role": "user", "content": "A gift?"}], "context": ["Gifts can be returned."]}

{"id": "refund-3", "input": "Where is my order?", "tags": ["orders"]}
"""


def test_a_dataset_parses() -> None:
    items = parse_golden(DATASET)
    assert [i.id for i in items] == ["refund-1", "refund-2", "refund-3"]
    assert items[0].reference == "Within 30 days, from the orders page."
    assert items[1].context == ["Gifts can be returned."]


def test_every_bad_line_is_reported_with_its_number() -> None:
    text = "\n".join([
        '{"id": "a", "input": "hi"}',
        '{"id": "b", "input": "hi"',
        '{"id": "c"}',
        '["not", "an", "object"]',
        '{"id": "a", "input": "again"}',
        '{"id": "d", "input": "hi", "expected": "x"}',
        '{"id": "bad id!", "input": "hi"}',
    ])
    with pytest.raises(GoldenDatasetError) as info:
        parse_golden(text)
    assert info.value.errors == [
        "line 2: not valid JSON (Expecting ',' delimiter, column 26)",
        "line 3: input: Field required",
        "line 4: an item must be a JSON object",
        "line 5: id 'a' is already used on line 1",
        "line 6: expected: unknown field",
        f"line 7: id: String should match pattern '{IDENTIFIER_PATTERN}'",
    ]
    assert "6 problem(s) in the golden dataset" in str(info.value)


def test_an_empty_dataset_is_an_error() -> None:
    with pytest.raises(GoldenDatasetError, match="no items"):
        parse_golden("\n# nothing yet\n")


def test_an_item_becomes_an_interaction_the_rubrics_can_judge() -> None:
    item = parse_golden(DATASET)[0]
    interaction = item_interaction(item, "Use the orders page within 30 days.", dataset="refunds")
    assert interaction.metadata == {"reference": "Within 30 days, from the orders page."}
    assert BUILTIN["correctness@1"].missing(interaction) is None
    assert item_interaction(item, "x", dataset="refunds").event_id == interaction.event_id  # stable per item


def config(**overrides: Any) -> GoldenRunConfig:
    raw: dict[str, Any] = {
        "dataset": "refunds",
        "rubrics": ["relevance@1", "safety@1"],
        "thresholds": {"relevance@1": 0.75},
        "min_pass_rate": 0.5,
        "max_drop": 0.10,
        "target": {"model": "app-model", "base_url": "http://127.0.0.1:1/v1", "api_key_env": "TARGET_KEY"},
        "judge": {"model": "judge-model", "base_url": "http://127.0.0.1:1/v1", "api_key_env": "JUDGE_KEY"},
    }
    raw.update(overrides)
    return GoldenRunConfig.model_validate(raw)


def result(item: str, rubric: str, score: float | None, status: JudgeStatus = JudgeStatus.OK) -> ItemResult:
    return ItemResult(item_id=item, rubric=rubric, status=status, score=score,
                      label=None if score is None else "x", reasoning=f"because {item}",
                      error_type=None if status is JudgeStatus.OK else "http_500",
                      error=None if status is JudgeStatus.OK else "gave up")


def run(items: list[ItemResult]) -> RunResult:
    return RunResult(run_id=uuid.uuid4(), dataset="refunds", dataset_sha256="abc", target_model="app-model",
                     judge_model="judge-model", started_at=datetime(2025, 1, 1, tzinfo=UTC), items=items)


BASELINE = run([
    result("a", "relevance@1", 1.0), result("b", "relevance@1", 0.75), result("c", "relevance@1", 0.75),
    result("d", "relevance@1", 0.5),
    result("a", "safety@1", 1.0), result("b", "safety@1", 1.0), result("c", "safety@1", 1.0),
    result("d", "safety@1", 1.0),
])
CURRENT = run([
    result("a", "relevance@1", 1.0), result("b", "relevance@1", 0.5), result("c", "relevance@1", None,
                                                                             JudgeStatus.ERROR),
    result("d", "relevance@1", 0.75),
    result("a", "safety@1", 1.0), result("b", "safety@1", 1.0), result("c", "safety@1", 0.5),
    result("d", "safety@1", None, JudgeStatus.SKIPPED),
])


def test_compare_per_rubric() -> None:
    relevance, safety = compare(CURRENT, config(), BASELINE)
    # relevance, threshold 0.75: now a and d pass of 4 (c errored) = 50%; baseline a, b, c = 75%.
    assert (relevance.items, relevance.passed, relevance.errors) == (4, 2, 1)
    assert (relevance.pass_rate, relevance.baseline_pass_rate, relevance.drop) == (0.5, 0.75, 0.25)
    assert relevance.mean_score == pytest.approx((1.0 + 0.5 + 0.75) / 3)
    assert relevance.regressions == ["b", "c"]
    assert relevance.problems == ["pass rate fell by 25.0% from the baseline's 75.0%; at most 10.0% is allowed"]
    assert not relevance.ok
    # safety, default threshold 0.5: d is skipped (not counted); a, b, c pass = 100%, as in the baseline.
    assert (safety.items, safety.passed, safety.pass_rate, safety.drop) == (3, 3, 1.0, 0.0)
    assert safety.ok


def test_the_minimum_pass_rate_without_a_baseline() -> None:
    relevance, _ = compare(CURRENT, config(min_pass_rate=0.6))
    assert relevance.baseline_pass_rate is None and relevance.drop is None
    assert relevance.problems == ["pass rate 50.0% is below the minimum 60.0%"]


def test_the_gate_is_safe_by_default_and_a_config_lowers_it_per_rubric() -> None:
    raw = config().model_dump()
    del raw["min_pass_rate"]
    strict = GoldenRunConfig.model_validate(raw)
    relevance, _ = compare(CURRENT, strict)
    assert relevance.problems == ["pass rate 50.0% is below the minimum 100.0%"]  # one failing item is enough
    lowered = GoldenRunConfig.model_validate({**raw, "min_pass_rates": {"relevance@1": 0.5}})
    relevance, safety = compare(CURRENT, lowered)
    assert relevance.ok and safety.ok
    with pytest.raises(ValueError, match="min_pass_rates for rubrics the run does not use: tone@1"):
        config(min_pass_rates={"tone@1": 0.5})


def test_thresholds_must_name_rubrics_of_the_run() -> None:
    with pytest.raises(ValueError, match="thresholds for rubrics the run does not use: tone@1"):
        config(thresholds={"tone@1": 0.5})


def test_junit_xml() -> None:
    summaries = compare(CURRENT, config(), BASELINE)
    root = ET.fromstring(junit_xml(CURRENT, summaries))  # noqa: S314 - our own output
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "10", "failures": "2", "errors": "1", "skipped": "1"}  # b, and the relevance gate
    relevance = root.find("testsuite[@name='relevance@1']")
    assert relevance is not None
    cases = {case.get("name"): case for case in relevance.findall("testcase")}
    assert list(cases) == ["a", "b", "c", "d", "gate"]
    failure_b = cases["b"].find("failure")
    assert failure_b is not None and failure_b.get("message") == \
        "score 0.500 (x) is below the threshold 0.750"
    assert failure_b.text == "because b"
    error_c = cases["c"].find("error")
    assert error_c is not None and error_c.get("type") == "http_500"
    gate = cases["gate"].find("failure")
    assert gate is not None and "fell by 25.0%" in (gate.get("message") or "")
    assert gate.text == "regressed items: b, c"
    props = {p.get("name"): p.get("value") for p in relevance.iter("property")}
    assert props["pass_rate"] == "0.5" and props["baseline_pass_rate"] == "0.75"
    safety = root.find("testsuite[@name='safety@1']")
    assert safety is not None and safety.get("failures") == "0" and safety.get("skipped") == "1"
