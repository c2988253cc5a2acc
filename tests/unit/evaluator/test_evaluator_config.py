from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from llmops_evaluator.config import EvaluatorConfig, matches, sampled, selects
from llmops_shared.contract import Interaction
from tests.support.events import make_event


def config(**overrides: Any) -> EvaluatorConfig:
    raw: dict[str, Any] = {
        "id": "ev-1",
        "tenant_id": "acme",
        "rubrics": ["relevance@1"],
        "judge": {"model": "gpt-4o-mini", "base_url": "https://api.openai.com/v1", "credential": "openai"},
        "daily_spend_cap_usd": "5.00",
    }
    raw.update(overrides)
    return EvaluatorConfig.model_validate(raw)


def interaction(**overrides: Any) -> Interaction:
    return Interaction.model_validate({**make_event(**overrides), "tenant_id": overrides.get("tenant_id", "acme")})


# -- sampling ---------------------------------------------------------------------------------------

IDS = [uuid.UUID(int=n * 7919 + 12345) for n in range(4_000)]


def test_sampling_depends_on_the_event_id_only() -> None:
    first = [sampled(i, 0.3) for i in IDS]
    again = [sampled(i, 0.3) for i in IDS]
    as_text = [sampled(str(i), 0.3) for i in IDS]
    assert first == again == as_text


def test_two_evaluators_with_the_same_rate_score_the_same_subset() -> None:
    a, b = config(id="ev-a", sample_rate=0.25), config(id="ev-b", sample_rate=0.25, rubrics=["safety@1"])
    events = [interaction(event_id=str(i)) for i in IDS[:500]]
    assert [selects(a, e) for e in events] == [selects(b, e) for e in events]


def test_a_lower_rate_samples_a_subset_of_a_higher_one() -> None:
    low = {i for i in IDS if sampled(i, 0.1)}
    high = {i for i in IDS if sampled(i, 0.5)}
    assert low < high


def test_the_sampled_share_is_close_to_the_rate() -> None:
    share = sum(sampled(i, 0.2) for i in IDS) / len(IDS)
    assert 0.17 < share < 0.23


def test_rates_zero_and_one() -> None:
    assert not any(sampled(i, 0.0) for i in IDS[:100])
    assert all(sampled(i, 1.0) for i in IDS[:100])


# -- filters ----------------------------------------------------------------------------------------


def test_empty_filters_accept_an_llm_answer_of_the_tenant() -> None:
    assert matches(config(), interaction())


def test_another_tenants_interaction_never_matches() -> None:
    assert not matches(config(), interaction(tenant_id="other"))


def test_a_disabled_evaluator_matches_nothing() -> None:
    assert not matches(config(enabled=False), interaction())


@pytest.mark.parametrize(
    ("filters", "event", "expected"),
    [
        ({"apps": ["support-bot"]}, {}, True),
        ({"apps": ["sales-bot"]}, {}, False),
        ({"models": ["gpt-4o-mini"]}, {}, True),
        ({"models": ["gpt-4o-mini-2024-07-18"]}, {"response_model": "gpt-4o-mini-2024-07-18"}, True),
        ({"models": ["claude-3-haiku"]}, {}, False),
        ({"prompt_versions": ["greeting"]}, {"prompt": {"name": "greeting", "version": "3"}}, True),
        ({"prompt_versions": ["greeting@3"]}, {"prompt": {"name": "greeting", "version": "3"}}, True),
        ({"prompt_versions": ["greeting@2"]}, {"prompt": {"name": "greeting", "version": "3"}}, False),
        ({"prompt_versions": [{"name": "greeting", "version": "3"}]}, {"prompt": {"name": "greeting", "version": "3"}},
         True),
        ({"prompt_versions": ["greeting"]}, {}, False),
        ({"tags": ["test"]}, {}, True),
        ({"tags": ["test", "beta"]}, {"tags": ["test"]}, False),
        ({"tags": ["test", "beta"]}, {"tags": ["beta", "x", "test"]}, True),
        ({"environments": ["test"]}, {}, True),
        ({"environments": ["production"]}, {}, False),
    ],
)
def test_filters(filters: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(config(**filters), interaction(**event)) is expected


@pytest.mark.parametrize(
    "event",
    [
        {"tags": ["llmops:judge"]},  # the judge's own usage event
        {"span_kind": "retriever"},
        {"status": "error", "error": {"type": "timeout"}},
        {"output": None},
        {"output": ""},
    ],
)
def test_only_answers_of_llm_calls_are_judged(event: dict[str, Any]) -> None:
    assert not matches(config(), interaction(**event))


# -- validation -------------------------------------------------------------------------------------


def test_the_cap_is_a_decimal() -> None:
    assert config().daily_spend_cap_usd == Decimal("5.00")


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"rubrics": ["relevance@7"]}, "unknown version of rubric 'relevance'"),
        ({"rubrics": ["tone@1"]}, "unknown rubric 'tone@1'"),
        ({"rubrics": ["relevance"]}, "rubrics.0"),
        ({"rubrics": []}, "rubrics"),
        ({"rubrics": ["safety@1", "safety@1"]}, "each name@version once"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"daily_spend_cap_usd": "-1"}, "daily_spend_cap_usd"),
        ({"judge": {"model": "m", "base_url": "https://x/v1", "credential": "sk live"}}, "judge.credential"),
        ({"judge": {"model": "m", "base_url": "https://x/v1"}}, "judge.credential\n  Field required"),
        ({"judge": {"model": "m", "base_url": "https://u:p@x/v1", "credential": "c"}}, "must not carry credentials"),
        ({"judge": {"model": "m", "base_url": "ftp://x", "credential": "c"}}, "http(s) URL"),
        # A tenant never names a variable of the worker's environment (issue 11: LLMOPS_DATABASE_URL could be
        # sent as a bearer token to the tenant's own server).
        ({"judge": {"model": "m", "base_url": "https://attacker.example/v1", "credential": "c",
                    "api_key_env": "LLMOPS_DATABASE_URL"}}, "judge.api_key_env\n  Value error, not accepted"),
        ({"custom_rubrics": [{"name": "relevance", "criteria": "c", "steps": ["s"]}]}, "built-in"),
        ({"rubrics": ["tone@2"], "custom_rubrics": [{"name": "tone", "criteria": "c", "steps": ["s"]}]},
         "at version 1, not 2"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_configs_are_refused_with_the_reason(overrides: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as info:
        config(**overrides)
    assert words in str(info.value)


def test_a_custom_rubric_resolves() -> None:
    c = config(rubrics=["relevance@1", "tone@2"],
               custom_rubrics=[{"name": "tone", "version": 2, "criteria": "Polite and warm.",
                                "steps": ["Read the answer.", "Judge its tone."]}])
    assert c.rubric_refs() == [("relevance", 1), ("tone", 2)]


def test_a_config_round_trips_through_json() -> None:
    c = config(prompt_versions=["greeting@3"], tags=["beta"])
    assert EvaluatorConfig.model_validate_json(c.model_dump_json()) == c
