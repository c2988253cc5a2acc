"""Refinement's organisation searches only for the results they can drop, and the place-particle match only after a
space (issue 17, item 1, speed, `guard13`), compared with refinement before `guard11` on the PII set (as written,
lower- and upper-cased), crafted texts, and the same results with every score made sure (0.95) or unsure (0.5)."""

from __future__ import annotations

import copy

from llmops_guardrails.detectors.pii import refinement
from tests.unit.guardrails.detectors.pii.test_rule_shortcuts import _old_refine, _results, _seen, _texts

CRAFTED = [
    "Anna Berg Inc and Bob Smith Group met Olga Krylova Band, Ivan Petrov & Co, and Jan Holm, Orchestra leader.",
    "Sofia Reyes works at Reyes Consulting; Paulo lives in Reguengos de Monsaraz and in Frankfurt am Main, Porto.",
    "Lisbon de Sintra, Porto-de Mós; Rio de Janeiro.Berlin am\\nMain; Santiago de  Chile; Köln am Rhein!",
]


def test_refinement_gives_what_it_gave_whatever_the_scores() -> None:
    dropped = 0
    for text in _texts() + CRAFTED:
        found = _results(text)
        for score in (None, 0.95, 0.5):
            results = copy.deepcopy(found)
            if score is not None:
                for r in results:
                    r.score = score
            new = refinement.refine(text, copy.deepcopy(results))
            old = _old_refine(text, copy.deepcopy(results))
            assert _seen(new) == _seen(old), (text, score)
            dropped += len(new) < len(results)
    assert dropped > 30  # results were dropped (organisations, employers, firm lists) in these texts
