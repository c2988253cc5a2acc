"""The name tagger's scores summed per word and per run (issue 17, item 1, speed, branch `guard20`): the sums are
exact, so they are bit for bit those of every feature's row gathered and summed by numpy (`probabilities`), and a
candidate the exactness bound does not cover is scored that way; the tokens from one `split`."""

from __future__ import annotations

import functools
import random
import re
from pathlib import Path

import numpy as np
import pytest

from llmops_guardrails.detectors.pii import tagger as tg
from llmops_guardrails.detectors.pii.classes import plain
from llmops_guardrails.pii_eval import load_samples
from tests.unit.guardrails.detectors.pii.test_same_outputs import _old_spans_of  # a Tag per tagged word, as before

PII_DATA = Path(__file__).resolve().parents[5].parent / "shared/data/pii/synth_dataset_v2.json"


@functools.cache
def _texts() -> list[str]:
    texts = [s.text for s in load_samples(PII_DATA)]
    return texts + [t.lower() for t in texts[:300]] + [t.upper() for t in texts[:100]] + [
        "", "A", "Anna", "\n\nBob Berg\n", "Dr. Ana María Ñúñez, 12 Rue Nova 3\nSão Paulo SP 01000\nBrazil",
        "x\nAnna Berg\n\nBo\n Ed\n  Al Li\n   Kim", "Anna\r\nBerg\u2028Olga\tKrylova  \n-> Kiel"]


def _reference(model: tg.NameTagger, text: str, evidence: list[tg.Evidence] | None) -> tuple[
        list[tuple[int, int]], list[int], np.ndarray]:
    """Every feature of every candidate, looked up and summed by numpy in `text_parts`' order."""
    spans, cand, feats = tg.text_features(text, model.lex, (evidence or []) if model.evidence else None)
    return spans, cand, model.probabilities(feats)


def test_the_shipped_models_sums_are_exact_for_far_more_rows_than_a_candidate_has() -> None:
    model = tg.shipped()
    weights = model.weights.astype(np.float64)
    # float32 weights from 2^-19 to 2^2 in magnitude: every one a multiple of 2^-42, each below 2.33, so a sum of
    # up to 881 of them stays a multiple of 2^-42 below 2^11 = 2^53 * 2^-42
    assert model.exact_rows == tg.exact_rows(model.weights) == 881
    assert float(np.abs(weights).max()) * model.exact_rows < 2.0**11
    assert bool((np.abs(weights) >= 2.0**-19).all())


def test_the_exactness_bound_of_crafted_weights() -> None:
    one = np.array([[1.0, -1.0, 0.5]], dtype=np.float32)
    assert tg.exact_rows(one) == (2**53 - 1) // 2**24  # quantum 2^-24 (0.5's ulp), largest 1.0 = 2^24 quanta
    assert tg.exact_rows(np.array([[1.0, 2.0**-40, 0.0]], dtype=np.float32)) == (2**53 - 1) // 2**63 == 0
    assert tg.exact_rows(one.astype(np.float64)) == 0  # only float32 is known to be whole multiples
    assert tg.exact_rows(np.array([[1.0, -0.0, 0.5]], dtype=np.float32)) == 0
    assert tg.exact_rows(np.array([[1.0, np.inf, 0.5]], dtype=np.float32)) == 0
    assert tg.exact_rows(np.zeros((2, 3), dtype=np.float32)) > 1 << 60
    assert tg.exact_rows(np.array([[1e-45, 0.0, 0.0]], dtype=np.float32)) == (2**53 - 1)  # a subnormal: 2^-149


