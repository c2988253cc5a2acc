"""Fewer passes over a text in the capitalised-word code (issue 17, item 1, speed, branch `guard12`): each new
computation against the one it replaced, on the PII set (as written, lower- and upper-cased), the injection set and its
prose, and crafted texts."""

from __future__ import annotations

import random
import sys

import numpy as np
import regex

from llmops_guardrails.detectors.pii import classes, people, places
from llmops_guardrails.detectors.pii import tagger as tg
from llmops_guardrails.detectors.pii.detector import PiiDetector
from llmops_guardrails.detectors.pii.results import rule_of, source_of
from tests.unit.guardrails.corpus import corpus


def _crafted(n: int, seed: int) -> list[str]:
    """Capitalised words, initials, particles, joiners, digits and lower-case words, glued by one or two spaces and
    punctuation: runs of every length and every edge."""
    rng = random.Random(seed)
    words = ["Anna", "Berg", "O'Brien", "Jean-Luc", "McDonald’s", "ÅSA", "Ødegård", "D.", "G", "A", "van", "der",
             "and", "x", "9", "9th", "_", "Anna9", "Kokkola", "İz", "Ǆemal", "e\u0301", "É\u0301va", "-", "'", "’", ".",
             "ANNA", "Ab", "a-B", "Bb-", "Cc'"]
    glue = [" ", " ", " ", "  ", "", "\n", ", ", ". ", "-", "'", "’", "_", "9", "\t"]
    return ["".join(rng.choice(words) + rng.choice(glue) for _ in range(rng.randrange(1, 14))) for _ in range(n)]


def test_one_search_finds_the_lone_words_and_the_capitalised_runs() -> None:
    lone_seen = runs_seen = 0
    for text in corpus(cased=400) + _crafted(20_000, 12):
        lone, runs = people.capitalised_words(text)
        assert [m.span() for m in lone] == [m.span() for m in people._LONE_WORD.finditer(text)], text
        assert [m.span() for m in runs] == [m.span() for m in people._CAPITALISED_RUN.finditer(text)], text
        lone_seen += len(lone)
        runs_seen += len(runs)
    assert lone_seen > 10_000 and runs_seen > 2_000
    # a run of five or more is neither
    assert people.capitalised_words("Anna Berg Olga Eva Ben Dan") == ([], [])


def test_the_two_searches_are_what_they_were() -> None:
    name_word = r"\p{Lu}[\p{L}\p{M}'’-]*[\p{L}\p{M}]"
    assert people._LONE_WORD.pattern == (
        rf"(?<![\p{{L}}\p{{M}}\p{{N}}_'’.-]|\p{{Lu}}[\p{{L}}\p{{M}}'’-]*[ ]){name_word}"
        rf"(?![\p{{L}}\p{{M}}\p{{N}}_'’-]|[ ]\p{{Lu}})")
    assert people._CAPITALISED_RUN.pattern == (
        rf"(?<![\p{{L}}\p{{M}}\p{{N}}_'’.-]|\p{{Lu}}[\p{{L}}\p{{M}}'’-]*[ ])"
        rf"{name_word}(?:[ ]{name_word}){{1,3}}(?![\p{{L}}\p{{M}}\p{{N}}_'’-]|[ ]\p{{Lu}})")
    assert isinstance(people._CAPITALISED_WORDS, regex.Pattern)


def _evidence(detector: PiiDetector, text: str) -> list[tg.Evidence]:
    """What the rules found, as the detector gives it to the tagger."""
    return [(r.entity_type, r.start, r.end, r.score, rule_of(r) or source_of(r)) for r in detector._rules(text)]


