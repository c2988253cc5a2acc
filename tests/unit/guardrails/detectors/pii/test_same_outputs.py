"""Cheaper computations in the PII recognizers and the name tagger (issue 17, item 1, speed): each is compared with
the computation it replaced, on the PII set (as written, lower-cased and upper-cased) and crafted inputs."""

from __future__ import annotations

import functools
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import regex

from llmops_guardrails.detectors.pii import people
from llmops_guardrails.detectors.pii import tagger as tg
from llmops_guardrails.detectors.pii.lexicon import LINE, NAME_WORD
from llmops_guardrails.detectors.pii.people import KnownNameRecognizer
from llmops_guardrails.detectors.pii.places import _TAIL_TOKEN, PlaceRecognizer
from llmops_guardrails.pii_eval import load_samples

PII_DATA = Path(__file__).resolve().parents[5].parent / "shared/data/pii/synth_dataset_v2.json"


@functools.cache
def _texts() -> list[str]:
    texts = [s.text for s in load_samples(PII_DATA)]
    return texts + [t.lower() for t in texts[:400]] + [t.upper() for t in texts[:200]] + [
        "", "A", "x", "Anna", "\n\nBob Berg\n", "Dr. Ana María Ñúñez, 12 Rue Nova 3\nSão Paulo SP 01000\nBrazil",
        "O'Brien  Jean-Luc\tMcDonald's — Kokkola, Finland. eric g. samoylova  drove to kiel",
        "- Anna Berg\n> Bob\n• Olga Krylova lives in Kokkola\n * Eva.\n-> Kiel, Germany\n  x Ben\n\t*-• Dan Berg."]


def _old_word_probabilities(model: tg.NameTagger, text: str, evidence: list[tg.Evidence]) -> tuple[
        list[tuple[int, int]], list[int], np.ndarray]:
    """`NameTagger.word_probabilities` before it looked each word's blocks up once (every block of every
    candidate built by `text_parts`, then looked up): the features in the same order."""
    spans, cand, feats = tg.text_features(text, model.lex, evidence if model.evidence else None)
    return spans, cand, model.probabilities(feats)


def test_the_tagger_gives_the_probabilities_of_its_features_bit_for_bit() -> None:
    model = tg.shipped()
    rng = random.Random(17)
    for text in _texts():
        spans = tg.tokens(text)
        evidence: list[tg.Evidence] = []
        if len(spans) > 3:  # a rule's span over a few words somewhere, as the detector passes them
            a = rng.randrange(len(spans) - 2)
            evidence = [("PERSON", spans[a][0], spans[a + 1][1], rng.choice([0.5, 0.7, 0.9]), "known_name")]
        new = model.word_probabilities(text, evidence)
        old = _old_word_probabilities(model, text, evidence)
        assert new[0] == old[0] and new[1] == old[1], text
        assert new[2].shape == old[2].shape and np.array_equal(new[2], old[2]), text


def test_the_tagger_forgets_its_remembered_words_when_full() -> None:
    model = tg.load()
    model.OWN_CACHE = 3
    text = "Anna Berg met Olga Krylova in Kokkola."
    first = model.word_probabilities(text)[2]
    assert all(len(words) <= 3 for words in model._words.values())
    assert np.array_equal(model.word_probabilities(text)[2], first)
    assert np.array_equal(first, _old_word_probabilities(model, text, [])[2])


