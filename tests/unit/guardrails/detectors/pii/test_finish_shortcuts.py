"""Shortcuts in the PII detector's last steps (issue 17, item 1, speed, `guard15`), each compared with the code before
it: hits made without the frozen dataclass's `__init__` and scores rounded from a memo (`findings.hit_of`,
`clamped_score`), and the firm-list search from the first comma before a capital (`refinement._firm_lists`). On the
PII set (as written, lower- and upper-cased), crafted texts and random strings."""

from __future__ import annotations

import copy
import dataclasses
import math
import random

import numpy as np
import pytest

from llmops_guardrails.detectors.pii import refinement
from llmops_guardrails.detectors.pii.refinement import _FIRM_LIST, _firm_lists
from llmops_guardrails.findings import Detector, Hit, clamped_score, hit_of
from tests.unit.guardrails.detectors.pii.test_rule_shortcuts import CRAFTED, _detector, _results, _texts


def _same_hit(a: Hit, b: Hit) -> None:
    assert a == b and hash(a) == hash(b)
    assert [type(getattr(a, f.name)) for f in dataclasses.fields(Hit)] == [
        type(getattr(b, f.name)) for f in dataclasses.fields(Hit)]


def test_hit_of_is_the_hit_and_refuses_what_it_refuses() -> None:
    rng = random.Random(151)
    for _ in range(5_000):
        start = rng.randint(0, 50)
        end = start + rng.randint(0, 20)
        score = rng.choice([rng.random(), 0.0, 1.0, 0.85, 0.7])
        signals = tuple(rng.sample(["a", "b", "c"], rng.randint(0, 2)))
        detector = rng.choice(list(Detector))
        new = hit_of(detector, "PERSON", start, end, score, signals=signals)
        _same_hit(new, Hit(detector, "PERSON", start, end, score, signals))
    _same_hit(hit_of(Detector.PII, "X", 3, 4, 0.5), Hit(Detector.PII, "X", 3, 4, 0.5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit_of(Detector.PII, "X", 3, 4, 0.5).start = 2  # type: ignore[misc]
    for bad in [(3, 4, 1.5), (3, 4, -0.1), (3, 4, math.nan), (5, 4, 0.5), (-1, 4, 0.5)]:
        with pytest.raises(ValueError) as new:
            hit_of(Detector.PII, "X", *bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError) as old:
            Hit(Detector.PII, "X", *bad)  # type: ignore[arg-type]
        assert str(new.value) == str(old.value)


def test_clamped_score_rounds_as_round_does() -> None:
    rng = random.Random(152)
    scores: list[object] = [0.0, -0.0, 1.0, 1, 0, True, False, 2, -3, 1.00004, 0.99995, 0.123456789, 0.85, 0.3 + 0.4,
                            math.inf, -math.inf, math.nan, np.float64(0.85), np.float32(0.7), np.float64(-0.0)]
    scores += [rng.random() for _ in range(3_000)] + [rng.uniform(-1, 2) for _ in range(1_000)]
    scores += [round(rng.random(), 2) for _ in range(1_000)]
    for _ in range(2):  # the second time from the memo
        for s in scores:
            old = round(min(1.0, max(0.0, s)), 4)  # type: ignore[call-overload]
            new = clamped_score(s)  # type: ignore[arg-type]
            assert type(new) is type(old) and new == old and math.copysign(1, new) == math.copysign(1, old), s


def test_finish_gives_the_hits_it_gave() -> None:
    detector = _detector()
    for text in _texts():
        found = _results(text)
        new = detector._finish(text, copy.deepcopy(found))
        refined = refinement.refine(text, copy.deepcopy(found))
        old = [Hit(Detector.PII, r.entity_type, r.start, r.end, round(min(1.0, max(0.0, r.score)), 4))
               for r in refinement.resolve_overlaps(refined, text)]
        assert len(new) == len(old)
        for a, b in zip(new, old, strict=True):
            _same_hit(a, b)


_FIRM_PIECES = ["Anna", "Bob", "Smith", "Jones", "Co", "Ltd", " ", "  ", "\u00a0", "\n", ",", ", ", "and", " and ",
                "&", " & ", "at ", "Ölund", "van", "O’Brien", "-", ".", "x", "É", "1", "\u2003", "\u0085"]


def _random_texts(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice(_FIRM_PIECES) for _ in range(rng.randint(1, 30))) for _ in range(n)]


def _firm_like(rng: random.Random) -> str:
    """Random pieces around a list of names joined by commas and "and" or "&", with random whitespace."""
    def ws() -> str:
        return "".join(rng.choice([" ", "\u00a0", "\n", "\t", "\u2003", "\u0085"]) for _ in range(rng.randint(1, 2)))

    names = [rng.choice(["Anna", "Smith", "Ölund", "O’Brien", "Jean-Luc", "Bo", "x", "SMITH"])
             for _ in range(rng.randint(1, 4))]
    body = ("," + ws()).join(names) + rng.choice(["", ","]) + ws() + rng.choice(["and", "&", "or"]) + ws()
    return "".join(rng.choice(_FIRM_PIECES) for _ in range(rng.randint(0, 6))) + body + rng.choice(
        ["Davis", "davis", "Co", "Ltd.", "É"]) + "".join(rng.choice(_FIRM_PIECES) for _ in range(rng.randint(0, 6)))


def test_firm_lists_are_the_whole_texts_matches() -> None:
    rng = random.Random(153)
    texts = _texts() + CRAFTED + _random_texts(rng, 20_000) + [_firm_like(rng) for _ in range(10_000)]
    matched = 0
    for text in texts:
        new = [m.span() for m in _firm_lists(text)]
        assert new == [m.span() for m in _FIRM_LIST.finditer(text)], text
        matched += bool(new)
    assert matched > 2_000