def test_sums_within_the_bound_are_the_same_in_any_order_and_grouping() -> None:
    rng = np.random.default_rng(20)
    # magnitudes from 2^-12 to 2^1, as random as float32 allows: quantum 2^-36, so a bound of about 2^53 * 2^-36 / 2
    weights = (rng.choice([-1.0, 1.0], size=(500, 3)) * 2.0 ** rng.uniform(-12, 1, size=(500, 3))).astype(np.float32)
    limit = tg.exact_rows(weights)
    assert 600 < limit < 1 << 30
    w64 = weights.astype(np.float64)
    for n in (1, 2, 7, 8, 9, 30, 129, min(limit, 600)):
        rows = rng.integers(0, len(weights), size=n)  # repeats too
        sums = {tuple(w64[rows].sum(axis=0).tolist()), tuple(np.add.reduceat(w64[rows], [0], axis=0)[0].tolist())}
        for _ in range(5):
            order = rng.permutation(rows)
            running = [0.0, 0.0, 0.0]
            for r in order:
                running = [a + b for a, b in zip(running, w64[r].tolist(), strict=True)]
            sums.add(tuple(running))
            half = len(order) // 2  # two groups summed, then added
            sums.add(tuple((w64[order[:half]].sum(axis=0) + w64[order[half:]].sum(axis=0)).tolist()))
        assert len(sums) == 1, n


@pytest.mark.parametrize("evidence", [False, True])
def test_the_summed_scores_are_the_reference_bit_for_bit(evidence: bool) -> None:
    model = tg.load()
    model.meta["evidence"] = evidence
    rng = random.Random(20)
    for text in _texts():
        spans = tg.tokens(text)
        found: list[tg.Evidence] = []
        if len(spans) > 3:
            for _ in range(rng.randrange(3)):
                a = rng.randrange(len(spans) - 2)
                found.append((rng.choice(["PERSON", "LOCATION"]), spans[a][0], spans[a + rng.randrange(2)][1],
                              rng.choice([0.5, 0.7, 0.9]), rng.choice(["known_name", "name_context", "x"])))
        new = model.word_probabilities(text, found)
        old = _reference(model, text, found)
        assert new[0] == old[0] and new[1] == old[1], text
        assert new[2].shape == old[2].shape and new[2].tobytes() == old[2].tobytes(), text


def test_a_candidate_of_more_rows_than_the_bound_is_scored_from_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tg.load()
    text = "Dear Ben, Mr. Smith and Eva Kleist live in Paris, France. Anna Berg met Olga."
    by_rows: list[str] = []
    original = model._by_rows

    def spy(t: str, evidence: list[tg.Evidence] | None) -> tuple[list[tuple[int, int]], list[int], np.ndarray]:
        by_rows.append(t)
        return original(t, evidence)

    try:
        monkeypatch.setattr(model, "_by_rows", spy)
    except (AttributeError, TypeError):  # a compiled class: its methods cannot be replaced on an instance
        spy = None  # type: ignore[assignment]
    expected = _reference(model, text, [])
    for limit in (0, 5, 20, 10_000):
        model.exact_rows = limit
        got = model.word_probabilities(text)
        assert got[2].tobytes() == expected[2].tobytes() and got[:2] == expected[:2]
    if spy is not None:
        assert by_rows == [text, text, text]  # 0, 5 and 20 rows are fewer than any of these candidates has


def test_a_model_whose_weights_allow_no_exact_sum_scores_from_the_rows() -> None:
    shipped = tg.shipped()
    weights = shipped.weights.copy()
    weights[0, 0] = np.float32(2.0**-60)  # quantum 2^-84: no sum of two weights near 1 is vouched for
    model = tg.NameTagger(dict(shipped.vocab), weights, dict(shipped.meta))
    assert model.exact_rows == 0
    for text in _texts()[:300]:
        new = model.word_probabilities(text)
        assert new[2].tobytes() == _reference(model, text, None)[2].tobytes(), text


def test_the_tokens_from_one_split_are_the_pattern_matches() -> None:
    rng = random.Random(20)
    alphabet = "aZ09 '’-.\n\t\r\x0b\x0cÉé\u00a0\u2028ß_#"
    randoms = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(40))) for _ in range(20_000)]
    for text in _texts() + randoms:
        expected = [m.span() for m in tg._ASCII_TOKEN.finditer(plain(text))]
        assert tg.tokens(text) == expected, repr(text)
        assert expected == [m.span() for m in tg._TOKEN.finditer(text)], repr(text)


def test_an_ascii_texts_split_pieces_are_its_words() -> None:
    for text in _texts():
        if text.isascii():
            assert plain(text) == text
            parts = tg._ASCII_SPLIT.split(text)
            assert parts[1::2] == [text[s:e] for s, e in tg.tokens(text)]
            assert all(re.fullmatch(r"[\t\n\x0b\x0c\r ]*", gap) for gap in parts[0::2])


