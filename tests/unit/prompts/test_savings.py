"""Spend-less recommendations on synthetic models: a cheaper model judged as good is recommended with its
monthly saving; one judged worse, or without enough scores, is not."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from llmops_prompts.savings import ModelUse, model_recommendations


def use(model: str, calls: int, cost_per_call: float, mean_score: float, scores: int = 200) -> ModelUse:
    rng = np.random.default_rng(zlib.crc32(model.encode()))  # a fixed seed per model
    judged = np.clip(rng.normal(mean_score, 0.1, scores), 0, 1)
    return ModelUse(model, calls, cost_per_call * calls, calls, list(judged))


def test_a_cheaper_model_not_worse_is_recommended_with_the_monthly_saving() -> None:
    groups = {("bot", "answer"): [use("gpt-4o", 3_000, 0.01, 0.80), use("gpt-4o-mini", 1_000, 0.001, 0.80)]}
    [row] = model_recommendations(groups, days=10, margin=0.05)
    rec = row["recommendation"]
    assert isinstance(rec, dict) and (rec["replace"], rec["with"]) == ("gpt-4o", "gpt-4o-mini")
    assert rec["monthly_saving"] == pytest.approx(3_000 / 10 * 30 * 0.009)
    assert [m["model"] for m in row["models"]] == ["gpt-4o", "gpt-4o-mini"]  # type: ignore[union-attr]


def test_a_cheaper_model_judged_worse_or_unknown_is_not_recommended() -> None:
    worse = {("bot", "answer"): [use("gpt-4o", 3_000, 0.01, 0.85), use("gpt-4o-mini", 1_000, 0.001, 0.70)]}
    assert model_recommendations(worse, days=10)[0]["recommendation"] is None
    unknown = {("bot", ""): [use("gpt-4o", 3_000, 0.01, 0.85), use("gpt-4o-mini", 1_000, 0.001, 0.9, scores=5)]}
    [row] = model_recommendations(unknown, days=10)
    assert row["recommendation"] is None and row["prompt"] is None
