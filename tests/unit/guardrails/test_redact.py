from __future__ import annotations

from llmops_guardrails.findings import value_hash
from llmops_guardrails.policy import RedactionMode
from llmops_guardrails.redact import Redaction, merge_spans, redact

TEXT = "Mail jane@example.com or card 4111111111111111."
EMAIL = (5, 21)
CARD = (30, 46)


def test_mask() -> None:
    out = redact(TEXT, [Redaction(*EMAIL, "EMAIL_ADDRESS", RedactionMode.MASK)], "s")
    assert out == "Mail [EMAIL_ADDRESS] or card 4111111111111111."


def test_hash_is_stable_and_salted() -> None:
    out = redact(TEXT, [Redaction(*EMAIL, "EMAIL_ADDRESS", RedactionMode.HASH)], "s")
    assert out == f"Mail <EMAIL_ADDRESS:{value_hash('jane@example.com', 's')[:8]}> or card 4111111111111111."
    assert redact(TEXT, [Redaction(*EMAIL, "EMAIL_ADDRESS", RedactionMode.HASH)], "t") != out


def test_partial_keeps_the_last_four() -> None:
    out = redact(TEXT, [Redaction(*CARD, "CREDIT_CARD", RedactionMode.PARTIAL)], "s")
    assert out == "Mail jane@example.com or card ****1111."
    assert redact("pin 1234", [Redaction(4, 8, "PIN", RedactionMode.PARTIAL)], "s") == "pin ****"


def test_overlapping_spans_merge_into_the_most_protective() -> None:
    spans = [Redaction(0, 10, "PERSON", RedactionMode.PARTIAL, 0.6),
             Redaction(5, 15, "EMAIL_ADDRESS", RedactionMode.MASK, 0.9),
             Redaction(20, 25, "PHONE_NUMBER", RedactionMode.HASH, 0.5)]
    merged = merge_spans(spans)
    assert [(m.start, m.end, m.label, m.mode) for m in merged] == [
        (0, 15, "EMAIL_ADDRESS", RedactionMode.MASK), (20, 25, "PHONE_NUMBER", RedactionMode.HASH)]
    assert redact("x" * 30, spans, "s").startswith("[EMAIL_ADDRESS]xxxxx<PHONE_NUMBER:")


def test_nothing_to_redact() -> None:
    assert redact(TEXT, [], "s") == TEXT
