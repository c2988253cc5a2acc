"""The results cursor: the shared codec, bound to the tenant and the filters that handed it out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from llmops_evaluator.results import ResultFilter, decode_cursor, encode_cursor
from llmops_shared import cursors
from llmops_shared.problems import Invalid

ROW = {"occurred_at": datetime(2026, 11, 24, 9, 30, tzinfo=UTC), "event_id": uuid.uuid4(),
       "evaluator_id": "ev-1", "rubric": "relevance", "rubric_version": 1}


def test_the_results_cursor_round_trips_and_refuses_garbage() -> None:
    scope = ResultFilter().scope("acme")
    cursor = encode_cursor(ROW, scope=scope)
    assert "=" not in cursor
    assert decode_cursor(cursor, scope=scope) == (ROW["occurred_at"], ROW["event_id"], "ev-1", "relevance", 1)
    for garbage in ("garbage", "", "W10", encode_cursor({**ROW, "event_id": "x"}, scope=scope),
                    cursors.encode(["too", "short"], scope=scope)):
        with pytest.raises(Invalid) as caught:
            decode_cursor(garbage, scope=scope)
        assert [e.loc for e in caught.value.errors] == [["query", "cursor"]]


def test_a_cursor_is_refused_for_other_filters_or_another_tenant() -> None:
    filters = ResultFilter(evaluator_id="ev-1", status="ok")
    cursor = encode_cursor(ROW, scope=filters.scope("acme"))
    assert filters.scope("acme") == ResultFilter(evaluator_id="ev-1", status="ok").scope("acme")  # stable
    for other in (ResultFilter(evaluator_id="ev-1").scope("acme"), filters.scope("globex")):
        with pytest.raises(Invalid) as caught:
            decode_cursor(cursor, scope=other)
        assert caught.value.errors[0].msg == "the cursor belongs to another query"
