"""The alerts service's pure parts: page cursors bound to their query, titles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from llmops_guardrails.alerts_service import AlertFilter, cursor_scope, decode_cursor, encode_cursor, title_of
from llmops_shared import problems


def test_cursor_round_trip_bound_to_tenant_and_filter() -> None:
    when, alert_id = datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4()
    scope = cursor_scope("acme", AlertFilter(status=["open"]))
    cursor = encode_cursor({"last_seen": when, "alert_id": alert_id}, scope=scope)
    assert decode_cursor(cursor, scope=scope) == (when, alert_id)
    assert scope == cursor_scope("acme", AlertFilter(status=["open"]))  # the same query, the same scope
    for other in (cursor_scope("acme", AlertFilter()), cursor_scope("globex", AlertFilter(status=["open"]))):
        with pytest.raises(problems.Invalid, match="another query") as refused:
            decode_cursor(cursor, scope=other)
        assert [e.loc for e in refused.value.errors] == [["query", "cursor"]]
    with pytest.raises(problems.Invalid, match="cursor: not a cursor this API returned"):
        decode_cursor("not-a-cursor", scope=scope)


def test_titles() -> None:
    assert title_of("secret-alert", ["a", "b", "c", "d", "e", "f", "g"], "bot") == (
        "secret-alert: a, b, c, d, e and 2 more in app bot")
