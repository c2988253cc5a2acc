"""Which texts skip the NER model, and that skipping it changes no result."""

from __future__ import annotations

import pytest

from llmops_guardrails.detectors.pii.detector import PiiDetector
from llmops_guardrails.detectors.pii.ner_gate import needs_ner
from llmops_guardrails.engine import PolicyEngine
from tests.unit.guardrails.detectors.pii.pii_support import ENTITIES, found


@pytest.mark.parametrize(
    ("text", "needed"),
    [
        ("What are my options?", False),
        ("How do I reset my PIN? I can't log in.", False),  # acronym, the pronoun I
        ("Can I pay on Monday?", False),
        ("Please ask Margaret about it", True),
        ("my name is jo", True),  # no capitals at all: the model finds some lower-case names
        ("Dear Sir, I moved to Berlin", True),
    ],
)
def test_needs_ner(text: str, needed: bool) -> None:
    assert needs_ner(text) is needed


def test_words_the_rules_explain_do_not_need_the_model(detector: PiiDetector) -> None:
    assert not needs_ner("Dear Sir, I moved to Berlin", [(21, 27)])
    before = detector.ner.ner_calls
    assert found(detector, "My name is Margaret Thompson") == [("PERSON", "Margaret Thompson")]
    assert detector.ner.ner_calls == before  # the context rule explained every capitalised word


def test_skipping_the_model_changes_no_result(engine: PolicyEngine, detector: PiiDetector) -> None:
    texts = ["What are my options?", "My name is Margaret Thompson", "Call 415-555-0132, ask for Peter Parker.",
             "Henrike Vogelsang\nSenior buyer\n+49 30 1234567", "i live in new zealand now"]
    always = PiiDetector(engine.ner(), entities=ENTITIES, score_threshold=0.4,
                         phone_regions=["US", "GB", "DE", "FR", "IN", "CA", "AU"], skip_ner=False)
    assert detector.detect_many(texts) == always.detect_many(texts)
