"""The name and place rules' cheaper paths (issue 17, item 1, speed, branch `guard19`): each against the computation
it replaced (kept here as the oracle where it was more than one pattern), on the PII set (as written, lower- and
upper-cased), the injection set and its prose, crafted texts and random strings."""

from __future__ import annotations

import itertools
import random

import pytest
import regex

from llmops_guardrails.detectors.pii import people, places
from llmops_guardrails.detectors.pii.lexicon import BULLET, LINE
from llmops_guardrails.detectors.pii.people import KnownNameRecognizer, PersonRecognizer
from llmops_guardrails.detectors.pii.places import PlaceRecognizer
from tests.unit.guardrails.corpus import corpus
from tests.unit.guardrails.detectors.pii.test_anchored_passes import _pieces, _random
from tests.unit.guardrails.detectors.pii.test_fewer_passes import _crafted

# Lines that make and break the line-reading rules: bullets, labels, blank lines of every kind of whitespace, digits
# (also not ASCII ones), countries, postal codes and country codes, speaker labels with both quotes, carriage returns
# and line separators that are not "\n".
_LINES = ["Anna Berg", "- Anna Berg", "• Olga Krylova", "Billing address: Eva Lind", "12 Rue Nova 3", "Apt 4",
          "Aalborg NO 9100", "Kokkola 67100", "Finland", "FINLAND", "finland", "Sweden 12345", "Brazil", "nan",
          "São Paulo SP", "Kiel, Germany", "   ", "\t", "\u00a0", "\x1c", "", "Ben: \"hi\"", "Ben Berg :\t“x”",
          "Anna: hi", "a: \"b\"", "x ²", "٣ Main St", "Call 555 0100", "Dr. Ana María Ñúñez", "> Bob", "-", "Ann\r",
          "\u2028Anna: \"x\"", "United States", "New Zealand 6011", "Cc: \"x\"", "Georgia", "JORDAN 11110",
          "Chad", "Aalborg NO", "Lyon nan", "Kiel ,", "Kiel,", "Åre ÅÉ", "Ulm Ǆ", "Ulm ǅ"]


def _line_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["\n".join(rng.choice(_LINES) for _ in range(rng.randrange(1, 8))) for _ in range(n)]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return (corpus(cased=400) + _crafted(5000, 31) + _pieces(10_000, 32) + _random(10_000, 33)
            + _line_texts(10_000, 34))


def test_possessive_end_is_the_pattern_search() -> None:
    words = ["".join(w) for n in range(7) for w in itertools.product(["'", "’", "s", "S", "x", "\n", " "], repeat=n)]
    words += ["Berg's", "Berg’s", "Reports's", "O'Brien", "Anna'", "Anna’s\n", "s'", "'s's", "x's\n\n"]
    found = 0
    for word in words:
        m = people._POSSESSIVE_END.search(word)
        assert people.possessive_end(word) == (m.span() if m else None), repr(word)
        assert people.without_possessive(word) == people._POSSESSIVE_END.sub("", word), repr(word)
        found += m is not None
    assert found > 10_000


def test_speaker_labels_are_the_matches_of_the_whole_text_search(texts: list[str]) -> None:
    found = 0
    for text in texts:
        old = [(m.span(), m.span("name")) for m in people._SPEAKER.finditer(text)]
        assert [(m.span(), m.span("name")) for m in people.speaker_labels(text)] == old, text
        found += len(old)
    assert found > 1000


def _old_contact_name(text: str) -> tuple[int, int] | None:
    """`PersonRecognizer._contact_name` before it read the lines by `str.split`: only its first lines differ."""
    lines = [m for m in LINE.finditer(text) if m.group().strip()]
    if len(lines) < 3 or not any(ch.isdigit() for m in lines[1:] for ch in m.group()):
        return None
    first = lines[0]
    bullet = BULLET.match(first.group())
    start = first.start() + (bullet.end() if bullet else 0)
    label = people._LABEL.match(text, start, first.end())
    if label:
        start = label.end()
    end = first.end()
    while end > start and text[end - 1].isspace():
        end -= 1
    value = text[start:end]
    lowercase_text = not any(c.isupper() for c in text)
    pattern = people._CONTACT_NAME_LOWER if lowercase_text else people._CONTACT_NAME
    if not pattern.match(value) or value.split(" ")[0] in people._NOT_A_NAME or people.ORG_WORD_RE.search(value):
        return None
    if (people.UNIT_OR_STREET.search(value) or people._ROLE_WORD.search(value)
            or places.gazetteer().get(" ".join(value.split()))):
        return None
    return start, end


def test_the_contact_name_is_what_the_line_pass_gave(texts: list[str]) -> None:
    found = 0
    for text in texts:
        old = _old_contact_name(text)
        assert PersonRecognizer._contact_name(text) == old, text
        found += old is not None
    assert found > 500


def _old_content_lines(text: str) -> list[tuple[int, int]]:
    lines = []
    for m in LINE.finditer(text):
        if not m.group().strip():
            continue
        bullet = BULLET.match(m.group())
        cs = m.start() + (bullet.end() if bullet else 0)
        ce = m.end()
        while ce > cs and text[ce - 1].isspace():
            ce -= 1
        if ce > cs:
            lines.append((cs, ce))
    return lines