def test_the_evidence_rows_are_the_rows_of_the_evidence_features(detector: PiiDetector) -> None:
    model = tg.load()
    weights = model.weights.astype("float64")
    rng = random.Random(12)
    crafted = 0
    for text in corpus(cased=400)[:2500]:
        spans = tg.tokens(text)
        cand = tg.candidates(text, spans, model.lex)
        evidence = _evidence(detector, text)
        if len(spans) > 4 and rng.random() < 0.5:  # overlapping spans, rules the vocabulary lacks, every bucket
            for _ in range(3):
                a = rng.randrange(len(spans) - 2)
                evidence.append((rng.choice(["PERSON", "LOCATION", "NRP"]), spans[a][0], spans[a + rng.randrange(3)][1],
                                 rng.choice([0.3, 0.65, 0.85, 0.9]), rng.choice(["known_name", "no such rule"])))
                crafted += 1
        old = tg._evidence_features(spans, cand, evidence)
        new = model._evidence_blocks(spans, cand, evidence)  # since guard20: the rows' sums (exact in any order)
        expected = []
        for f in old:
            rows = [model.vocab[feature] for feature in f if feature in model.vocab]
            expected.append(None if f == ["ev=none"] else (*weights[rows].sum(axis=0).tolist(), len(rows)))
        assert [None if b is None else (b.o, b.person, b.place, b.n) for b in new] == expected, text
    assert crafted > 1000 and len(model._evidence) > 10


def test_the_tagger_with_the_rules_evidence_gives_the_probabilities_of_its_features_bit_for_bit(
        detector: PiiDetector) -> None:
    model = tg.shipped()
    assert model.evidence
    seen = 0
    for text in corpus(cased=400)[:2500] + _crafted(500, 13):
        evidence = _evidence(detector, text)
        spans, cand, probs = model.word_probabilities(text, evidence)
        old_spans, old_cand, feats = tg.text_features(text, model.lex, evidence)
        assert (spans, cand) == (old_spans, old_cand), text
        assert np.array_equal(probs, model.probabilities(feats)), text
        seen += len(cand)
    assert seen > 10_000


def test_the_pair_features_by_their_parts() -> None:
    pairs = tg.pairs_of({"pw2=a b": 1, "pw2=<s> x": 2, "nw2=a b c": 3, "c|nc=|FN": 4, "c|nc=FN+SN|TW": 5, "pw2=ab": 6,
                         "rb2=": 7, "psh=Xx": 8, "c|pc=GZcit|GZa": 9})
    assert pairs == {"pw2=": {"a": {"b": 1}, "<s>": {"x": 2}}, "nw2=": {"a": {"b c": 3}}, "rb2=": {},
                     "c|nc=": {"": {"FN": 4}, "FN+SN": {"TW": 5}}, "c|pc=": {"GZcit": {"GZa": 9}}}
    # no list's short name holds the separator of the lists' pairs
    names = {c for word in ("Anna", "Paris", "Kokkola", "New", "Texas", "Europe", "Will", "Monday", "Inc", "Street")
             for c in tg.lexicon().classes(word, False)} | {"GZ" + s[:3] for s in ("countries", "us_states", "regions",
                                                                                   "cities")}
    assert not any("|" in c for c in names)


def _sentences(n: int, seed: int) -> list[str]:
    """Names at sentence starts followed by subject verbs, commas and the vocative's words, glued every way."""
    rng = random.Random(seed)
    names = ["Anna", "Anna Berg", "Anna G. Berg", "Anna van der Berg", "Jean-Luc O'Brien", "It", "I", "Is", "Dear Bob",
             "ANNA", "Ödön", "The Berg"]
    after = [" lives in", " said", " is my", " is a very", " was our", " and I", " and Ib", " called me", ",  can",
             ", I", ",\nIt", ", it", ", Bob", ", thanks", ", thanksgiving", " van", " G.", " had given", "  is from",
             ", please", ",", " "]
    glue = [". ", ".  ", ".    ", "! ", "?\n", "\n", "\n   ", "\n\t ", " ", ", ", "", ":\n", ".\n\n"]
    return ["".join(rng.choice(glue) + rng.choice(names) + rng.choice(after) for _ in range(rng.randrange(1, 9)))
            for _ in range(n)]


def test_one_search_finds_the_subjects_and_the_vocatives() -> None:
    subjects_seen = vocatives_seen = 0
    for text in corpus(cased=400) + _sentences(20_000, 14) + _crafted(5_000, 15):
        subjects, vocatives = people.sentence_names(text)
        assert [m.span() for m in subjects] == [m.span() for m in people._SUBJECT.finditer(text)], text
        assert [m.span() for m in vocatives] == [m.span() for m in people._VOCATIVE.finditer(text)], text
        assert [m.span("name") for m in subjects + vocatives] == [
            m.span("name") for m in [*people._SUBJECT.finditer(text), *people._VOCATIVE.finditer(text)]]
        subjects_seen += len(subjects)
        vocatives_seen += len(vocatives)
    assert subjects_seen > 5_000 and vocatives_seen > 5_000


