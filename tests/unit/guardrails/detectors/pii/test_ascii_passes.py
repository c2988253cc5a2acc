"""Whole-text passes of the capitalised-word code read by the standard library's `re` (issue 17, item 1, speed,
branch `guard17`): `people.name_runs` and `people.capitalised_words` search `re` patterns that stand for their `regex`
ones in `classes.plain(text)` (the text itself when ASCII), `people.sentence_names` tries its `regex` pattern only
where an `re` search of `classes.plain(text)` finds a start, and `cues.starts` reads its keys from the character
before them. Each against the search it replaces on the PII set (as written, lower- and upper-cased), the injection
set and its prose, 20,000 crafted ASCII texts, 20,000 crafted texts with characters that are not ASCII and 20,000
random strings."""

from __future__ import annotations

import random
import string

import pytest

from llmops_guardrails.detectors import keys
from llmops_guardrails.detectors.pii import classes, cues, people
from tests.unit.guardrails.corpus import corpus

_CASED = 3_000


def _crafted(n: int, seed: int) -> list[str]:
    """Sentence starts, names, initials, particles, joiners, subject verbs, vocative words and punctuation, glued by
    every ASCII kind of whitespace (U+001C-U+001F too, which `re`'s `\\s` takes and `regex`'s does not)."""
    rng = random.Random(seed)
    pieces = ["Anna", "Berg", "O'Brien", "Jean-Luc", "D.", "G", "A", "van", "der", "de", "la", "and", "x", "9", "_",
              "Anna9", "ANNA", "Ab", "a-B", "Bb-", "Cc'", "lives", "said", "is", "my", "can", "you", "thanks", "and I",
              "is a very", "was our", "had  given", "Dr", "call", "my name is", "flew to", "I'm", "dear", "Kokkola",
              ".", "!", "?", ",", ":", "'s", "-", "'"]
    glue = [" ", " ", " ", "  ", "   ", "", "\n", "\n  ", "\n" + " " * 8, "\n" + " " * 9, ", ", ". ", ".\t", "!\r\n",
            "? \x0b", "-", "'", "_", "9", "\t", "\x0c", "\x1c", "\x1f", ".\x1d"]
    return ["".join(rng.choice(pieces) + rng.choice(glue) for _ in range(rng.randrange(1, 16))) for _ in range(n)]


def _unicode(n: int, seed: int) -> list[str]:
    """The crafted pieces with capitals and letters that are not ASCII, marks, a letter number, connector punctuation,
    whitespace that is not a space (no-break, ideographic, line separator), the four characters `regex` matches to an
    ASCII letter case-insensitively (U+0130, U+0131, U+017F, the Kelvin sign) and look-alike particles ("dé", "vän")."""
    rng = random.Random(seed)
    pieces = ["Élodie", "Ödön", "ÅSA", "İz", "Ǆemal", "e\u0301", "É\u0301va", "Anna", "Berg", "dé", "vän", "da",
              "\x01", "van", "lives", "said", "Lives", "ıs", "iſ", "thanKs", "\u212aate", ", can", ", ıt", ", thanks",
              "in", "İN", "ın", "to", "from", "fröm", "acroſs", "viſit", "vİa", "city", "Kokkola", "\u2167", "²", "‿",
              "’s", "½", "D.", ".", "!", "?", "said", "and I"]
    glue = [" ", " ", "\u00a0", "\u3000", "\u2028", "\u2003", "\n", "\n\u00a0", ". ", ".\u00a0", ", ", "\t", "",
            "-", "’", "_", "9", "\u0660"]
    return ["".join(rng.choice(pieces) + rng.choice(glue) for _ in range(rng.randrange(1, 16))) for _ in range(n)]


def _random(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = "AaBbZzDd '’-._,!?:\n\t\r\x0b\x0c\x1c\x1f90" + string.ascii_letters[:6]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(n)]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return corpus(cased=_CASED) + _crafted(20_000, 17) + _unicode(20_000, 23) + _random(20_000, 71)


def _ascii(texts: list[str]) -> list[str]:
    return [t for t in texts if t.isascii()]


def test_the_texts_hold_matches_of_every_kind(texts: list[str]) -> None:
    ascii_texts = _ascii(texts)
    assert len(ascii_texts) > 40_000
    subjects = vocatives = runs = lone = 0
    for t in ascii_texts[:-20_000]:  # (not the random strings)
        s, v = people.sentence_names(t)
        subjects, vocatives = subjects + len(s), vocatives + len(v)
        lo, ru = people.capitalised_words(t)
        lone, runs = lone + len(lo), runs + len(ru)
    assert subjects > 500 and vocatives > 100 and lone > 20_000 and runs > 2_000