def test_a_remembered_word_holds_the_sums_of_its_features_rows() -> None:
    model = tg.load()
    vocab = model.vocab
    weights = model.weights.astype(np.float64)
    text = "Dear Ben, Mr. Smith and Eva Kleist live in Paris, France. Anna Berg met Olga."
    model.word_probabilities(text)
    words = model._words[False]
    assert {"Ben", "Smith", "Paris", "in", "<s>"} <= set(words)

    def rows(features: list[str]) -> list[int]:
        return [vocab[f] for f in features if f in vocab]

    def summed(block: tg.Block, features: list[str]) -> bool:
        found = rows(features)
        total = weights[found].sum(axis=0) if found else np.zeros(3)
        return (block.o, block.person, block.place, block.n) == (*total.tolist(), len(found))

    found = 0
    pairs_found = 0
    for word, w in words.items():
        info = tg.word_info(word, False)
        assert w.joined == "+".join(info[2])
        assert (w.low, w.classes) == (info[0], info[2])
        assert summed(w.own, list(info[3])) and summed(w.as_prev, list(info[4])) and summed(w.as_next, list(info[5]))
        assert summed(w.run_before, ["rb=" + info[0]]) and summed(w.run_after, ["ra=" + info[0]])
        assert summed(w.run_alone, ["rc=" + c for c in info[2]])
        found += w.run_before.n + w.run_after.n + w.run_alone.n
        # the features of two parts it is the first of, by their second part, as blocks of one row
        pairs = (w.pw2, w.nw2, w.rb2, w.c_nc, w.c_pc)
        for kind, first, by_second in zip(tg._PAIRS, [info[0]] * 3 + [w.joined] * 2, pairs, strict=True):
            sep = " " if len(kind) == 4 else "|"
            expected = {f[len(kind + first + sep):]: f for f in vocab if f.startswith(kind + first + sep)}
            assert set(by_second) == set(expected)
            assert all(summed(by_second[second], [f]) for second, f in expected.items())
            pairs_found += len(by_second)
    assert found > 10 and pairs_found > 100


def _old_split_tail(text: str, cs: int, ce: int) -> tuple[int, str]:
    """`PlaceRecognizer._split_tail` before it read a line's words from the end back."""
    words = list(regex.finditer(r"\S+", text[cs:ce]))
    cut = len(words)
    while cut > 1 and _TAIL_TOKEN.match(words[cut - 1].group()):
        cut -= 1
    if cut == len(words):
        return ce, ""
    end = cs + words[cut - 1].end()
    return end, text[end:ce].strip()


@pytest.mark.parametrize("line", [
    "", "   ", "9100", "Aalborg 9100", "Aalborg NO 9100", "9100 NO", "12 34 56", "Main St 12, nan", "Oslo ,",
    "  Kiel   24103  DE  ", "Rue\u00a0Nova 3", "A B C", "Springfield IL 62704-1234", "nan nan"])
def test_a_lines_tail_is_cut_where_it_was(line: str) -> None:
    text = f"Anna Berg\n{line}\nNorway"
    cs, ce = len("Anna Berg\n"), len("Anna Berg\n") + len(line)
    assert PlaceRecognizer._split_tail(text, cs, ce) == _old_split_tail(text, cs, ce)


def test_every_lines_tail_in_the_pii_set_is_cut_where_it_was() -> None:
    for text in _texts():
        for m in LINE.finditer(text):
            for cs in (m.start(), m.start() + 1):
                if cs <= m.end():
                    assert PlaceRecognizer._split_tail(text, cs, m.end()) == _old_split_tail(text, cs, m.end())


def test_a_remembered_common_word_answer_is_the_computed_one() -> None:
    words = {w for text in _texts()[:600] for w in regex.findall(r"\p{Lu}[\p{L}\p{M}'’-]*", text)}
    words |= {"Is", "The", "Bank", "Street", "Monday", "Paris", "Anna", "Inc"}
    for _ in range(2):  # computed, then remembered
        for word in sorted(words):
            assert KnownNameRecognizer._common(word) == KnownNameRecognizer._common.__wrapped__(word), word
    assert KnownNameRecognizer._common.cache_info().hits >= len(words)


_OLD_TAGGER_TOKEN = regex.compile(r"[\p{L}\p{M}](?:[\p{L}\p{M}]|['’-](?=[\p{L}\p{M}]))*|\d+|\S")
_OLD_PLACE_TOKEN = regex.compile(r"[\p{L}\p{M}]+(?:['’.-][\p{L}\p{M}]+)*\.?")