def test_the_subject_and_vocative_searches_are_what_they_were() -> None:
    start, name = people._SENTENCE_START, people._PERSON_NAME
    assert people._SUBJECT.pattern == (
        rf"{start}(?P<name>{name})(?=\s+(?:lives|lived|had\s+given|has\s+given|gave|spent|works|"
        r"worked|said|says|told|asked|wrote|replied|is\s+from|was\s+from|moved|married|emailed|texted|called\s+me|"
        r"and\s+I\b|is\s+(?:a\s+)?(?:very|my|our|so)\b|was\s+(?:a\s+)?(?:very|my|our)\b))")
    assert people._VOCATIVE.pattern == (
        rf"{start}(?P<name>{name}),\s+(?=(?i:can|could|would|will|please|are|do|did|have|i|you|"
        r"thank|thanks|we|let|how|what|where|when|why|is|it|this)\b)")


def _classes(text: str, patterns: list[tuple[str, bytes]]) -> bytes:
    """Each character's class in `text`: the kind of the last of `patterns` it matches, else "o"."""
    kinds = bytearray(b"o" * len(text))
    for pattern, kind in patterns:
        for m in regex.finditer(pattern, text):
            kinds[m.start():m.end()] = kind * (m.end() - m.start())
    return bytes(kinds)


def test_every_character_stands_in_by_a_character_of_its_class() -> None:
    table = classes.Classes({code: code for code in range(128)})
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    translated = every.translate(table)
    assert len(translated) == len(every) and translated.isascii()
    assert translated[:128] == every[:128]
    # the classes the patterns read, in `regex`'s Unicode classes and in ASCII
    unicode = [(r"[\p{L}\p{M}]+", b"l"), (r"\p{Lu}+", b"L"), (r"\d+", b"d"), (r"\s+", b"s"), ("['’]+", b"q"),
               ("-+", b"-"), (r"\.+", b".")]
    ascii = [("[A-Za-z]+", b"l"), ("[A-Z]+", b"L"), ("[0-9]+", b"d"), ("[\t\n\x0b\x0c\r ]+", b"s"), ("'+", b"q"),
             ("-+", b"-"), (r"\.+", b".")]
    assert _classes(every, unicode) == _classes(translated, ascii)
    assert len(table) == table.LIMIT  # remembered up to its limit; the others looked up each time
    assert classes.plain("ß\u0301Ä٣²\u2028’x\x1c") == "qqA0\x01\x0b'x\x1c"
    assert classes.plain("Anna") == "Anna"


def test_the_tokens_are_those_of_the_token_pattern() -> None:
    rng = random.Random(16)
    alphabet = "aZé\u0301ßİÄǅ'’-–.,_0٣²Ⅻ \t\n\u00a0\u2028\x1c\x1f\x85#@😀"
    randoms = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(20_000)]
    for text in corpus(cased=400) + _crafted(5_000, 17) + randoms:
        assert tg.tokens(text) == [m.span() for m in tg._TOKEN.finditer(text)], text
        read = classes.plain(text)
        assert [m.span() for m in places._ASCII_CAPITAL_TOKEN.finditer(read)] == [
            m.span() for m in places._CAPITAL_TOKEN.finditer(text)], text
        assert [m.span() for m in places._ASCII_TOKEN.finditer(read)] == [
            m.span() for m in places._TOKEN.finditer(text)], text
        for at in range(1, len(text) if len(text) < 50 else 0, 3):  # from a position, as after a gazetteer start
            assert [m.span() for m in places._ASCII_TOKEN.finditer(read, at)] == [
                m.span() for m in places._TOKEN.finditer(text, at)], (text, at)


def test_the_tagger_reads_a_text_right_after_its_rules_so_the_text_is_translated_once(
        detector: PiiDetector) -> None:
    tagging = PiiDetector(detector.ner, entities=detector.entities, names="tagger")
    texts = [f"Die Akte n°{i} von Zorblax Quentwhistle liegt bei Frau Ödegård in Tromsø." for i in range(30)]
    classes.plain.cache_clear()
    tagging.detect_many(texts)
    assert classes.plain.cache_info().misses == len(texts)  # the gazetteer's, then the tagger's from the cache
