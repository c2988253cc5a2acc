from __future__ import annotations

import pytest

from llmops_billing.normalise import (
    candidate_keys,
    normalise_model,
    normalise_provider,
    provider_of_prefix,
    snapshot_order,
    undated,
)


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4o", "gpt-4o"),
        ("  GPT-4o-Mini ", "gpt-4o-mini"),
        ("openai/gpt-4o", "gpt-4o"),
        ("azure/gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        ("gemini/gemini-2.0-flash", "gemini-2.0-flash"),
        ("vertex_ai/gemini-2.5-pro", "gemini-2.5-pro"),
        ("models/gemini-1.5-pro-002", "gemini-1.5-pro-002"),
        ("publishers/google/models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet-20241022"),
        ("bedrock/us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet-20250219"),
        ("eu.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4-20250514"),
        ("vertex_ai/claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-20241022"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4-20250514"),
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("Claude-Sonnet-4.5", "claude-sonnet-4-5"),
        ("gemini-2.5-pro", "gemini-2.5-pro"),  # dots stay where the provider spells them
        ("gpt-4.1-mini", "gpt-4.1-mini"),
        ("deepseek-v3", "deepseek-v3"),  # not a Bedrock -vN:M suffix
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "ft:gpt-4o-mini-2024-07-18:acme::abc123"),
    ],
)
def test_model_names_normalise_to_one_key(model: str, key: str) -> None:
    assert normalise_model(model) == key


@pytest.mark.parametrize(
    ("key", "base"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("gpt-4-0613", "gpt-4"),
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash-preview"),
        ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite-preview"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("gpt-4o", None),
        ("o1", None),
        ("gpt-4o-2024-13-40", None),  # not a date
        ("gpt-4-1399", None),  # not a month and day
        ("deepseek-v3-2-251201", None),
        ("llama-3.1-405", None),  # a size, not a Vertex version
        ("claude-opus-4-1", None),
    ],
)
def test_undated_strips_snapshot_suffixes_only(key: str, base: str | None) -> None:
    assert undated(key) == base


def test_snapshots_order_newest_last() -> None:
    keys = ["gpt-4o-2024-05-13", "gpt-4o-2024-11-20", "gpt-4o-2024-08-06"]
    oldest_first = sorted(keys, key=lambda k: snapshot_order(k) or (0, 0, 0))
    assert oldest_first == ["gpt-4o-2024-05-13", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20"]
    assert snapshot_order("gpt-4o") is None
    assert snapshot_order("claude-3-5-sonnet-latest") is None


def test_lookup_tries_exact_then_normalised_then_undated() -> None:
    assert candidate_keys("OpenAI/GPT-4o-2024-08-06") == ["openai/gpt-4o-2024-08-06", "gpt-4o-2024-08-06", "gpt-4o"]
    assert candidate_keys("gpt-4o") == ["gpt-4o"]
    assert candidate_keys("claude-3-7-sonnet-latest") == ["claude-3-7-sonnet-latest", "claude-3-7-sonnet"]


@pytest.mark.parametrize(
    ("provider", "name"),
    [
        ("OpenAI", "openai"),
        ("azure_openai", "azure"),
        ("vertex_ai-language-models", "vertex_ai"),
        ("google", "gemini"),
        ("bedrock_converse", "bedrock"),
        ("x-ai", "xai"),
        ("  Anthropic ", "anthropic"),
        ("some-new-lab", "some-new-lab"),
        (None, ""),
    ],
)
def test_provider_names_normalise(provider: str | None, name: str) -> None:
    assert normalise_provider(provider) == name


def test_a_provider_prefix_names_the_provider() -> None:
    assert provider_of_prefix("azure/gpt-4o") == "azure"
    assert provider_of_prefix("bedrock/anthropic.claude-3-haiku") == "bedrock"
    assert provider_of_prefix("gpt-4o") == ""
    assert provider_of_prefix("models/gemini-1.5-pro") == ""  # a path, not a provider
