"""Whole-text passes of the capitalised-word code tried only where a match can start (issue 17, item 1, speed, branch
`guard14`): each against the `finditer` it replaced, on the PII set (as written, lower- and upper-cased), the
injection set and its prose, crafted texts and random strings."""

from __future__ import annotations

import random

import pytest

from llmops_guardrails.detectors.pii import people, places
from tests.unit.guardrails.corpus import corpus
from tests.unit.guardrails.detectors.pii.test_fewer_passes import _crafted

# Pieces that make and break the three patterns' edges: possessives with both apostrophes, names of one, two and
# three words, particles, commas with and without a space, regions, joiners, digits, capitals outside ASCII
# (U+0130, U+01C4, a capital with a combining mark), other whitespace (no-break space, tab, newline).
_PIECES = ["Anna", "Berg", "Berg's", "Berg’s", "O'Brien's", "Jean-Luc", "'s", "’s", "s", "'", "’", "Kokkola",
           "Tujetsch", "Finland", "New York", "Villafranca del Cid", "de", "la", "del", "İz", "Ǆemal", "É\u0301va",
           "ÅSA", "x", "9", "9th", "_", "-", ".", "and", "in", "Sweden", "NEW", "a'B", "Bb-", "Ab"]
_GLUE = [" ", " ", " ", "  ", "", ", ", ",", ", ", ",  ", "\n", "\t", "\u00a0", ". ", "'s ", "’s ", "-", "'", "_",
         "9"]


def _pieces(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) + rng.choice(_GLUE) for _ in range(rng.randrange(1, 16))) for _ in range(n)]


def _random(n: int, seed: int) -> list[str]:
    """Random strings over an alphabet of capitals, letters, joiners, spaces, commas and a few others."""
    rng = random.Random(seed)
    alphabet = "AaBbSs's’ , ,\t\n-.9_ÉéİǄ\u0301\u00a0"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return corpus(cased=400) + _crafted(5000, 21) + _pieces(20_000, 14) + _random(20_000, 15)


def test_possessive_names_are_the_matches_of_the_whole_text_search(texts: list[str]) -> None:
    found = 0
    for text in texts:
        old = [(m.span(), m.span("name")) for m in people._POSSESSIVE_NAME.finditer(text)]
        assert [(m.span(), m.span("name")) for m in people.possessive_names(text)] == old, text
        found += len(old)
    assert found > 2000


def test_towns_before_regions_are_the_matches_of_the_whole_text_search(texts: list[str]) -> None:
    found = 0
    for text in texts:
        old = [(m.span(), m.span("name"), m.span("region")) for m in places._TOWN_BEFORE_REGION.finditer(text)]
        new = [(m.span(), m.span("name"), m.span("region")) for m in places.towns_before_regions(text)]
        assert new == old, text
        found += len(old)
    assert found > 2000


def test_a_speaker_label_needs_a_colon_and_a_quote(texts: list[str]) -> None:
    """`PersonRecognizer` reads speaker labels only in a text with a colon and a quote: without them there is none."""
    found = 0
    for text in [*texts, 'Anna Berg: "hi"', "Anna: “hi”", '  Bob Berg :\t"x', "Anna: hi"]:
        matches = list(people._SPEAKER.finditer(text))
        if matches:
            assert ":" in text and ('"' in text or "“" in text), text
        found += len(matches)
    assert found >= 3


def test_the_anchored_searches_find_examples() -> None:
    text = "Ask Anna Berg's team in Tujetsch, Switzerland or Villafranca del Cid, Spain; O'Brien Lee’s car."
    assert [m.group("name") for m in people.possessive_names(text)] == ["Anna Berg", "O'Brien Lee"]
    assert [m.group("name") for m in places.towns_before_regions(text)] == ["Tujetsch", "Villafranca del Cid"]
    assert list(people.possessive_names("no possessive here, Anna Berg")) == []
    assert list(places.towns_before_regions("Tujetsch Switzerland")) == []


def test_a_run_with_a_middle_initial_is_three_words_the_middle_one_short(texts: list[str]) -> None:
    """`KnownNameRecognizer` tries `_INITIALLED` only on a name run of three words whose middle one has at most two
    characters: every run it matches is one."""
    runs = initialled = 0
    for text in [*texts, "Faina D. Yefremova", "Ravil G Yefimov", "Ana Ñ. Ñúñez", "Ana De Berg"]:
        for run in people._NAME_RUN.finditer(text):
            words = run.group().split(" ")
            if people._INITIALLED.fullmatch(run.group()):
                assert len(words) == 3 and len(words[1]) <= 2, run.group()
                initialled += 1
            runs += 1
    assert runs > 10_000 and initialled > 100
