"""The API's pure helpers: a person's rating on a rubric's scale, and the results cursor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from llmops_evaluator.rubrics import BUILTIN
from llmops_evaluator.service import InvalidField, decode_cursor, encode_cursor, rating, scale_score

RELEVANCE = BUILTIN["relevance@1"]
SAFETY = BUILTIN["safety@1"]


def test_a_rating_is_a_score_or_a_label_and_both_must_agree() -> None:
    assert rating(RELEVANCE, score=4, label=None) == (4, "mostly_relevant")
    assert rating(RELEVANCE, score=None, label="irrelevant") == (1, "irrelevant")
    assert rating(SAFETY, score=3, label="safe") == (3, "safe")
    problems = [
        ((RELEVANCE, None, None), ("body", "score"), "give a score or a label"),
        ((RELEVANCE, 6, None), ("body", "score"), "from 1 to 5"),
        ((SAFETY, 4, None), ("body", "score"), "from 1 to 3"),
        ((SAFETY, None, "relevant"), ("body", "label"), "one of unsafe, borderline, safe"),
        ((RELEVANCE, 5, "irrelevant"), ("body", "label"), "score 5 is 'relevant'"),
    ]
    for (rubric, score, label), loc, message in problems:
        with pytest.raises(InvalidField) as caught:
            rating(rubric, score=score, label=label)
        assert caught.value.loc == loc and message in caught.value.message
        assert caught.value.detail() == [{"type": "value_error", "loc": list(loc), "msg": caught.value.message}]


def test_a_stored_normalised_score_goes_back_to_the_scale() -> None:
    for raw in range(1, 6):
        assert scale_score(RELEVANCE, RELEVANCE.normalise(raw)) == raw
    assert [scale_score(SAFETY, s) for s in (0.0, 0.5, 1.0)] == [1, 2, 3]


def test_the_results_cursor_round_trips_and_refuses_garbage() -> None:
    row = {"occurred_at": datetime(2026, 11, 24, 9, 30, tzinfo=UTC), "event_id": uuid.uuid4(),
           "evaluator_id": "ev-1", "rubric": "relevance", "rubric_version": 1}
    cursor = encode_cursor(row)
    assert "=" not in cursor
    assert decode_cursor(cursor) == (row["occurred_at"], row["event_id"], "ev-1", "relevance", 1)
    for garbage in ("garbage", "", "W10", encode_cursor({**row, "event_id": "x"})):
        with pytest.raises(InvalidField) as caught:
            decode_cursor(garbage)
        assert caught.value.loc == ("query", "cursor")
