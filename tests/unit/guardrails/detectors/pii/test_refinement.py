"""The tidying of NER spans and the choice between overlapping results."""

from __future__ import annotations

import random
import time

from llmops_guardrails.detectors.pii.places import PlaceRecognizer
from llmops_guardrails.detectors.pii.refinement import refine, resolve_overlaps
from llmops_guardrails.detectors.pii.results import Span, span_of
from tests.unit.guardrails.detectors.pii.pii_support import values


def test_resolve_overlaps_prefers_the_card_over_a_phone_number() -> None:
    text = "ref 5029 1417 7766"
    card = Span("CREDIT_CARD", 4, 18, 0.6)
    phone = Span("PHONE_NUMBER", 4, 18, 1.0)
    assert resolve_overlaps([phone, card], text) == [card]
    assert resolve_overlaps([phone, card]) == [card]
    assert resolve_overlaps([phone, card], "tel 5029 1417 7766") == [phone]



def _ner(entity: str, start: int, end: int) -> Span:
    return Span(entity, start, end, 0.85, "SpacyRecognizer")


def test_refine_drops_names_inside_organisations_and_employers() -> None:
    text = "The Jones, Smith and Davis Orchestra played. I work for Hawkins now. Ask Davis Miller."
    results = [_ner("PERSON", text.index(w), text.index(w) + len(w)) for w in ("Smith", "Davis", "Hawkins")]
    assert refine(text, results) == []
    kept = refine(text, [_ner("PERSON", text.index("Davis Miller"), len(text) - 1)])
    assert [text[r.start:r.end] for r in kept] == ["Davis Miller"]


def test_refine_lets_a_ner_person_win_over_a_city_inside_it() -> None:
    text = "Jack London wrote it"
    city = PlaceRecognizer().analyze(text, ["LOCATION"])
    assert values(city, text, "LOCATION") == ["London"]
    kept = refine(text, [_ner("PERSON", 0, 11), *map(span_of, city)])
    assert [(r.entity_type, text[r.start:r.end]) for r in kept] == [("PERSON", "Jack London")]


def test_refine_extends_places_over_particles_and_marks_later_mentions() -> None:
    text = "Dr. Amara flew to Frankfurt am Main; Amara loved it."
    place = _ner("LOCATION", 18, 27)
    person = Span("PERSON", 4, 9, 0.9)
    kept = refine(text, [person, place])
    assert [(r.entity_type, text[r.start:r.end]) for r in kept] == [
        ("PERSON", "Amara"), ("LOCATION", "Frankfurt am Main"), ("PERSON", "Amara")]


def _pairwise(results: list[Span]) -> list[Span]:
    kept: list[Span] = []
    for r in sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return sorted(kept, key=lambda r: r.start)


def test_resolve_overlaps_keeps_what_the_pairwise_check_keeps() -> None:
    rng = random.Random(7)
    for _ in range(200):
        results = []
        for _ in range(rng.randint(0, 30)):
            start = rng.randint(0, 100)
            results.append(Span("EMAIL_ADDRESS", start, start + rng.randint(1, 15), rng.choice([0.4, 0.85, 1.0])))
        assert resolve_overlaps(results) == _pairwise(results)


def test_resolve_overlaps_is_fast_on_tens_of_thousands_of_results() -> None:
    """A 936 KB text of short e-mail addresses has 68,000 of them; the pairwise check took 90 s."""
    results = [Span("EMAIL_ADDRESS", 14 * i, 14 * i + 13, 1.0) for i in range(70_000)]
    started = time.perf_counter()
    assert resolve_overlaps(results) == results
    assert time.perf_counter() - started < 5


def test_refine_drops_a_name_followed_by_an_organisation_word() -> None:
    """`_ORG_AFTER` is matched at the end of the name (it once began with "^", which never matched there)."""
    text = "The Golden Helix Orchestra was founded in 1978."
    assert refine(text, [_ner("PERSON", 4, 16)]) == []
    text = "Anna Berg, Inc. hired Tom."
    assert [text[r.start:r.end] for r in refine(text, [_ner("PERSON", 0, 9), _ner("PERSON", 22, 25)])] == ["Tom"]


def test_the_employer_keys_are_in_every_text_the_employer_cue_matches_in() -> None:
    """`refine` searches for an employer cue ("works for") only in texts holding one of `_EMPLOYER_KEYS` after
    `keys.fold`: every character the cue's letters match case-insensitively (the `regex` module's rules, over
    every code point) folds to that letter, so a text with a cue always holds a key."""
    import regex

    from llmops_guardrails.detectors.keys import fold
    from llmops_guardrails.detectors.pii.refinement import _EMPLOYER_BEFORE, _EMPLOYER_KEYS

    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    for letter in sorted(set("".join(_EMPLOYER_KEYS))):
        for ch in regex.findall("(?i)" + letter, everything):
            assert fold(f"\u00e9{ch}") == f"\u00e9{letter}", (letter, ch)
    for cue in ("works for ", "WORKED AT ", "\u0130NTERNED WITH ", "Wor\u212a for ", "job with ", "employed by "):
        text = f"She {cue}Hawkins."
        assert _EMPLOYER_BEFORE.search(text, 0, text.index("Hawkins"))
        assert any(k in fold(text) for k in _EMPLOYER_KEYS)
        start = text.index("Hawkins")
        assert refine(text, [_ner("PERSON", start, start + len("Hawkins"))]) == []
    text = "She met Hawkins."
    start = text.index("Hawkins")
    assert len(refine(text, [_ner("PERSON", start, start + len("Hawkins"))])) == 1
