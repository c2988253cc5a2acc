from __future__ import annotations

import json
import re
from typing import Any

import pytest

from llmops_evaluator.cache import judgment_key
from llmops_evaluator.rubrics import (
    BUILTIN,
    MAX_SECTION_CHARS,
    CustomRubricSpec,
    InvalidJudgment,
    Rubric,
    custom_rubric,
    repair_messages,
    resolve_rubric,
    storable_text,
)
from llmops_shared.contract import Interaction
from tests.support.events import make_event


def interaction(**overrides: Any) -> Interaction:
    return Interaction.model_validate({**make_event(**overrides), "tenant_id": "acme"})


RELEVANCE = BUILTIN["relevance@1"]
SAFETY = BUILTIN["safety@1"]


def test_the_built_in_rubrics() -> None:
    assert sorted(BUILTIN) == ["correctness@1", "faithfulness@1", "relevance@1", "safety@1"]


@pytest.mark.parametrize(
    ("rubric", "score", "normalised", "label"),
    [
        (RELEVANCE, 1, 0.0, "irrelevant"),
        (RELEVANCE, 2, 0.25, "mostly_irrelevant"),
        (RELEVANCE, 3, 0.5, "partially_relevant"),
        (RELEVANCE, 5, 1.0, "relevant"),
        (SAFETY, 1, 0.0, "unsafe"),
        (SAFETY, 2, 0.5, "borderline"),
        (SAFETY, 3, 1.0, "safe"),
    ],
)
def test_scores_are_normalised_to_0_1_with_a_label(rubric: Rubric, score: int, normalised: float, label: str) -> None:
    assert rubric.normalise(score) == normalised
    assert rubric.label(score) == label


def test_a_valid_answer_parses() -> None:
    judgment = RELEVANCE.parse('{"reasoning": "answers the question", "score": 4}')
    assert (judgment.score, judgment.reasoning) == (4, "answers the question")


def test_an_answer_in_a_code_fence_parses() -> None:
    assert RELEVANCE.parse('```json\n{"reasoning": "ok", "score": 2}\n```').score == 2


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "empty"),
        ("   ", "empty"),
        ("this is not JSON at all", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"reasoning": "x"}', "score: Field required"),
        ('{"reasoning": "x", "score": 6}', "score must be an integer from 1 to 5"),
        ('{"reasoning": "x", "score": 0}', "score must be an integer from 1 to 5"),
        ('{"reasoning": "x", "score": "high"}', "score"),
        ('{"reasoning": "x", "score": 3, "label": "good"}', "label: Extra inputs are not permitted"),
    ],
)
def test_invalid_answers_say_why(content: str | None, words: str) -> None:
    with pytest.raises(InvalidJudgment) as info:
        RELEVANCE.parse(content)
    assert words in str(info.value)


def test_safety_has_its_own_scale() -> None:
    with pytest.raises(InvalidJudgment, match="from 1 to 3"):
        SAFETY.parse('{"reasoning": "x", "score": 4}')


def test_the_structured_output_format_is_the_models_json_schema() -> None:
    fmt = RELEVANCE.json_schema_format()
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "relevance_v1_judgment"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == ["reasoning", "score"]
    assert list(schema["properties"]) == ["reasoning", "score"]  # reasoning first, then the score
    assert "1 (irrelevant) to 5 (relevant)" in schema["properties"]["score"]["description"]


def test_messages_carry_the_criterion_the_input_and_the_answer() -> None:
    messages = RELEVANCE.render(interaction())
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "relevance@1" in messages[0]["content"] and "JSON" in messages[0]["content"]
    assert "<input>\n[system] You are a helpful support agent.\n[user] Where is my order?\n</input>" \
        in messages[1]["content"]
    assert messages[1]["content"].endswith("<answer>\nIt ships today.\n</answer>")


def test_faithfulness_needs_context_and_gets_it_from_metadata() -> None:
    rubric = BUILTIN["faithfulness@1"]
    assert rubric.missing(interaction()) == "no context (metadata.context)"
    with_context = interaction(metadata={"context": ["Orders ship in 2 days.", "Returns are free."]})
    assert rubric.missing(with_context) is None
    assert "<context>\n[1] Orders ship in 2 days.\n\n[2] Returns are free.\n</context>" \
        in rubric.render(with_context)[1]["content"]


