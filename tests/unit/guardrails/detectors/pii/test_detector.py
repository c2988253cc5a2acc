"""The PII detector as a whole: what it finds and avoids, recognizer set-up, batches, presidio's own path."""

from __future__ import annotations

import pytest

from llmops_guardrails.detectors.pii import PiiDetector, build_recognizers
from llmops_guardrails.detectors.pii.detector import _PRECONDITIONS
from llmops_guardrails.detectors.pii.patterns import CardNumberRecognizer, PhoneNumberRecognizer, luhn_ok
from llmops_guardrails.engine import PolicyEngine

ENTITIES = ["PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"]


@pytest.fixture(scope="module")
def detector(engine: PolicyEngine) -> PiiDetector:
    return PiiDetector(engine.ner(), entities=ENTITIES, score_threshold=0.4, phone_regions=["US", "GB", "DE"])


def kinds(detector: PiiDetector, text: str) -> list[tuple[str, str]]:
    return [(h.kind, text[h.start:h.end]) for h in detector.detect(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe@example.co.uk please", ("EMAIL_ADDRESS", "jane.doe@example.co.uk")),
        ("call me on +1 415-555-0132 tomorrow", ("PHONE_NUMBER", "+1 415-555-0132")),
        ("my office phone: 030 901820", ("PHONE_NUMBER", "030 901820")),
        ("card 4111 1111 1111 1111 expires soon", ("CREDIT_CARD", "4111 1111 1111 1111")),
        ("Mastercard 2-series: 2223000048400011", ("CREDIT_CARD", "2223000048400011")),
        ("IBAN GB33BUKB20201555555555 for the transfer", ("IBAN_CODE", "GB33BUKB20201555555555")),
        ("his social security number is 536-90-4399", ("US_SSN", "536-90-4399")),
        ("server at 192.168.10.24 is down", ("IP_ADDRESS", "192.168.10.24")),
        ("My name is Margaret Thompson and I need help", ("PERSON", "Margaret Thompson")),
    ],
)
def test_pii_is_found(detector: PiiDetector, text: str, expected: tuple[str, str]) -> None:
    assert expected in kinds(detector, text)


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 expires soon",  # fails Luhn
        "order 1234567890123 shipped",  # 13 digits, fails Luhn
        "meeting on 2024-05-17 10:30",  # a date and a time, not a phone
        "version 3.11.7 released",
        "the invalid SSN 000-12-3456 stays",
        "email me at nobody@localhost",  # no public suffix
        "What are my options?",
    ],
)
def test_false_positives_are_avoided(detector: PiiDetector, text: str) -> None:
    assert kinds(detector, text) == []


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")


def test_only_the_recognizers_a_policy_needs_are_built() -> None:
    recognizers = build_recognizers(["EMAIL_ADDRESS"], language="en", phone_regions=["US"])
    assert [r.supported_entities for r in recognizers] == [["EMAIL_ADDRESS"]]
    names = {type(r).__name__ for r in build_recognizers(["PHONE_NUMBER", "CREDIT_CARD"], language="en",
                                                          phone_regions=["GB"])}
    assert names == {"PhoneNumberRecognizer", "CardNumberRecognizer"}
    with pytest.raises(ValueError, match="no recognizer"):
        build_recognizers(["NOT_AN_ENTITY"], language="en", phone_regions=["US"])


def test_pattern_only_policies_skip_the_ner_model(engine: PolicyEngine) -> None:
    detector = PiiDetector(engine.ner(), entities=["EMAIL_ADDRESS"])
    assert not detector.with_ner
    assert [h.kind for h in detector.detect("Ada Lovelace <ada@example.org>")] == ["EMAIL_ADDRESS"]


def test_phone_numbers_are_validated_for_the_configured_regions() -> None:
    uk = PhoneNumberRecognizer(regions=["GB"])
    us = PhoneNumberRecognizer(regions=["US"])
    text = "ring 020 7946 0958"
    assert uk.analyze(text, ["PHONE_NUMBER"])[0].score > us.analyze(text, ["PHONE_NUMBER"])[0].score


def test_card_score_depends_on_issuer_and_context() -> None:
    card = CardNumberRecognizer()
    [known] = card.analyze("ref 4111111111111111", ["CREDIT_CARD"])
    [unknown] = card.analyze("ref 9111111111111119", ["CREDIT_CARD"]) or [None]
    assert known.score > 0.8
    assert unknown is None or unknown.score < 0.4


def test_batch_results_match_single_results(detector: PiiDetector) -> None:
    texts = ["jane@example.com", "nothing here", "Call 415-555-0132, ask for Peter Parker."]
    assert detector.detect_many(texts) == [detector.detect(t) for t in texts]


def test_context_enhancement_path_still_works(engine: PolicyEngine) -> None:
    enhanced = PiiDetector(engine.ner(), entities=ENTITIES, score_threshold=0.4, context_enhancement=True)
    text = "write to jane.doe@example.co.uk, card 4111 1111 1111 1111"
    assert [h.kind for h in enhanced.detect(text)] == ["EMAIL_ADDRESS", "CREDIT_CARD"]


@pytest.mark.parametrize(
    ("entity", "text"),
    [
        ("IP_ADDRESS", "from 192.168.0.1 today"), ("IP_ADDRESS", "host fe80::1ff:fe23:4567:890a"),
        ("IP_ADDRESS", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"), ("IP_ADDRESS", "bind to ::"),
        ("IBAN_CODE", "DE89 3704 0044 0532 0130 00"), ("IBAN_CODE", "GB82WEST12345698765432"),
        ("US_SSN", "078-05-1120"), ("US_SSN", "078051120"), ("US_SSN", "078 05 1120"), ("US_SSN", "12345-6789"),
        ("CREDIT_CARD", "4111 1111 1111 1111"), ("CREDIT_CARD", "5019-7170-1010"),
        ("PHONE_NUMBER", "+1 (415) 555-0132"), ("PHONE_NUMBER", "+44 (0) 20 7946 0958"),
        ("PHONE_NUMBER", "555 01 ext. 12345"), ("PHONE_NUMBER", "4155550132"),
    ],
)
def test_recognizer_preconditions_hold_for_what_they_find(entity: str, text: str) -> None:
    """A recognizer is skipped on texts without its precondition: the precondition must hold wherever it finds."""
    assert _PRECONDITIONS[entity].search(text)
