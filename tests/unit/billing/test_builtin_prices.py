from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from llmops_billing.builtin_prices import (
    BASELINE_EFFECTIVE_FROM,
    SNAPSHOT_SOURCE,
    builtin_catalogue,
    builtin_imports,
    builtin_prices,
)
from llmops_billing.litellm_import import load_litellm_file

D = Decimal
SNAPSHOT = Path(__file__).resolve().parents[3].parent / "shared/data/pricing/model_prices_and_context_window.json"
NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("gpt-4.1", "openai"), ("gpt-4.1-mini", "openai"),
        ("gpt-4.1-nano", "openai"), ("o1", "openai"), ("o3", "openai"), ("o3-mini", "openai"),
        ("o4-mini", "openai"), ("gpt-5", "openai"),
        ("claude-3-5-sonnet-20241022", "anthropic"), ("claude-3-5-sonnet-latest", "anthropic"),
        ("claude-3-5-haiku-20241022", "anthropic"), ("claude-3-7-sonnet-20250219", "anthropic"),
        ("claude-sonnet-4-20250514", "anthropic"), ("claude-opus-4-20250514", "anthropic"),
        ("claude-haiku-4-5", "anthropic"), ("claude-sonnet-4-5", "anthropic"),
        ("gemini-1.5-pro", "gemini"), ("gemini-1.5-flash-002", "gemini"), ("gemini-2.0-flash", "gemini"),
        ("gemini-2.5-flash", "vertex_ai"), ("gemini-2.5-pro", "gemini"),
        ("grok-4.3", "xai"), ("deepseek-chat", "deepseek"), ("deepseek-reasoner", "deepseek"),
    ],
)
def test_the_built_in_list_prices_the_major_providers_current_models(model: str, provider: str) -> None:
    found = builtin_catalogue().price_for(None, model, provider, NOW)
    assert found is not None, model
    assert found.input_per_token > 0 and found.output_per_token > 0


@pytest.mark.parametrize("model", ["llama-3.1-405b-instruct", "gpt-4o-mini-2099-13-01-custom", "my-finetune"])
def test_models_it_does_not_know_stay_unpriced(model: str) -> None:
    assert builtin_catalogue().price_for(None, model, "openai", NOW) is None


def test_every_built_in_row_is_a_baseline_list_price() -> None:
    prices = builtin_prices()
    assert len(prices) > 150
    assert all(p.effective_from == BASELINE_EFFECTIVE_FROM and p.tenant_id is None for p in prices)
    snapshot, manual = builtin_imports()
    assert snapshot.skipped == () and manual.skipped == ()


def test_the_manual_list_holds_only_models_the_snapshot_lacks() -> None:
    snapshot, manual = builtin_imports()
    assert {p.model_key for p in manual.prices} == {
        "claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20241022", "claude-3-5-haiku-20241022",
        "gemini-1.5-pro", "gemini-1.5-flash",
    }
    assert not {p.model_key for p in manual.prices} & {p.model_key for p in snapshot.prices}


def test_the_built_in_list_matches_the_snapshot_it_was_made_from() -> None:
    if not SNAPSHOT.is_file():
        pytest.fail(f"the reference price snapshot is not beside this checkout ({SNAPSHOT}): clone ../shared")
    fresh = load_litellm_file(SNAPSHOT, effective_from=BASELINE_EFFECTIVE_FROM, source=SNAPSHOT_SOURCE)
    built_in, _manual = builtin_imports()
    assert built_in.prices == fresh.prices
    raw = json.loads(SNAPSHOT.read_text())
    mini = builtin_catalogue().price_for(None, "gpt-4o-mini", "openai", NOW)
    assert mini is not None and mini.input_per_token == D(str(raw["gpt-4o-mini"]["input_cost_per_token"]))
