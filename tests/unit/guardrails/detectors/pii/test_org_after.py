"""The organisation-after check without its pattern where the next character rules it out (`refinement._org_after`,
issue 17 item 1, speed, `guard25`): the same answer as `_ORG_AFTER.match(text, at, min(len(text), at + 30))` at every
place of the PII set's texts (as written, lower- and upper-cased), of crafted texts and of random strings built from
the pattern's own pieces, every character below U+3000 after a name, and the ASCII whitespace `regex` reads."""

from __future__ import annotations

import random

import pytest
import regex

from llmops_guardrails.detectors.pii import refinement
from llmops_guardrails.detectors.pii.refinement import _ASCII_SPACE, _ORG_AFTER, _org_after
from tests.unit.guardrails.detectors.pii.test_rule_shortcuts import CRAFTED, _texts


def _old(text: str, at: int) -> bool:
    return _ORG_AFTER.match(text, at, min(len(text), at + 30)) is not None


_PIECES = ["Anna", " ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u00a0", "\u2003", ",", ", ",
           "and", "And", "an", "&", "Inc", "Ltd", "LLC", "LLP", "PLC", "GmbH", "AG", "Corp", "Co", "Group", "Holdings",
           "Partners", "Associates", "Orchestra", "Band", "Sons", "Brothers", "Daughters", "Ölund", "É", "x", ".", "'",
           "’", "1", "_", "Incx", "Cox", "a", "I", "\x7f", "\x00"]


def test_org_after_answers_as_the_pattern() -> None:
    rng = random.Random(251)
    texts = _texts() + CRAFTED + ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 25)))
                                  for _ in range(20_000)]
    matched = skipped = 0
    for text in texts:
        for at in range(len(text) + 1):
            old = _old(text, at)
            assert _org_after(text, at) == old, (text, at)
            matched += old
    # the pattern is left out for most places (what the shortcut is for), and matches some
    for text in _texts()[:200]:
        skipped += sum(1 for at in range(len(text)) if " " < text[at] < "\x7f" and text[at] not in ",ILPGACHOB&a")
    assert matched > 5_000 and skipped > 10_000


def test_org_after_every_character_after_a_name() -> None:
    for code in range(0x3000):
        c = chr(code)
        for text in ("Anna" + c + "Inc", "Anna" + c + "and Sons", "Anna" + c + ", Ltd", "Anna" + c + "& Bo",
                     "Anna" + c + c + "Co", "Anna" + c, "Anna" + c + "x Co"):
            assert _org_after(text, 4) == _old(text, 4), repr(text)


def test_the_ascii_whitespace_is_the_patterns() -> None:
    assert [chr(c) for c in range(128) if regex.match(r"\s", chr(c))] == sorted(_ASCII_SPACE)
    # the alternatives after `\s*(?:,\s*)?`: the words of the first group, "and" and "&"
    words = regex.fullmatch(regex.escape(r"\s*(?:,\s*)?(?:(?:") + "([A-Za-z|]+)"
                            + regex.escape(r")\b|and\s+(?:") + "[A-Za-z|]+" + regex.escape(r")\b|&\s*\p{Lu})"),
                            _ORG_AFTER.pattern)
    assert words is not None
    assert {w[0] for w in words.group(1).split("|")} | {"&"} == refinement._ORG_AFTER_FIRST


def test_refine_drops_a_name_before_an_organisation_word() -> None:
    from llmops_guardrails.detectors.pii.results import TAGGER, Span

    text = "I met Bo Chen & Partners and Olga Krylova, Ltd. and Ana Lopez today."
    spans = [Span("PERSON", 6, 13, 0.85, TAGGER), Span("PERSON", 29, 41, 0.85, TAGGER),
             Span("PERSON", 52, 61, 0.85, TAGGER)]
    assert [(r.start, r.end) for r in refinement.refine(text, spans)] == [(52, 61)]


def test_name_tokens_are_the_patterns_words_in_the_span(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_guardrails.detectors.pii.refinement import _NAME_TOKEN, _name_tokens

    monkeypatch.setattr(refinement, "_NAME_TOKENS_MAX", 50)  # cleared many times on the way
    rng = random.Random(252)
    texts = _texts()[:400] + CRAFTED
    checked = 0
    for _ in range(3):  # remembered words read again
        for text in texts:
            for _ in range(10):
                start = rng.randint(0, len(text))
                end = rng.randint(start, min(len(text), start + 40))
                got = _name_tokens(text[start:end])
                assert got == tuple(_NAME_TOKEN.findall(text, start, end)), (text, start, end)
                checked += bool(got)
    assert checked > 3_000
    assert len(refinement._NAME_TOKENS) <= 50


def test_a_later_mention_overlapping_one_model_place_becomes_a_person_and_not_two() -> None:
    from llmops_guardrails.detectors.pii.results import TAGGER, Span

    text = "Dear Paris Hilton, Paris called. Then Paris Main met Anna."
    one = [Span("PERSON", 5, 17, 0.85, "KnownNameRecognizer"), Span("LOCATION", 19, 24, 0.85, TAGGER)]
    got = refinement.refine(text, one)
    assert [(r.entity_type, r.start, r.end) for r in got] == [
        ("PERSON", 5, 17), ("PERSON", 19, 24), ("PERSON", 38, 43)]
    # two results over the mention: neither changes, nothing is added there
    two = [Span("PERSON", 5, 17, 0.85, "KnownNameRecognizer"), Span("LOCATION", 19, 24, 0.85, TAGGER),
           Span("LOCATION", 21, 26, 0.85, TAGGER)]
    got = refinement.refine(text, two)
    assert [(r.entity_type, r.start, r.end) for r in got] == [
        ("PERSON", 5, 17), ("LOCATION", 19, 24), ("LOCATION", 21, 26), ("PERSON", 38, 43)]


_ORG_PIECES = ["Co", "Inc", "Ltd.", "Bank", "Studio", "Studios", "Labs", "Lab", "Anna", "x", "_", "1", " ", "\n", ".",
               "-", "'", "’", "É", "é", "\u0301", "\u00a0", "Band", "Bandit", "AG", "SA", "NV"]


def test_org_word_answers_as_the_search(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_guardrails.detectors.pii.lexicon import ORG_WORD_RE
    from llmops_guardrails.detectors.pii.refinement import _org_word

    monkeypatch.setattr(refinement, "_ORG_WORDS_MAX", 200)  # cleared many times on the way
    rng = random.Random(253)
    texts = _texts()[:300] + CRAFTED + ["".join(rng.choice(_ORG_PIECES) for _ in range(rng.randint(1, 12)))
                                        for _ in range(5_000)]
    found = 0
    for _ in range(2):  # remembered answers read again, in other texts too
        for text in texts:
            for _ in range(8):
                start = rng.randint(0, len(text))
                end = rng.randint(start, min(len(text), start + 30))
                old = ORG_WORD_RE.search(text, start, end) is not None
                assert _org_word(text, start, end) == old, (text, start, end)
                found += old
    assert found > 2_000
    # the same text after another character, or before one: the character before counts, the one after does not
    for before, value, after in [("x", "Co", " "), (" ", "Co", "x"), ("", "Co", ""), ("_", "Bank", "."),
                                 ("É", "Inc", "s"), ("\u0301", "Lab", "s"), ("1", "Co", "1"), ("-", "Co", "x")]:
        for text, start in ((before + value + after, len(before)), ("Co" + before + value + after, 2 + len(before))):
            end = start + len(value)
            assert _org_word(text, start, end) == (ORG_WORD_RE.search(text, start, end) is not None), (text, start)
