"""Which texts skip the NER model, and that skipping it changes no result."""

from __future__ import annotations

import pytest

from llmops_guardrails.detectors.pii.detector import PiiDetector
from llmops_guardrails.detectors.pii.ner_gate import MIN_WINDOW, needs_ner, ner_windows
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
        # a sentence's first word that is no known name, and no capitalised word after it
        ("Ticket 12-ab: hello, my card was charged twice. Context: receipt voucher.", False),
        ("Answer 3: thanks for the details.", False),
        ("Will you call me back?", False),  # a first name, but a common opener
        ("Margaret called yesterday.", True),  # a known first name opening a sentence
        ("Yefremova Faina wrote back.", True),  # two capitalised words: could be a name
        # capitals inside a token with digits (an API key) are not words
        ("the deploy fails with token ghp_PglOU3shVv5UQmtsWWrprhZNlwse0000 and I do not know why", False),
        ("i met anna in town", True),  # no capitals: a known first name
        ("i paid it back to rose", True),  # "rose" is also a first name: the model decides
        ("my order is late, where is it", False),
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


def test_windows_are_the_sentences_around_candidates() -> None:
    filler = "The order was shipped on time and the box arrived in good shape. " * 6
    text = filler + "Yesterday I talked to Margaret about the refund. " + filler
    windows = ner_windows(text)
    assert len(windows) == 1
    start, end = windows[0]
    assert start <= text.index("Margaret") < end
    assert MIN_WINDOW <= end - start < len(text) / 2
    assert not ner_windows(filler + filler)


def test_windows_cover_the_whole_text_when_candidates_are_everywhere() -> None:
    text = "Anna wrote to Ben. Ben wrote to Carla. Carla wrote to Anna."
    assert ner_windows(text) == [(0, len(text))]


def test_entities_found_in_a_window_keep_their_offsets_in_the_text(detector: PiiDetector) -> None:
    filler = "The order was shipped on time and the box arrived in good shape. " * 8
    text = filler + "Please ask Margaret Thompson in Berlin about it. " + filler
    got = found(detector, text)
    assert ("PERSON", "Margaret Thompson") in got
    assert ("LOCATION", "Berlin") in got
