"""Cue patterns tried only where a trigger key starts (`cues`, issue 17, item 1, speed): the same matches as
`finditer` over the whole text."""

from __future__ import annotations

import random
import sys

import pytest
import regex

from llmops_guardrails.detectors.keys import fold
from llmops_guardrails.detectors.pii import cues, people, places
from llmops_guardrails.detectors.pii.patterns import NameContextRecognizer
from tests.unit.guardrails.corpus import corpus

EVERY = "".join(map(chr, range(sys.maxunicode + 1)))
WHITESPACE = "".join(c for c in EVERY if c.isspace())

# the cue patterns of the recognizers, their keys, and which of `cues.Starts` holds their starts
CUES = [
    (NameContextRecognizer.PERSON, cues.PERSON_KEYS, 0),
    (NameContextRecognizer.PLACE, cues.PLACE_KEYS, 1),
    (people._SPEECH, cues.SPEECH_KEYS, 2),
    (places._ADDRESS_PLACE, cues.ADDRESS_KEYS, 3),
]


def _trigger(pattern: str) -> str:
    """The alternation of triggers that a cue pattern starts with: `\\b(?:...)`, maybe inside `(?i:`."""
    assert pattern.startswith((r"\b(?:", r"(?i:\b(?:")), pattern
    start = pattern.index(r"\b(?:") + 5
    depth, i = 1, start
    while depth:
        c = pattern[i]
        if c == "\\":
            i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        i += 1
    return pattern[start:i - 1]


def _alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a pattern."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    return [*out, pattern[start:]]


def _literal_starts(alternative: str) -> list[str]:
    """The literal text every match of `alternative` starts with: up to its first special character (less the
    character before a `?`, `*` or `{`), or, for a leading group of plain words ("(?:first|last|full)\\s+name"),
    each of them."""
    if alternative.startswith("(?:"):
        group = alternative[3:alternative.index(")")]
        assert not regex.search(r"[\\()\[\].?*+{]", group), alternative
        return group.split("|")
    literal = regex.match(r"[^\\()\[\].?*+{|]*", alternative)
    assert literal is not None
    text = literal.group()
    if alternative[literal.end():literal.end() + 1] in ("?", "*", "{"):
        text = text[:-1]
    return [text]


@pytest.mark.parametrize(("pattern", "keys", "field"), CUES)
def test_every_trigger_starts_with_a_key(pattern: regex.Pattern[str], keys: tuple[str, ...], field: int) -> None:
    alternatives = _alternatives(_trigger(pattern.pattern))
    assert len(alternatives) >= 6
    for alternative in alternatives:
        for literal in _literal_starts(alternative):
            assert literal and any(literal.lower().startswith(k) for k in keys), alternative


def test_the_literal_starts_of_alternatives() -> None:
    assert _literal_starts(r"lives?\s+at") == ["live"]
    assert _literal_starts(r"travell?ed to") == ["travel"]
    assert _literal_starts(r"(?:first|last|full)\s+name") == ["first", "last", "full"]
    assert _literal_starts(r"mr\.?") == ["mr"]
    assert _alternatives(r"a|(?:b|c)d|e\|f") == ["a", "(?:b|c)d", r"e\|f"]
    assert _trigger(r"(?i:\b(?:a|(?:b|c)d))\s+x") == "a|(?:b|c)d"


def test_folding_keeps_offsets_and_maps_every_case_insensitive_match_of_a_key_character_to_it() -> None:
    folded = fold(EVERY)
    assert len(folded) == len(EVERY)  # one character for one: offsets agree
    key_characters = {c for _, keys, _ in CUES for k in keys for c in k}
    for c in key_characters:  # every character `regex` matches to a key's character case-insensitively folds to it
        for m in regex.finditer("(?i:" + regex.escape(c) + ")", EVERY):
            assert folded[m.start()] == c, (c, hex(m.start()))
    # a character folded to an ASCII letter, digit or underscore is a word character for `regex`: no `\b` after it
    for i, c in enumerate(folded):
        if c in "abcdefghijklmnopqrstuvwxyz0123456789_":
            assert regex.match(r"\w", EVERY[i]), hex(i)


def _crafted(n: int, seed: int) -> list[str]:
    """Trigger phrases and names, in every case and with the characters folding maps, glued by any whitespace,
    punctuation, digits, underscores and letters."""
    rng = random.Random(seed)
    words = [k for _, keys, _ in CUES for k in keys] + [
        "my name is", "call me", "calls me", "called", "named", "mrs.", "Dr.", "first name?", "full  name? user:",
        "name on the account? customer:", "regards,", "thanks,", "partner's name", "travelled to", "traveled to",
        "lives in", "living in", "hometown", "where:", "flying to", "lived at", "address is:", "shipped it to",
        "mailed them to", "12 Rue Nova 3,", "4 Main St, Springfield.", "according to", "said", "Said", "to", "Anna",
        "Berg", "O'Brien", "Jean-Luc", "D.", "ANNA",
        "Ødegård", "İstanbul", "ſir", "KIEL", "ıi", "x", "_", "9", "é", "\u0301", "-", "'", "’", "?", ":", ","]
    joints = [" ", "  ", "", "\n", "\t", ". ", ", ", "_", "1", "a", "\u00a0", *WHITESPACE]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randrange(1, 12)):
            w = rng.choice(words)
            w = rng.choice([w, w.upper(), w.title(), w.swapcase(), w.replace("s", "ſ").replace("k", "\u212a")
                            .replace("i", "\u0130")])
            parts.append(w + rng.choice(joints))
        out.append("".join(parts))
    return out


@pytest.mark.parametrize(("pattern", "keys", "field"), CUES)
def test_the_cue_patterns_tried_where_a_key_starts_find_what_finditer_finds(
        pattern: regex.Pattern[str], keys: tuple[str, ...], field: int) -> None:
    texts = corpus(cased=400) + _crafted(20_000, 17)
    matched = 0
    for text in texts:
        new = [m.span() + m.span(1) for m in cues.matches(pattern, text, cues.starts(text)[field])]
        assert new == [m.span() + m.span(1) for m in pattern.finditer(text)], text
        matched += bool(new)
    assert matched > 50, matched  # the texts do hold matches


def test_key_starts_reports_every_group_whose_key_starts_there() -> None:
    starts = cues.key_starts([["dr", "mr"], ["drove to"]])
    assert [(m.start(), m.groups()) for m in starts.finditer("dr x drove to mr. adr 9mr")] == [
        (0, ("dr", None)), (5, ("dr", "drove to")), (14, ("mr", None))]


def test_the_recognizer_finds_what_it_found_with_finditer() -> None:
    recognizer = NameContextRecognizer()
    for text in corpus(cased=400)[:3000] + _crafted(3000, 18):
        new = [(r.entity_type, r.start, r.end, r.score) for r in recognizer.analyze(text, ["PERSON", "LOCATION"])]
        old = []
        found = [("PERSON", recognizer.PERSON)]
        if not any(c.isupper() for c in text):
            found.append(("PERSON", recognizer.PERSON_LOWER))
        found.append(("LOCATION", recognizer.PLACE))
        for entity, pattern in found:
            for m in pattern.finditer(text):
                start, end = m.span("name")
                words = text[start:end].split(" ")
                while words and words[0] in recognizer.STOP:
                    start += len(words.pop(0)) + 1
                if words:
                    old.append((entity, start, end, 0.9))
        assert new == old, text