def _tricky_strings() -> list[str]:
    """Random strings of letters, marks, digits, joiners, dots and spaces (seeded): every way a run can end."""
    rng = random.Random(17)
    alphabet = ["a", "B", "é", "\u0301", "ß", "Ж", "7", "'", "’", "-", ".", " ", "\n", ",", "_", "\u00a0"]
    return [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 24))) for _ in range(20_000)] + [
        "a--b", "a'’b", "a-", "-a", "a.", "a..b", "a.b.", "O'Brien-", "\u0301a", "a\u0301'b", "x-1", "12ab"]


def test_the_tokenizers_find_the_tokens_of_their_old_patterns() -> None:
    from llmops_guardrails.detectors.pii.places import _TOKEN as place_token

    for text in _texts() + _tricky_strings():
        assert tg.tokens(text) == [m.span() for m in _OLD_TAGGER_TOKEN.finditer(text)], text
        assert [m.span() for m in place_token.finditer(text)] == [
            m.span() for m in _OLD_PLACE_TOKEN.finditer(text)], text


def _old_spans_of(text: str, spans: list[tuple[int, int]], cand: list[int], probs: np.ndarray, *, threshold: float,
                  place_threshold: float | None = None) -> list[tg.Tag]:
    """`tagger.spans_of` before it read the probabilities as Python floats (`tolist`)."""
    out: list[tg.Tag] = []
    last_index = -2
    place_threshold = threshold if place_threshold is None else place_threshold
    for k, i in enumerate(cand):
        p_person, p_place = float(probs[k, 1]), float(probs[k, 2])
        label, p = ("PERSON", p_person) if p_person >= p_place else ("LOCATION", p_place)
        if p < (threshold if label == "PERSON" else place_threshold):
            continue
        s, e = spans[i]
        if out and out[-1].label == label and last_index >= 0 and tg._joins(text, spans, last_index, i):
            out[-1] = tg.Tag(label, out[-1].start, e, min(out[-1].probability, p))
        else:
            out.append(tg.Tag(label, s, e, p))
        last_index = i
    return out


def test_the_tagger_spans_are_those_read_from_numpy_scalars() -> None:
    model = tg.shipped()
    tags = 0
    for text in _texts():
        spans, cand, probs = model.word_probabilities(text)
        for threshold, place in ((0.3, 0.5), (0.4, None), (0.9, 0.9)):
            new = tg.spans_of(text, spans, cand, probs, threshold=threshold, place_threshold=place)
            assert new == _old_spans_of(text, spans, cand, probs, threshold=threshold, place_threshold=place), text
            tags += len(new)
    assert tags > 1000


def test_the_capital_tokens_are_the_tokens_that_start_with_a_capital() -> None:
    from llmops_guardrails.detectors.pii.places import _CAPITAL_TOKEN, _TOKEN

    for text in _texts() + _tricky_strings() + [s.title() for s in _tricky_strings()[:5000]]:
        every = [m.span() for m in _TOKEN.finditer(text) if text[m.start()].isupper()]
        assert [m.span() for m in _CAPITAL_TOKEN.finditer(text) if text[m.start()].isupper()] == every, text


def test_every_letter_str_isupper_calls_a_capital_is_a_capital_of_regex() -> None:
    letter, capital = regex.compile(r"[\p{L}\p{M}]"), regex.compile(r"\p{Lu}")
    missed = [hex(c) for c in range(sys.maxunicode + 1)
              if chr(c).isupper() and letter.match(chr(c)) and not capital.match(chr(c))]
    assert missed == []


