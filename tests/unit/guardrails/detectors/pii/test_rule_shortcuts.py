"""Shortcuts in the PII rules and their refinement (issue 17, item 1, speed, `guard11`), each compared with the code
before it on the PII set (as written, lower- and upper-cased), crafted texts and random strings; the necessary
searches put in front of patterns are checked to hold wherever the pattern matches."""

from __future__ import annotations

import copy
import functools
import random
from pathlib import Path

import pytest
import regex
from presidio_analyzer import Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import IpRecognizer, UsSsnRecognizer

from llmops_guardrails.detectors.keys import fold
from llmops_guardrails.detectors.pii import refinement
from llmops_guardrails.detectors.pii.detector import _PRECONDITIONS, PiiDetector, _window
from llmops_guardrails.detectors.pii.lexicon import ORG_WORD_RE
from llmops_guardrails.detectors.pii.patterns import PhoneNumberRecognizer
from llmops_guardrails.detectors.pii.places import gazetteer
from llmops_guardrails.detectors.pii.refinement import (
    _EMPLOYER_BEFORE,
    _EMPLOYER_KEYS,
    _FIRM_CUE_BEFORE,
    _FIRM_LIST,
    _NAME_TOKEN,
    _ORG_AFTER,
    _PLACE_PARTICLE_TAIL,
    _POSSESSIVE,
    _REGION_PREFIX,
    _TRAILING_UNIT,
    _whole_words,
)
from llmops_guardrails.detectors.pii.results import MODELS, rule_of, source_of
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.pii_eval import load_samples
from tests.unit.guardrails.detectors.pii.pii_support import ENTITIES

PII_DATA = Path(__file__).resolve().parents[5].parent / "shared/data/pii/synth_dataset_v2.json"
CRAFTED = [
    "Anna Berg's flat, Apt. 4, and Bob Smith Suite 12 moved; Mr. John Doe ſuite 3 or Jane Roe UNİT 7 or Ola Nor Room",
    "We met at Jones, Smith and Davis with Ana Lopez, Bo Chen & Partners, Kari Holm and Sons Ltd in Frankfurt am Main.",
    "Jack London works for Acme Inc; Olga Krylova’s sister lives in Southern Reguengos de Monsaraz, near Lisbon.",
    "Dear Emma Stone, Emma called: Emma Stone Apartment 3B, floor 2, Box 9. Stone, Berg, Lund and Holm LLP.",
]


@functools.cache
def _texts() -> list[str]:
    texts = [s.text for s in load_samples(PII_DATA)] + CRAFTED
    return texts + [t.lower() for t in texts[:300]] + [t.upper() for t in texts[:300]]


@functools.cache
def _detector() -> PiiDetector:
    engine = PolicyEngine()
    return PiiDetector(engine.ner(), entities=ENTITIES, score_threshold=0.4, names="tagger",
                       phone_regions=["US", "GB", "DE", "FR", "IN", "CA", "AU"])


def _results(text: str) -> list[RecognizerResult]:
    """What the detector refines: its rules' results and the tagger's."""
    detector = _detector()
    results = detector._rules(text)
    detector._tag(text, results)
    return results


def _seen(results: list[RecognizerResult]) -> list[tuple[object, ...]]:
    return [(r.entity_type, r.start, r.end, r.score, source_of(r), rule_of(r)) for r in results]


