"""`llmops eval run` options to a run config, and the comparison table (no model, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from llmops_evaluator.cli import (
    UsageError,
    build_config,
    build_parser,
    dataset_name,
    format_table,
    parse_thresholds,
    progress_line,
)
from llmops_evaluator.golden import GoldenItem, ItemResult, RubricSummary, RunResult
from llmops_evaluator.judge_client import JudgeStatus

AT = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)  # the events' and rows' times: a fixed instant, not the clock


def args(*extra: str) -> Any:
    return build_parser().parse_args(["run", "--dataset", "data/golden-v2.jsonl", *extra])


def test_thresholds_parse_and_bad_ones_say_what_is_wanted() -> None:
    assert parse_thresholds(["relevance@1=0.7", "correctness@1=1"]) == {"relevance@1": 0.7, "correctness@1": 1.0}
    for bad in ("relevance@1", "relevance@1=high", "=0.5", "relevance@1=1.5"):
        with pytest.raises(UsageError, match="RUBRIC=NUMBER"):
            parse_thresholds([bad])


def test_options_override_the_config_file_and_the_judge_defaults_to_the_target() -> None:
    config, tenant = build_config(args("--model", "m1", "--base-url", "http://127.0.0.1:8000/v1",
                                       "--threshold", "relevance@1=0.8", "--min-pass-rate", "0.9",
                                       "--tenant", "acme"), {})
    assert (config.dataset, tenant, config.rubrics) == ("golden-v2", "acme", ["relevance@1"])
    assert (config.target.model, config.target.api_key_env) == ("m1", "OPENAI_API_KEY")
    assert (config.judge.model, config.judge.base_url, config.judge.api_key_env) == \
        ("m1", "http://127.0.0.1:8000/v1", "OPENAI_API_KEY")
    assert (config.threshold("relevance@1"), config.min_pass_rate) == (0.8, 0.9)

    file_values = {"tenant": "globex", "dataset": "faq", "rubrics": ["correctness@1", "relevance@1"],
                   "thresholds": {"correctness@1": 0.75, "relevance@1": 0.5}, "max_drop": 0.02,
                   "target": {"model": "m0", "base_url": "https://gw.example/v1", "api_key_env": "GW_KEY"},
                   "judge": {"model": "judge-big", "base_url": "https://judge.example/v1", "api_key_env": "J_KEY"}}
    config, tenant = build_config(args("--model", "m2", "--threshold", "relevance@1=0.6"), file_values)
    assert (config.dataset, tenant, config.target.model, config.target.base_url) == \
        ("faq", "globex", "m2", "https://gw.example/v1")
    assert (config.judge.model, config.judge.api_key_env, config.max_drop) == ("judge-big", "J_KEY", 0.02)
    assert config.thresholds == {"correctness@1": 0.75, "relevance@1": 0.6}


def test_a_bad_configuration_is_a_usage_error_naming_the_problem() -> None:
    with pytest.raises(UsageError, match="--model and --base-url required"):
        build_config(args(), {})
    with pytest.raises(UsageError, match="max_concurrency"):
        build_config(args("--model", "m", "--base-url", "http://x/v1", "--concurrency", "0"), {})
    with pytest.raises(UsageError, match="thresholds for rubrics the run does not use"):
        build_config(args("--model", "m", "--base-url", "http://x/v1", "--threshold", "safety@1=0.5"), {})
    assert dataset_name("/tmp/My Golden Set.jsonl") == "My-Golden-Set"


def summary(rubric: str, **fields: Any) -> RubricSummary:
    values: dict[str, Any] = {"threshold": 0.75, "items": 10, "passed": 9, "errors": 0, "mean_score": 0.8125,
                              "pass_rate": 0.9, "baseline_pass_rate": None, "drop": None}
    values.update(fields)
    return RubricSummary(rubric=rubric, **values)


def test_the_comparison_table_shows_the_change_and_the_verdict() -> None:
    baseline = RunResult(run_id="00000000-0000-0000-0000-000000000001", dataset="d", dataset_sha256="x",
                         target_model="m", judge_model="j", started_at=AT, items=[])
    table = format_table([
        summary("relevance@1", baseline_pass_rate=1.0, drop=0.1, regressions=["q-3"],
                problems=["pass rate fell by 10.0% from the baseline's 100.0%; at most 5.0% is allowed"]),
        summary("safety@1", passed=10, pass_rate=1.0, baseline_pass_rate=1.0, drop=0.0),
    ], baseline=baseline)
    lines = table.splitlines()
    assert lines[0].split() == ["rubric", "items", "passed", "pass", "rate", "baseline", "change", "mean",
                                "threshold", "result"]
    assert lines[1].split()[:9] == ["relevance@1", "10", "9", "90.0%", "100.0%", "-10.0%", "0.812", "0.75", "FAIL:"]
    assert lines[2].split() == ["safety@1", "10", "10", "100.0%", "100.0%", "+0.0%", "0.812", "0.75", "ok"]
    assert lines[3] == "regressed on relevance@1 (passed in the baseline, not now): q-3"
    assert "(no baseline" in format_table([summary("relevance@1")], baseline=None)


def test_a_progress_line_per_item() -> None:
    item = GoldenItem(id="q-7", input="Why?")
    results = [ItemResult(item_id="q-7", rubric="relevance@1", status=JudgeStatus.OK, score=0.75),
               ItemResult(item_id="q-7", rubric="faithfulness@1", status=JudgeStatus.SKIPPED,
                          error_type="not_applicable"),
               ItemResult(item_id="q-7", rubric="safety@1", status=JudgeStatus.ERROR, error_type="http_500")]
    assert progress_line(7, 120, item, results) == \
        "[  7/120] q-7: relevance@1=0.75, faithfulness@1=not_applicable, safety@1=http_500"