def _gazetteer_texts() -> list[str]:
    """Texts with gazetteer names of every length, in every case, near dots, joiners and line breaks."""
    from llmops_guardrails.detectors.pii.places import gazetteer

    rng = random.Random(17)
    names = sorted(gazetteer().exact)
    glue = [" ", "  ", ". ", ".", "-", "'", "\n", ", ", " in ", " from ", " the ", "x", " New ", " San "]
    out = []
    for _ in range(3000):
        parts = [rng.choice(names) if rng.random() < 0.6 else rng.choice(["Anna", "of", "St", "A.", "Mr", "é"])
                 for _ in range(rng.randrange(1, 6))]
        text = "".join(p + rng.choice(glue) for p in parts)
        out.append(rng.choice([text, text, text.lower(), text.upper()]))
    return out


def test_the_gazetteer_finds_what_reading_every_token_finds() -> None:
    from llmops_guardrails.detectors.pii.places import _TOKEN

    recognizer = PlaceRecognizer()
    places = 0
    for text in _texts() + _tricky_strings()[:5000] + _gazetteer_texts():
        lowercase_text = not any(c.isupper() for c in text)
        every = recognizer._gazetteer_tokens(text, [m.span() for m in _TOKEN.finditer(text)], "PlaceRecognizer",
                                             None, lowercase_text=lowercase_text)
        new = recognizer._gazetteer(text, "PlaceRecognizer", None)
        assert [(r.start, r.end, r.score) for r in new] == [(r.start, r.end, r.score) for r in every], text
        places += len(new)
    assert places > 3000


# `KnownNameRecognizer`'s pattern for a run's words before `people.run_tokens`.
_OLD_RUN_TOKEN = regex.compile(rf"{NAME_WORD}|\p{{Lu}}\.?|{people._PARTICLE}")


def _old_run_tokens(start: int, words: list[str]) -> list[tuple[int, int, str]]:
    return [(start + m.start(), start + m.end(), m.group()) for m in _OLD_RUN_TOKEN.finditer(" ".join(words))]


def _name_run_texts() -> list[str]:
    """The PII set and runs of names, initials and every particle, with possessives, in every case."""
    rng = random.Random(17)
    pieces = ["Anna", "Berg", "O'Brien", "Jean-Luc", "D.", "G", "Faina", "Yefremova", "Ström's", "Emmie", "Inc",
              "Street", "Paris", "Virginia", "Beach", "Homero", "Portillo", "The", "New",
              *people._PARTICLE[3:-1].split("|")]
    ends = [".", " said", "'s x"]
    crafted = [" ".join(rng.choice(pieces) for _ in range(rng.randrange(2, 8))) + rng.choice(ends)
               for _ in range(5000)]
    return _texts() + crafted + ["Jan van der Berg met Anna della Rosa and Ana dos Santos, Lee den Hartog's sister."]


def test_a_name_runs_words_are_the_name_words_and_initials_the_old_pattern_found() -> None:
    runs = 0
    for text in _name_run_texts():
        for run in people._NAME_RUN.finditer(text):
            words = run.group().split(" ")
            new, old = people.run_tokens(run.start(), words), _old_run_tokens(run.start(), words)
            assert [t for t in new if not t[2].islower()] == [t for t in old if not t[2].islower()], text
            particles = [(s, e) for s, e, w in new if w.islower()]
            assert all(any(s <= a and b <= e for s, e in particles) for a, b, w in old if w.islower()), text
            assert all(text[s:e] == w for s, e, w in new)
            runs += 1
    assert runs > 4000


def test_the_known_names_are_those_found_with_the_old_run_words(monkeypatch: pytest.MonkeyPatch) -> None:
    recognizer = KnownNameRecognizer()
    texts = _name_run_texts()
    new = [[(r.start, r.end, r.score) for r in recognizer.analyze(t, ["PERSON"])] for t in texts]
    monkeypatch.setattr(people, "run_tokens", _old_run_tokens)
    old = [[(r.start, r.end, r.score) for r in recognizer.analyze(t, ["PERSON"])] for t in texts]
    assert new == old
    assert sum(map(len, new)) > 2000