def _old_address_lines(recognizer: PlaceRecognizer, text: str) -> list[tuple[int, int, float, str]]:
    """`PlaceRecognizer._address_lines` before it skipped the lines that cannot give a place: every line read."""
    lines = _old_content_lines(text)
    if len(lines) < 2:
        return []
    lowercase_text = not any(c.isupper() for c in text)
    out = []
    for k in range(1, len(lines)):
        cs, ce = lines[k]
        core_end, tail = recognizer._split_tail(text, cs, ce)
        core = text[cs:core_end]
        place = recognizer.places.get(" ".join(core.split()), lowercase_text=lowercase_text) if core else None
        if place is not None and place.section == "countries":
            if k >= 2 and len(lines) >= 3 and recognizer._locality(text, *lines[k - 1]) is not None:
                ps, pe = lines[k - 1]
                loc_end = recognizer._locality(text, ps, pe)
                assert loc_end is not None
                out.append((ps, loc_end, 0.88, "locality line above a country"))
            if place.ambiguous:
                out.append((cs, core_end, 0.88, "country line of an address"))
            continue
        if tail and k >= 1 and any(ch.isdigit() for ch in text[lines[k - 1][0]:lines[k - 1][1]]):
            loc_end = recognizer._locality(text, cs, ce)
            if loc_end is not None and any(ch.isdigit() or ch.isupper() or ch == "n" for ch in tail):
                out.append((cs, loc_end, 0.85, "locality line with postal code"))
    return out


def test_the_lines_are_those_of_the_line_pattern(texts: list[str]) -> None:
    seen = 0
    for text in texts:
        old = _old_content_lines(text)
        assert places.content_lines(text) == old, text
        seen += len(old)
    assert seen > 50_000


def test_the_address_lines_give_what_reading_every_line_gave(texts: list[str]) -> None:
    recognizer = PlaceRecognizer()
    kinds: dict[str, int] = {}
    for text in texts:
        old = _old_address_lines(recognizer, text)
        whys: list[str] = []
        found = recognizer._address_lines(text, "PlaceRecognizer", whys)
        new = [(r.start, r.end, r.score, why) for r, why in zip(found, whys, strict=True)]
        assert new == old, text
        for *_, why in old:
            kinds[why] = kinds.get(why, 0) + 1
    assert len(kinds) == 3 and min(kinds.values()) > 100, kinds


def test_a_country_line_starts_with_a_countrys_first_word() -> None:
    gazetteer = places.gazetteer()
    for table in (gazetteer.exact, gazetteer.lower):
        for phrase, place in table.items():
            if place.section == "countries":
                assert phrase.split()[0] in gazetteer.country_first_words
    assert {"Finland", "FINLAND", "New", "finland"} <= gazetteer.country_first_words
    # (`\s` of `regex`, where a line's tail is cut, is whitespace for `str.split`: the name's words are the line's)
    assert all(chr(c).isspace() for c in range(0x110000) if regex.match(r"\s", chr(c)))


def test_capital_tokens_and_town_runs_are_the_searches_they_replace(texts: list[str]) -> None:
    from llmops_guardrails.detectors.pii.classes import plain

    tokens = runs = 0
    for text in texts:
        read = plain(text)
        old = [m.span() for m in places._ASCII_CAPITAL_TOKEN.finditer(read)]
        assert [m.span() for m in places._ASCII_CAPITAL_TOKEN_FROM_CAPITAL.finditer(read)] == old, text
        old_runs = [m.span() for m in places._TOWN_RUN.finditer(read)]
        assert places.town_runs(read) == old_runs, text
        tokens += len(old)
        runs += len(old_runs)
    assert tokens > 100_000 and runs > 5000


def test_no_name_has_more_tokens_than_its_first_words_reach() -> None:
    from llmops_guardrails.detectors.pii.classes import plain

    gazetteer = places.gazetteer()
    for phrase in gazetteer.exact:
        count = len(places._ASCII_TOKEN.findall(plain(phrase)))
        for word in gazetteer.first_words:
            if phrase.startswith(word.rstrip(".")):
                assert gazetteer.reach[word.rstrip(".")] >= count, (phrase, word)
    assert gazetteer.reach["Bosnia"] >= 2 and gazetteer.reach["Paris"] >= 1
    # a name of several tokens is still found whole, and one cut short is not
    found = PlaceRecognizer()._gazetteer("From Bosnia and Herzegovina to Paris, via New York.",
                                          "PlaceRecognizer", None)
    assert [(r.start, r.end) for r in found] == [(5, 27), (31, 36), (42, 50)]


def test_known_names_are_found_in_runs_with_a_first_name_only() -> None:
    recognizer = KnownNameRecognizer()
    text = "Faina D. Yefremova met Elle Sandström's team and Homero Portillo at Big Blue Corp."
    assert [(r.start, r.end, r.score) for r in recognizer.analyze(text, ["PERSON"])] == [
        (0, 18, 0.89), (23, 37, 0.89), (49, 64, 0.89)]
