"""The preconditions' RE2 prefilter (issue 17, item 1, speed, `guard13`): wherever a precondition matches, the
prefilter reports it possible (checked over every code point for the digit class, on the PII set, the injection set
and its prose, crafted shapes and random strings of digits, separators and non-ASCII digits), and the rule results
are those of the detector without it."""

from __future__ import annotations

import random

import pytest
import regex

from llmops_guardrails.detectors.pii import detector
from llmops_guardrails.detectors.pii.detector import _PREFILTER_INDEX, _PREFILTERED, possible_preconditions
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.pii_eval import load_samples
from tests.unit.guardrails.corpus import PII_DATA, corpus
from tests.unit.guardrails.detectors.pii.test_preconditions import IPS
from tests.unit.guardrails.detectors.pii.test_rule_shortcuts import ENTITIES

DIGITS = "0123456789" + "٠١٢٣٤٥٦٧٨٩" + "０１２３４５６７８９" + "०१२३४५"  # ASCII, Arabic-Indic, full-width, Devanagari
SHAPES = [*IPS, "123-45-6789", "123 45 6789", "123456789", "4111 1111 1111 1111", "4111-1111-1111-1111",
          "+49 (0) 30 1234567", "(555) 123-4567 ext. 89", "555.123.4567", "DE89 3704 0044 0532 0130 00",
          "GB82WEST12345698765432", "a@b.co", "١٢٣-٤٥-٦٧٨٩", "12:20:39", "2018.01.14",
          "４１１１ １１１１ １１１１ １１１１"]


def _random(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = DIGITS * 3 + " -.:@()+/\n\tabcdefABCDEFXYZéß" + "\u00a0\u2009x"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(n)]


def _framed() -> list[str]:
    return [f"{a}{shape}{b}" for shape in SHAPES for a in ("", "x", "1", "a ", ":", "é") for b in ("", "x", "1", " b")]


def test_every_character_the_digit_class_matches_is_in_the_prefilters_digit_class() -> None:
    digit = regex.compile(r"\d")
    for c in range(0x110000):
        if 0xD800 <= c < 0xE000:
            continue
        if digit.match(chr(c)):
            assert chr(c) in "0123456789" or c >= 0x80, hex(c)


def test_wherever_a_precondition_matches_the_prefilter_says_it_may() -> None:
    matched = 0
    for text in corpus() + _framed() + _random(20_000, 41):
        possible = possible_preconditions(text)
        for pattern in _PREFILTERED:
            if pattern.search(text):
                matched += 1
                assert _PREFILTER_INDEX[id(pattern)] in possible, (pattern.pattern, text)
    assert matched > 20_000


def test_a_text_re2_cannot_read_keeps_every_precondition() -> None:
    assert possible_preconditions("call 555 123 4567 \ud800") == frozenset(range(len(_PREFILTERED)))
    assert possible_preconditions("plain words") == frozenset()


def test_the_rules_find_what_they_found_without_the_prefilter(monkeypatch: pytest.MonkeyPatch) -> None:
    pii = detector.PiiDetector(PolicyEngine().ner(), entities=ENTITIES, score_threshold=0.4, names="off",
                               phone_regions=["US", "GB", "DE", "FR", "IN", "CA", "AU"])
    texts = [s.text for s in load_samples(PII_DATA)] + _framed() + _random(3_000, 42)
    with_prefilter = [[(r.entity_type, r.start, r.end, r.score) for r in pii._rules(t)] for t in texts]
    monkeypatch.setattr(detector, "possible_preconditions", lambda text: detector._ALL)
    without = [[(r.entity_type, r.start, r.end, r.score) for r in pii._rules(t)] for t in texts]
    assert with_prefilter == without
    assert sum(map(bool, without)) > 1_000