def _old_refine(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """`refinement.refine` before `guard11` (no necessary searches in front of its patterns)."""
    firms = [m.span() for m in _FIRM_LIST.finditer(text)
             if _FIRM_CUE_BEFORE.search(text, max(0, m.start() - 12), m.start())
             or _ORG_AFTER.match(text, m.end(), min(len(text), m.end() + 30))]
    ner_persons = [(r.start, r.end) for r in results if r.entity_type == "PERSON" and source_of(r) in MODELS]
    folded = fold(text)
    employer = _EMPLOYER_BEFORE if any(k in folded for k in _EMPLOYER_KEYS) else None
    out = []
    for r in results:
        if r.entity_type in ("PERSON", "LOCATION"):
            value = text[r.start:r.end]
            if r.entity_type == "LOCATION":
                m = _REGION_PREFIX.match(value)
                if m and m.end() < len(value) and gazetteer().get(" ".join(value.split())) is None:
                    r.start += m.end()
                m4 = _PLACE_PARTICLE_TAIL.match(text, r.end)
                if m4:
                    r.end = m4.end()
            m2 = _POSSESSIVE.search(text[r.start:r.end])
            if m2 and m2.start() > 0:
                r.end = r.start + m2.start()
            if r.entity_type == "PERSON":
                m3 = _TRAILING_UNIT.search(text, r.start, r.end)
                if m3 and m3.start() > r.start:
                    r.end = m3.start()
            org = _ORG_AFTER.match(text, r.end, min(len(text), r.end + 30)) or ORG_WORD_RE.search(text, r.start, r.end)
            if org and (source_of(r) in MODELS or r.score < 0.9):
                continue
            if employer is not None and employer.search(text, max(0, r.start - 30), r.start):
                continue
            if any(s <= r.start and r.end <= e for s, e in firms):
                continue
            if (rule_of(r) == "gazetteer"
                    and any(s <= r.start and r.end <= e and (s, e) != (r.start, r.end) for s, e in ner_persons)):
                continue
        out.append(r)
    rule_names = {tok for r in out if r.entity_type == "PERSON" and source_of(r) not in MODELS
                  for tok in _NAME_TOKEN.findall(text[r.start:r.end])}
    names = {tok for r in out if r.entity_type == "PERSON" for tok in _NAME_TOKEN.findall(text[r.start:r.end])}
    names -= {"The", "And", "Van", "Von", "Der", "Den", "Del", "Della"}
    for name in sorted(names, key=len, reverse=True):
        for start, end in _whole_words(text, name):
            clash = [r for r in out if not (end <= r.start or start >= r.end)]
            if any(s <= start and end <= e for s, e in firms) or (
                    employer is not None and employer.search(text, max(0, start - 30), start)):
                continue
            if not clash:
                out.append(RecognizerResult("PERSON", start, end, 0.7))
            elif (name in rule_names and len(clash) == 1 and clash[0].entity_type == "LOCATION"
                  and source_of(clash[0]) in MODELS and (clash[0].start, clash[0].end) == (start, end)):
                clash[0].entity_type = "PERSON"
    return out


def _old_phone_analyze(self: PhoneNumberRecognizer, text: str) -> list[RecognizerResult]:
    """`PhoneNumberRecognizer.analyze` before `guard11` (every candidate's digits counted)."""
    out = []
    for m in self.CANDIDATE.finditer(text):
        raw = m.group().strip()
        start = m.start() + (len(m.group()) - len(m.group().lstrip()))
        digits = sum(c.isdigit() for c in raw)
        if not 7 <= digits <= 15 or self.DATE_LIKE.match(raw) or self.IP_LIKE.match(raw):
            continue
        if self.SSN_LIKE.match(raw) or self.NOT_PHONE.near(text, start, start):
            continue
        if self.DECIMAL.match(raw):
            continue
        grouped = not raw.isdigit()
        score = self._valid_in_regions(raw)
        if score == 0.0:
            score = 0.3 if grouped else 0.1
        if self.CONTEXT.near(text, start, start + len(raw)):
            score += 0.3
        out.append(self._result(self.ENTITY, start, start + len(raw), score, "phone number"))
    return out


def test_refinement_gives_what_it_gave() -> None:
    changed = 0
    for text in _texts():
        results = _results(text)
        new = refinement.refine(text, copy.deepcopy(results))
        old = _old_refine(text, copy.deepcopy(results))
        assert _seen(new) == _seen(old), text
        changed += _seen(old) != _seen(results)
    assert changed > 40  # refinement did something on these texts


def test_the_firm_list_needs_a_comma_and_an_and_before_capitals() -> None:
    rng = random.Random(17)
    names = ["Jones", "Smith", "Ana", "O’Brien", "Élan", "x", "AND"]
    separators = [",", ", ", ",\n", " and ", " & ", "and", "&", " ", "\t", ", and ", ",  &  "]
    texts = _texts() + ["".join(rng.choice(names) + rng.choice(separators) for _ in range(rng.randrange(1, 7)))
                        + rng.choice(names) for _ in range(20_000)]
    found = 0
    for text in texts:
        if _FIRM_LIST.search(text):
            found += 1
            assert all(p.search(text) for p in refinement._FIRM_LIST_NEEDS), text
    assert found > 2_000


def test_a_trailing_unit_needs_one_of_the_unit_keys_once_folded() -> None:
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    letters = set("".join(refinement._UNIT_KEYS))
    for x in letters:  # every character the pattern's letters match case-insensitively folds to the letter
        assert all(fold(c) == x for c in regex.findall(f"(?i){x}", every)), x
    rng = random.Random(18)
    words = ["Apt", "APT", "apartment", "Suite", "ſuite", "SUITE", "Unit", "UNİT", "unıt", "Box", "BOX", "Room",
             "Floor", "Anna", " ", "  ", ".", "\n", "Apt.", "Sto"]
    texts = _texts() + ["".join(rng.choice(words) for _ in range(rng.randrange(1, 8))) for _ in range(20_000)]
    found = 0
    for text in texts:
        if any(_TRAILING_UNIT.search(text, 0, end) for end in range(len(text) + 1)):
            found += 1
            assert any(k in fold(text) for k in refinement._UNIT_KEYS), text
    assert found > 5_000


def test_phone_numbers_are_what_they_were() -> None:
    recognizer = PhoneNumberRecognizer(regions=("US", "GB", "DE", "FR", "IN", "CA", "AU"))
    old = PhoneNumberRecognizer(regions=("US", "GB", "DE", "FR", "IN", "CA", "AU"))
    rng = random.Random(19)
    texts = _texts() + ["".join(rng.choice("0123456789 -.()+x") for _ in range(rng.randrange(3, 30)))
                        for _ in range(5_000)]
    found = 0
    for text in texts:
        new = _seen(recognizer.analyze(text, ["PHONE_NUMBER"]))
        assert new == _seen(_old_phone_analyze(old, text)), text
        found += bool(new)
    assert found > 500


IPS = ["192.168.0.1", "10.0.0.0/8", "8.8.8.8:53", "255.255.255.255", "01.02.03.004", "2001:db8::8a2e:370:7334",
       "fe80::1ff:fe23:4567:890a%eth0", "::1", "::", "::/0", "1::", "::ffff:192.0.2.128", "64:ff9b::192.0.2.33",
       "1:2:3:4:5:6:7:8", "a:b:c:d:e:f:0:1/64", "2001:DB8:0:0:8:800:200C:417A", "12:20:39", "1.2.3"]
SSNS = ["536-90-4399", "536 90 4399", "536.90.4399", "536904399", "53690-4399", "536-904399", "078-05-1120",
        "5369043991", "536-90-43990", "1536-90-4399"]


@pytest.mark.parametrize(("entity", "recognizer", "shapes", "alphabet"), [
    ("IP_ADDRESS", IpRecognizer, IPS, "0123456789abcdefABCDEF:.:.:. /%x\n"),
    ("US_SSN", UsSsnRecognizer, SSNS, "0123456789- . x\n"),
])
def test_presidio_on_the_text_from_its_window_finds_what_it_finds_on_the_whole_text(
        entity: str, recognizer: type[PatternRecognizer], shapes: list[str], alphabet: str) -> None:
    """`PiiDetector._rules` runs presidio's IP and SSN recognizers from where the precondition's first match says a
    match can start (`detector._WINDOWS`): the same results, moved back into place."""
    analyzer = recognizer()
    window = _window(analyzer)
    assert window is not None and _window(recognizer(patterns=[Pattern("x", r"\d+", 0.5)])) is None
    rng = random.Random(24)
    texts = _texts() + [f.format(a, b) for a in shapes for b in shapes
                        for f in ("{} {}", "at {}, then {}.", "x{}\t{}", "({})\n{}", "{}{}", "ab {} cd {} ef")]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(3, 60))) for _ in range(20_000)]
    found = cut = 0
    for text in texts:
        first = _PRECONDITIONS[entity].search(text)
        whole = _seen(analyzer.analyze(text, [entity]))
        if first is None:
            assert not whole, text
            continue
        start = window(text, first.start())
        part = analyzer.analyze(text[start:], [entity])
        for r in part:
            r.start += start
            r.end += start
        assert _seen(part) == whole, text
        found += bool(whole)
        cut += start > 0
    assert found > 1_000 and cut > 1_000