def test_the_spans_made_once_each_are_those_grown_tag_by_tag() -> None:
    rng = random.Random(21)
    levels = [0.0, 0.1, 0.3, 0.4, 0.5, 0.8, 0.9, 1.0]  # the thresholds themselves and ties between the labels
    texts = [t for t in _texts() if len(tg.tokens(t)) > 2][:1500]
    merged = 0
    for text in texts:
        spans = tg.tokens(text)
        cand = sorted(rng.sample(range(len(spans)), min(len(spans), rng.randrange(1, 12))))
        probs = np.array([[0.0, rng.choice(levels), rng.choice(levels)] for _ in cand])
        for threshold, place in ((0.3, 0.5), (0.4, None), (0.9, 0.8), (0.0, 0.0)):
            new = tg.spans_of(text, spans, cand, probs, threshold=threshold, place_threshold=place)
            assert new == _old_spans_of(text, spans, cand, probs, threshold=threshold, place_threshold=place), text
            merged += sum(1 for t in new if " " in text[t.start:t.end])
    assert merged > 100


def test_a_new_words_blocks_are_those_of_its_word_info_features() -> None:
    """`NameTagger.new_word` finds its rows by prefix and value (`families_of`) instead of making each feature's
    string (and what its lower case, its shape and its lists give, each in one look-up: `LowRows`, `ShapeRows`,
    `ClassRows`): the same blocks as `_features_block` of `word_info`'s features and the run features, and the same
    two-word blocks, for every word of the texts in both kinds of text, and for words with "=", "|" or "+" in them."""
    model = tg.shipped()
    words = {text[s:e] for text in _texts() for s, e in tg.tokens(text)}
    words |= {"<s>", "</s>", "a=b", "=x", "w=", "x|y", "a+b", "Ünïcödé", "ÉTIENNE", "O'Neil", "Jean-Luc", "1234", "ß"}
    for lowercase_text in (False, True):
        for word in sorted(words):
            info = tg.word_info(word, lowercase_text)
            block = model._features_block
            expected = [block(info[3]), block(info[4]), block(info[5]), block(("rb=" + info[0],)),
                        block(("ra=" + info[0],)), block(["rc=" + c for c in info[2]])]
            new = model.new_word(word, lowercase_text)
            got = [new.own, new.as_prev, new.as_next, new.run_before, new.run_after, new.run_alone]
            assert [(b.o, b.person, b.place, b.n) for b in got] == [(b.o, b.person, b.place, b.n) for b in expected], \
                (word, lowercase_text)
            assert (new.low, new.classes, new.joined) == (info[0], info[2], "+".join(info[2]))
            pairs = model._pairs  # the two-word features' blocks, by the word's lower case and by its lists
            assert (new.pw2, new.nw2, new.rb2) == tuple(pairs[k].get(info[0], {}) for k in ("pw2=", "nw2=", "rb2="))
            assert (new.c_nc, new.c_pc) == tuple(pairs[kind].get(new.joined, {}) for kind in ("c|nc=", "c|pc="))


def test_the_families_answer_what_the_vocabulary_answers() -> None:
    vocab = {"w=smith": 0, "w=a=b": 1, "sh=Xx": 2, "c|nc=FN|SN": 3, "csh=FN|Xx": 4, "pw2=a b": 5, "rc=TW": 6, "b": 7}
    families = tg.families_of(vocab)
    assert families["w="] == {"smith": 0, "a=b": 1} and families["sh="] == {"Xx": 2}
    assert families["csh="] == {"FN|Xx": 4} and families["rc="] == {"TW": 6}
    assert all(f"{prefix}{value}" in vocab for prefix, by_value in families.items() for value in by_value)
    model = tg.shipped()
    shipped = tg.families_of(model.vocab)
    for feature, row in model.vocab.items():
        prefix, sep, value = feature.partition("=")
        if prefix + sep in tg._FAMILIES:
            assert shipped[prefix + sep][value] == row
    assert sum(map(len, shipped.values())) > 1000  # most of the vocabulary is one-word features