def test_correctness_needs_a_reference() -> None:
    rubric = BUILTIN["correctness@1"]
    assert rubric.missing(interaction()) == "no reference (metadata.reference)"
    with_ref = interaction(metadata={"reference": "It ships tomorrow."})
    assert rubric.missing(with_ref) is None
    assert "<reference>\nIt ships tomorrow.\n</reference>" in rubric.render(with_ref)[1]["content"]


def test_safety_needs_nothing_but_the_answer() -> None:
    assert SAFETY.missing(interaction(input=None)) is None
    assert "<input>" not in SAFETY.render(interaction(input=None))[1]["content"]


def test_long_texts_are_truncated_in_the_middle() -> None:
    long = "a" * (MAX_SECTION_CHARS * 2)
    content = RELEVANCE.render(interaction(output=long))[1]["content"]
    assert f"[... {MAX_SECTION_CHARS} characters left out ...]" in content
    assert len(content) < 2 * MAX_SECTION_CHARS


def test_a_custom_g_eval_rubric() -> None:
    spec = CustomRubricSpec(name="tone", version=3, criteria="Polite and warm.",
                            steps=["Read the answer.", "Judge its tone."], scale_min=0, scale_max=2,
                            labels=["rude", "neutral", "warm"])
    rubric = custom_rubric(spec)
    assert rubric.ref == "tone@3"
    assert rubric.normalise(1) == 0.5 and rubric.label(2) == "warm"
    system = rubric.render(interaction())[0]["content"]
    assert "Polite and warm." in system and "1. Read the answer.\n2. Judge its tone." in system
    assert "0 = rude, 1 = neutral, 2 = warm" in system
    assert resolve_rubric("tone@3", [spec]) == rubric


def test_the_repair_sends_back_the_bad_answer_and_the_problem() -> None:
    messages = RELEVANCE.render(interaction())
    repaired = repair_messages(messages, "not json", "the answer is not JSON")
    assert repaired[:2] == messages
    assert repaired[2] == {"role": "assistant", "content": "not json"}
    assert repaired[3]["role"] == "user" and "the answer is not JSON" in repaired[3]["content"]


# -- cache keys -------------------------------------------------------------------------------------

PARAMS = {"temperature": 0.0, "max_tokens": 512, "seed": None}


def key(rubric: Rubric = RELEVANCE, model: str = "gpt-4o-mini", params: dict[str, Any] | None = None,
        event: Interaction | None = None) -> str:
    messages = rubric.render(event or interaction())
    return judgment_key(judge_model=model, rubric=rubric, messages=messages, parameters=params or PARAMS)


def test_identical_judgments_have_one_key() -> None:
    assert key() == key(event=interaction())  # event ids differ, the judged text does not
    assert len(key()) == 64


def test_a_new_rubric_version_changes_the_key() -> None:
    v2 = Rubric(name="relevance", version=2, criteria=RELEVANCE.criteria, steps=RELEVANCE.steps,
                labels=RELEVANCE.labels)
    assert key(v2) != key()


def test_the_model_parameters_and_inputs_change_the_key() -> None:
    assert key(model="gpt-4o") != key()
    assert key(params={**PARAMS, "temperature": 0.5}) != key()
    assert key(event=interaction(output="It shipped yesterday.")) != key()


def test_the_key_is_canonical() -> None:
    assert key(params={"seed": None, "max_tokens": 512, "temperature": 0.0}) == key()
    assert json.loads(json.dumps(PARAMS)) == PARAMS


@pytest.mark.parametrize(("content", "words"), [
    ({"reasoning": "x", "score": 3}, "the answer is a dict, not text"),
    (["x"], "the answer is a list, not text"),
    (3, "the answer is a int, not text"),
    ('{"reasoning": "x", "score": ' + "9" * 5000 + "}", "cannot be read (ValueError)"),
    ("[" * 100_000 + "]" * 100_000, "cannot be read (RecursionError)"),
])
def test_whatever_the_content_parsing_raises_only_invalid_judgment(content: object, words: str) -> None:
    with pytest.raises(InvalidJudgment, match=re.escape(words)):
        RELEVANCE.parse(content)


def test_the_reasoning_keeps_no_nul_control_character_or_lone_surrogate() -> None:
    answer = json.dumps({"reasoning": "a\u0000b\u001fc\ud800d\te\nf", "score": 3})
    judgment = RELEVANCE.parse(answer)
    assert judgment.reasoning == "a\ufffdb\ufffdc\ufffdd\te\nf"
    assert storable_text("plain text, \t tab and \n newline") == "plain text, \t tab and \n newline"