def test_sentence_names_are_the_regex_searches(texts: list[str]) -> None:
    for t in texts:
        subjects, vocatives = people.sentence_names(t)
        want_subjects = [(m.span(), m.span("name")) for m in people._SUBJECT.finditer(t)]
        want_vocatives = [(m.span(), m.span("name")) for m in people._VOCATIVE.finditer(t)]
        assert [(m.span(), m.span("name")) for m in subjects] == want_subjects, t
        assert [(m.span(), m.span("name")) for m in vocatives] == want_vocatives, t
        assert [(m.span(), m.group("name"), m.start("subject")) for m in people._SUBJECT_OR_VOCATIVE.finditer(t)] == [
            (m.span(), m.group("name"), m.start("subject")) for m in sorted([*subjects, *vocatives],
                                                                           key=lambda m: m.start())], t


def test_name_runs_are_the_regex_search(texts: list[str]) -> None:
    for t in texts:
        assert [m.span() for m in people.name_runs(t)] == [m.span() for m in people._NAME_RUN.finditer(t)], t


def test_capitalised_words_are_the_regex_searches(texts: list[str]) -> None:
    for t in texts:
        lone, runs = people.capitalised_words(t)
        assert [m.span() for m in lone] == [m.span() for m in people._LONE_WORD.finditer(t)], t
        assert [m.span() for m in runs] == [m.span() for m in people._CAPITALISED_RUN.finditer(t)], t


def test_the_stand_ins_read_as_the_characters_they_stand_for() -> None:
    # a capital `re`'s [A-Z] does not know, whitespace that is not a space, a number that is not a digit before or
    # after a capital, particle look-alikes, a "\x01" of the text's own (searched with `regex`)
    cases = ["Élodie Berg lives here.", "Anna\u00a0Berg said so", "\u2167Anna Berg came", "Ödön Kis, can you?",
             "²Anna Berg", "Anna Berg²", "Anna dé Berg", "Anna dä Berg", "Anna da Berg", "\x01Anna Berg",
             "Anna\x01 Berg", "Anna\u2003Berg Cole", "Ævar Þór Ösp"]
    for t in cases:
        subjects, vocatives = people.sentence_names(t)
        want = [m.span() for m in people._SUBJECT_OR_VOCATIVE.finditer(t)]
        assert sorted(m.span() for m in [*subjects, *vocatives]) == want
        assert [m.span() for m in people.name_runs(t)] == [m.span() for m in people._NAME_RUN.finditer(t)]
        lone, runs = people.capitalised_words(t)
        assert [m.span() for m in lone] == [m.span() for m in people._LONE_WORD.finditer(t)]
        assert [m.span() for m in runs] == [m.span() for m in people._CAPITALISED_RUN.finditer(t)]
    assert [m.span() for m in people.name_runs("²Anna Berg, Anna dé Berg, Anna\u00a0Berg")] == []
    assert [m.span() for m in people.name_runs("Anna da Berg, Ævar Þór")] == [(0, 12), (14, 22)]
    subjects, _ = people.sentence_names("Élodie Berg lives here.")
    assert [m.group("name") for m in subjects] == ["Élodie Berg"]


def test_a_run_after_a_capitalised_word_is_dropped_with_the_starts_inside_it() -> None:
    # five capitalised words: neither a lone word nor a run; "X- Anna Berg": after a capital, joiner and space
    for t in ["Aa Bb Cc Dd Ee", "X- Anna Berg", "a-B Anna", "Xy- Anna Berg Cole"]:
        lone, runs = people.capitalised_words(t)
        assert lone == runs == [], t
        assert not list(people._CAPITALISED_WORDS.finditer(t))


def test_the_non_ascii_texts_hold_sentence_names(texts: list[str]) -> None:
    others = [t for t in texts if not t.isascii()]
    assert len(others) > 20_000
    assert sum(len(people.sentence_names(t)[0]) + len(people.sentence_names(t)[1]) for t in others) > 500


def test_cue_starts_are_the_zero_width_search(texts: list[str]) -> None:
    odd = ["", "dr", "x dr", "_dr", "İ'm", "\u212aall me", "ſaid Anna", "Dr.Dr Dr", "9said", "said", " said"]
    for t in texts + odd:
        folded = keys.fold(t)
        want = [(m.start(), m.groups()) for m in cues._STARTS.finditer(folded)]
        assert [(m.start(), m.groups()) for m in cues._STARTS_AFTER.finditer(" " + folded)] == want, t
        found = cues.starts.__wrapped__(t)  # type: ignore[attr-defined]
        assert tuple(found) == tuple([at for at, g in want if g[k] is not None] for k in range(4)), t


def test_a_latin_1_text_is_translated_as_bytes_to_the_same_stand_ins(texts: list[str]) -> None:
    every = "".join(map(chr, range(256)))
    table = classes.Classes({code: code for code in range(128)})
    assert classes.plain.__wrapped__(every) == every.translate(table)  # type: ignore[attr-defined]
    rng = random.Random(5)
    latin = ["".join(rng.choice(every) for _ in range(rng.randrange(1, 60))) for _ in range(5_000)]
    wider = [t + "\u0100" for t in latin[:500]] + ["\u2019" + t for t in latin[:500]]
    for t in texts + latin + wider:
        assert classes.plain.__wrapped__(t) == t.translate(table), t  # type: ignore[attr-defined]
