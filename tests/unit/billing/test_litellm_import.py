from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from llmops_billing.cost import price_usage
from llmops_billing.litellm_import import BadPriceFile, LiteLLMImport, load_litellm_file, parse_litellm_prices
from llmops_billing.prices import PriceCatalogue, PriceTier
from llmops_shared.contract import Usage

D = Decimal
SAMPLE = Path(__file__).parent / "data" / "litellm_sample.json"
SNAPSHOT = Path(__file__).resolve().parents[3].parent / "shared/data/pricing/model_prices_and_context_window.json"
AT = datetime(2026, 7, 24, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample() -> LiteLLMImport:
    return load_litellm_file(SAMPLE, effective_from=AT, source="sample")


def test_the_sample_imports_exact_decimal_prices(sample: LiteLLMImport) -> None:
    rows = sample.by_key()
    mini = rows[("openai", "gpt-4o-mini")]
    assert mini.input_per_token == D("0.00000015")  # 1.5e-07, exactly
    assert mini.cache_read_per_token == D("7.5E-8")
    assert mini.output_per_token == D("6E-7")
    assert mini.cache_write_per_token is None and mini.reasoning_per_token is None
    assert mini.tiers == ()
    assert mini.effective_from == AT and mini.source == "sample" and mini.tenant_id is None
    assert mini.price_version == "sample/list/openai/gpt-4o-mini@2026-07-24T00:00:00Z"
    assert all(isinstance(v, Decimal) for v in (mini.input_per_token, mini.output_per_token))


def test_cache_write_reasoning_and_cache_hit_fields_are_read(sample: LiteLLMImport) -> None:
    rows = sample.by_key()
    sonnet = rows[("anthropic", "claude-3-5-sonnet-20241022")]
    assert (sonnet.cache_read_per_token, sonnet.cache_write_per_token) == (D("3E-7"), D("0.00000375"))
    flash = rows[("gemini", "gemini-2.5-flash")]
    assert flash.reasoning_per_token == D("0.0000025")
    deepseek = rows[("deepseek", "deepseek-v4-flash")]
    assert deepseek.cache_read_per_token == D("2.8E-9")


def test_provider_prefixes_in_keys_are_normalised(sample: LiteLLMImport) -> None:
    rows = sample.by_key()
    assert rows[("azure", "gpt-4o")].model == "azure/gpt-4o"
    assert rows[("azure", "gpt-4o")].input_per_token == D("0.00000275")
    assert rows[("vertex_ai", "gemini-2.5-pro")].model == "vertex_ai/gemini-2.5-pro"
    assert ("bedrock", "claude-3-5-sonnet-20241022") in rows


def test_long_context_tiers_are_read_and_service_tiers_ignored(sample: LiteLLMImport) -> None:
    pro = sample.by_key()[("vertex_ai", "gemini-2.5-pro")]
    assert pro.tiers == (PriceTier(200_000, input_per_token=D("0.0000025"), output_per_token=D("0.000015"),
                                   cache_read_per_token=D("2.5E-7")),)


def test_request_fees_string_prices_and_embeddings(sample: LiteLLMImport) -> None:
    rows = sample.by_key()
    sonar = rows[("perplexity", "sonar")]
    assert (sonar.request_fee, sonar.input_per_token) == (D("0.005"), D("0.000001"))
    embedding = rows[("openai", "text-embedding-3-small")]
    assert embedding.output_per_token == 0 and embedding.input_per_token == D("2E-8")


def test_what_cannot_be_priced_per_token_is_skipped_with_a_reason(sample: LiteLLMImport) -> None:
    reasons = {s.key: s.reason for s in sample.skipped}
    assert set(reasons) == {"sample_spec", "gpt-image-1", "whisper-1", "half-priced-model", "broken-model",
                            "bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0"}
    assert "not a model" in reasons["sample_spec"]
    assert "image_generation" in reasons["gpt-image-1"]
    assert "no output_cost_per_token" in reasons["half-priced-model"]  # never assume a zero output price
    assert "non-negative" in reasons["broken-model"]
    assert "same prices" in reasons["bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0"]
    assert len(sample.prices) == 9


def test_a_parsed_mapping_with_floats_imports_the_same_exact_prices(sample: LiteLLMImport) -> None:
    from_floats = parse_litellm_prices(json.loads(SAMPLE.read_text()), effective_from=AT, source="sample")
    assert from_floats.prices == sample.prices


def test_imported_prices_price_usage_through_the_catalogue(sample: LiteLLMImport) -> None:
    catalogue = PriceCatalogue(sample.prices)
    price = catalogue.price_for("acme", "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", "bedrock", AT)
    assert price is not None and price.provider == "bedrock"
    cost = price_usage(Usage(input_tokens=2_000, cache_read_input_tokens=1_000, output_tokens=100), price)
    assert cost.total == D("0.0048")  # 1000 * 3e-6 + 1000 * 3e-7 + 100 * 1.5e-5
    assert catalogue.price_for("acme", "gpt-image-1", "openai", AT) is None


@pytest.mark.parametrize("raw", ["[]", "not json", '"text"'])
def test_a_file_that_is_not_a_price_map_is_refused(raw: str) -> None:
    with pytest.raises(BadPriceFile):
        parse_litellm_prices(raw, effective_from=AT, source="x")


# -- the real snapshot ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snapshot() -> LiteLLMImport:
    if not SNAPSHOT.is_file():
        pytest.fail(f"the reference price snapshot is not beside this checkout ({SNAPSHOT}): clone ../shared")
    return load_litellm_file(SNAPSHOT, effective_from=AT, source="litellm-2026-07-24")


@pytest.mark.parametrize(
    ("provider", "key", "field", "value"),
    [
        ("openai", "gpt-4o", "input_per_token", "0.0000025"),
        ("openai", "gpt-4o", "output_per_token", "0.00001"),
        ("openai", "gpt-4o", "cache_read_per_token", "0.00000125"),
        ("openai", "gpt-4o-mini", "input_per_token", "0.00000015"),
        ("openai", "gpt-4o-mini", "cache_read_per_token", "0.000000075"),
        ("openai", "o3", "output_per_token", "0.000008"),
        ("openai", "o1-2024-12-17", "input_per_token", "0.000015"),
        ("anthropic", "claude-3-7-sonnet-20250219", "cache_write_per_token", "0.00000375"),
        ("anthropic", "claude-3-7-sonnet-20250219", "cache_read_per_token", "0.0000003"),
        ("anthropic", "claude-3-opus-20240229", "cache_write_per_token", "0.00001875"),
        ("vertex_ai", "gemini-2.5-flash", "reasoning_per_token", "0.0000025"),
        ("vertex_ai", "gemini-2.0-flash", "cache_read_per_token", "0.000000025"),
        ("deepseek", "deepseek-v4-flash", "cache_read_per_token", "0.0000000028"),
        ("bedrock", "claude-sonnet-4-5-20250929", "input_per_token", "0.000003"),
    ],
)
def test_the_real_snapshot_imports_known_prices_exactly(snapshot: LiteLLMImport, provider: str, key: str,
                                                          field: str, value: str) -> None:
    assert getattr(snapshot.by_key()[(provider, key)], field) == D(value)


def test_the_real_snapshot_keeps_its_long_context_tiers(snapshot: LiteLLMImport) -> None:
    pro = snapshot.by_key()[("vertex_ai", "gemini-2.5-pro")]
    assert [t.above_input_tokens for t in pro.tiers] == [200_000]
    assert pro.tiers[0].input_per_token == D("0.0000025")
    assert pro.tiers[0].output_per_token == D("0.000015")
    sonnet = snapshot.by_key()[("anthropic", "claude-sonnet-4-5")]
    assert sonnet.tiers[0].cache_write_per_token == D("0.0000075")


def test_the_real_snapshot_imports_every_text_model_and_says_why_it_skipped_the_rest(snapshot: LiteLLMImport) -> None:
    raw = json.loads(SNAPSHOT.read_text())
    assert len(snapshot.prices) + len(snapshot.skipped) == len(raw)
    text_modes = {"chat", "completion", "responses", "embedding"}
    assert len(snapshot.prices) == sum(1 for entry in raw.values() if entry.get("mode") in text_modes)
    assert all("is not priced per text token" in s.reason for s in snapshot.skipped)
