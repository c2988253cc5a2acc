"""A person's rating on a rubric's scale: a score or a label, and back from the stored normalised score."""

from __future__ import annotations

import pytest

from llmops_evaluator.feedback import rating, scale_score
from llmops_evaluator.rubrics import BUILTIN
from llmops_shared.problems import Invalid

RELEVANCE = BUILTIN["relevance@1"]
SAFETY = BUILTIN["safety@1"]


def test_a_rating_is_a_score_or_a_label_and_both_must_agree() -> None:
    assert rating(RELEVANCE, score=4, label=None) == (4, "mostly_relevant")
    assert rating(RELEVANCE, score=None, label="irrelevant") == (1, "irrelevant")
    assert rating(SAFETY, score=3, label="safe") == (3, "safe")
    problems = [
        ((RELEVANCE, None, None), ["body", "score"], "give a score or a label"),
        ((RELEVANCE, 6, None), ["body", "score"], "from 1 to 5"),
        ((SAFETY, 4, None), ["body", "score"], "from 1 to 3"),
        ((SAFETY, None, "relevant"), ["body", "label"], "one of unsafe, borderline, safe"),
        ((RELEVANCE, 5, "irrelevant"), ["body", "label"], "score 5 is 'relevant'"),
    ]
    for (rubric, score, label), loc, message in problems:
        with pytest.raises(Invalid) as caught:
            rating(rubric, score=score, label=label)
        (error,) = caught.value.errors
        assert error.loc == loc and message in error.msg and error.type == "value_error"
        assert caught.value.status == 422 and caught.value.detail == f"{loc[1]}: {error.msg}"


def test_a_stored_normalised_score_goes_back_to_the_scale() -> None:
    for raw in range(1, 6):
        assert scale_score(RELEVANCE, RELEVANCE.normalise(raw)) == raw
    assert [scale_score(SAFETY, s) for s in (0.0, 0.5, 1.0)] == [1, 2, 3]
