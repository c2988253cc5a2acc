"""`lexicon.org_word` and `lexicon.street_word` answer what `ORG_WORD_RE.fullmatch` and `UNIT_OR_STREET.fullmatch`
answer, on every word the tagger and the name rules read (the PII set's tokens and name-run words), on the patterns'
own words in every case and with every character that `regex` matches case-insensitively to one of their letters, and
on random strings of letters, dots, spaces and those characters."""

from __future__ import annotations

import functools
import random
import sys
from pathlib import Path

import regex

from llmops_guardrails.detectors.pii import lexicon
from llmops_guardrails.detectors.pii.lexicon import ORG_WORD_RE, UNIT_OR_STREET, org_word, street_word
from llmops_guardrails.detectors.pii.people import name_runs
from llmops_guardrails.detectors.pii.tagger import tokens
from llmops_guardrails.pii_eval import load_samples

PII_DATA = Path(__file__).resolve().parents[5].parent / "shared/data/pii/synth_dataset_v2.json"


@functools.cache
def case_variants() -> dict[str, list[str]]:
    """For each letter of the patterns' words, every other character `regex` matches to it case-insensitively."""
    words = (*lexicon._UNIT_OR_STREET_WORDS, *lexicon._ORG_WORDS)
    letters = sorted({c for w in words for c in w.lower() if c.isalpha()})
    any_letter = regex.compile("(?i)[" + "".join(letters) + "]")
    found: dict[str, list[str]] = {c: [] for c in letters}
    for code in range(sys.maxunicode + 1):
        c = chr(code)
        if any_letter.fullmatch(c) and c not in letters:
            for letter in letters:
                if regex.fullmatch("(?i)" + regex.escape(letter), c):
                    found[letter].append(c)
    return found


def same(word: str) -> None:
    assert org_word(word) == (ORG_WORD_RE.fullmatch(word) is not None), word
    assert street_word(word) == (UNIT_OR_STREET.fullmatch(word) is not None), word


def test_the_look_ups_answer_as_the_patterns_on_their_own_words_in_every_case() -> None:
    variants = case_variants()
    assert {"K", "\u212a"} <= set(variants["k"]) and "\u017f" in variants["s"]  # capitals, Kelvin sign, long s
    matched = 0
    for base in (*lexicon._ORG_WORD_SET, *lexicon._STREET_WORD_SET, "p.o.", "P. O.", "p o", "P.O", "Straße", "STRASSE"):
        for word in {base, base.lower(), base.upper(), base.title(), base + ".", base + "..", "x" + base, base + "s"}:
            same(word)
            matched += street_word(word) or org_word(word)
        for i, c in enumerate(base):
            for other in variants.get(c.lower(), []):
                same(base[:i] + other + base[i + 1:])
    assert matched > 200


def test_the_look_ups_answer_as_the_patterns_on_every_word_the_tagger_and_the_name_rules_read() -> None:
    seen: set[str] = set()
    for sample in load_samples(PII_DATA):
        text = sample.text
        seen.update(text[s:e] for s, e in tokens(text))
        seen.update(w for run in name_runs(text) for w in text[run.start():run.end()].split(" "))
    for word in seen:
        same(word)
    assert sum(org_word(w) for w in seen) > 10 and sum(street_word(w) for w in seen) > 10


def test_the_look_ups_answer_as_the_patterns_on_random_strings() -> None:
    rng = random.Random(11)
    alphabet = [*"stdrpoaveInclLCoAGS .-'", "\u017f", "\u212a", "\u0130", "\u0131", "ß", "ẞ", "é", "\u0301", "\t"]
    for _ in range(20_000):
        same("".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 9))))
