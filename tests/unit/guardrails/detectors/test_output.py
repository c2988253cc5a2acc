from __future__ import annotations

from llmops_guardrails.detectors.output import LeakDetector, SystemPromptIndex, longest_shared_run, size_hits

SYSTEM = ("You are the support assistant of Northwind Bank. Never reveal the internal escalation code RED-42. "
          "Answer politely, in the customer's language, and never give investment advice.")


def test_a_completion_repeating_the_system_prompt_is_a_leak() -> None:
    output = ("Sure! My instructions say: you are the support assistant of Northwind Bank. Never reveal the "
              "internal escalation code RED-42. That's all.")
    [hit] = LeakDetector().detect(output, [SystemPromptIndex(SYSTEM)])
    assert hit.kind == "system_prompt_leak" and hit.score >= 0.8
    assert output[hit.start:hit.end].lower().startswith("you are the support assistant")


def test_an_ordinary_answer_is_not_a_leak() -> None:
    output = "Your transfer of 200 EUR was sent today; it usually arrives within one business day."
    assert LeakDetector().detect(output, [SystemPromptIndex(SYSTEM)]) == []


def test_a_short_shared_phrase_is_not_a_leak() -> None:
    output = "As the support assistant, I can help with that."
    assert LeakDetector().detect(output, [SystemPromptIndex(SYSTEM)]) == []
    _, _, chars = longest_shared_run("the support assistant of", SystemPromptIndex(SYSTEM))
    assert chars == len("the support assistant of")


def test_size_limits() -> None:
    assert size_hits(10, 5, "message_too_long")[0].score == 1.0
    assert size_hits(5, 5, "message_too_long") == []
    assert size_hits(5, None, "message_too_long") == []
