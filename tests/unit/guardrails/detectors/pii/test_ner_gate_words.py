"""The NER gate's words read by the standard library's `re` in the class stand-ins (issue 17, item 1, speed, branch
`guard20`): `ner_gate._candidates` against the gate as it was (its `regex` word pattern over the text, the text before
each word copied and stripped), on the PII set (as written, lower- and upper-cased), the injection set and its prose,
20,000 crafted ASCII texts, 20,000 crafted texts with characters that are not ASCII and 20,000 random strings, with
and without spans the rules explain."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import pytest

from llmops_guardrails.detectors.pii import ner_gate
from llmops_guardrails.detectors.pii.lexicon import OPENERS
from llmops_guardrails.detectors.pii.names import lower_name_words, name_words
from llmops_guardrails.detectors.pii.places import gazetteer
from tests.unit.guardrails.corpus import corpus
from tests.unit.guardrails.detectors.pii.test_ascii_passes import _crafted, _random, _unicode


def _old_candidates(text: str, explained: Sequence[tuple[int, int]]) -> Iterator[int]:
    """`ner_gate._candidates` before `guard20`, verbatim but for the names."""
    places = gazetteer()
    if not any(c.isupper() for c in text):
        lower = lower_name_words()
        yield from (m.start() for m in ner_gate._WORD.finditer(text)
                    if m.group() in lower or m.group() in places.first_words)
        return
    names = name_words()
    for m in ner_gate._WORD.finditer(text):
        word = m.group()
        if not word[0].isupper():
            continue
        if any(s <= m.start() and m.end() <= e for s, e in explained):
            continue
        if word.lower() in ner_gate._NEVER_NAMES or (word.isupper() and len(word) <= 4 and places.get(word) is None):
            continue
        before = text[:m.start()].rstrip(" \t\"'“‘(")
        opens_sentence = not before or before[-1] in ".!?:\n"
        if opens_sentence and not ner_gate._name_follows(text, m.end()) and (
                word.lower() in OPENERS or (word not in names and word not in places.first_words)):
            continue
        yield m.start()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    openers = ["Thanks", "Will", "Margaret", "Ticket", "Berlin", "Dear", "I", "Mr", "ZIP", "Oslo", "Anna Berg"]
    rng = random.Random(20)
    quoted = ["".join(rng.choice(['"', "'", "“", "‘", "(", " ", "\t", ".", "!", "?", ":", "\n", ""]) for _ in range(3))
              + rng.choice(openers) + rng.choice(["", " Berg", " you", ".", "\x01", "_x", "9", "’s"])
              for _ in range(5_000)]
    return (corpus(cased=1_500) + _crafted(20_000, 29) + _unicode(20_000, 31) + _random(20_000, 37) + quoted
            + [t.title() for t in _random(5_000, 41)])


def test_the_gate_finds_the_words_it_found_with_regex(texts: list[str]) -> None:
    rng = random.Random(20)
    found = explained_out = 0
    for text in texts:
        assert list(ner_gate._candidates(text, ())) == list(_old_candidates(text, ())), repr(text)
        spans = [(a, a + rng.randrange(12)) for a in sorted(rng.sample(range(len(text) + 1), min(3, len(text) + 1)))]
        new = list(ner_gate._candidates(text, spans))
        assert new == list(_old_candidates(text, spans)), repr(text)
        found += len(new)
        explained_out += len(list(ner_gate._candidates(text, ()))) - len(new)
    assert found > 20_000 and explained_out > 1_000


def test_the_stand_in_word_pattern_finds_the_regex_words(texts: list[str]) -> None:
    from llmops_guardrails.detectors.pii.classes import plain

    words = 0
    for text in texts:
        if "\x01" not in text:
            spans = [m.span() for m in ner_gate._ASCII_WORD.finditer(plain(text))]
            assert spans == [m.span() for m in ner_gate._WORD.finditer(text)], repr(text)
            words += len(spans)
    assert words > 200_000
