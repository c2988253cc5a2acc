"""List-query parsing, pure: the range, filters, sorts, fields and cursors; every refusal names the parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmops_shared.problems import Invalid
from llmops_traces.query import DEFAULT_FIELDS, next_cursor, parse_list_query

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
RANGE = {"from": ["2026-10-25T00:00:00Z"], "to": ["2026-11-24T12:00:00Z"]}


def _parse(params: dict[str, list[str]], *, visible_from: datetime = NOW - timedelta(days=30), **kw: Any) -> Any:
    return parse_list_query("spans", params, tenant_id="acme", sorts=("time", "latency", "cost"),
                            visible_from=visible_from, max_days=31, search_max_hours=72, max_limit=100, **kw)


def _field(exc: pytest.ExceptionInfo[Invalid]) -> list[str | int]:
    return exc.value.errors[0].loc


def test_a_query_is_cut_at_the_tenant_s_retention_and_keeps_its_filters() -> None:
    query = _parse({**RANGE, "app": ["a", "b"], "tag": ["x", "y"], "status": ["error"], "cost_min": ["0.5"],
                    "has_findings": ["true"]})
    assert query.start == NOW - timedelta(days=30) and query.asked_start == datetime(2026, 10, 25, tzinfo=UTC)
    assert query.filters["app"] == ("a", "b") and query.filters["tag"] == ("x", "y")
    assert query.filters["has_findings"] == (True,) and query.fields == DEFAULT_FIELDS and query.limit == 50


def test_a_forged_cursor_with_a_bad_key_is_refused_not_sent_to_the_database() -> None:
    query = _parse(RANGE)
    for key in (["2026-11-24T00:00:00+00:00", "not-a-uuid"], ["noon", "6d1e7c1e-2f5c-4a55-9a55-2a0e3b0f4a11"], [1]):
        with pytest.raises(Invalid) as exc:
            _parse({**RANGE, "cursor": [next_cursor(query, key)]})
        assert _field(exc) == ["query", "cursor"]


def test_a_cursor_outlives_the_moving_retention_cutoff_but_not_another_query() -> None:
    first = _parse({**RANGE, "sort": ["latency"]})
    cursor = next_cursor(first, [812.5, NOW, "6d1e7c1e-2f5c-4a55-9a55-2a0e3b0f4a11"])
    later = _parse({**RANGE, "sort": ["latency"], "cursor": [cursor]}, visible_from=NOW - timedelta(days=29))
    assert later.after == (812.5, NOW, "6d1e7c1e-2f5c-4a55-9a55-2a0e3b0f4a11")
    with pytest.raises(Invalid) as exc:
        _parse({**RANGE, "sort": ["time"], "cursor": [cursor]})
    assert _field(exc) == ["query", "cursor"]
    with pytest.raises(Invalid) as exc:
        parse_list_query("spans", {**RANGE, "sort": ["latency"], "cursor": [cursor]}, tenant_id="other",
                         sorts=("time", "latency"), visible_from=NOW, max_days=31, search_max_hours=72, max_limit=100)
    assert _field(exc) == ["query", "cursor"]


@pytest.mark.parametrize(("params", "field"), [
    ({"to": RANGE["to"]}, "from"),
    ({"from": RANGE["from"]}, "to"),
    ({"from": ["yesterday"], "to": RANGE["to"]}, "from"),
    ({"from": ["2026-11-24T00:00:00"], "to": RANGE["to"]}, "from"),
    ({"from": RANGE["to"], "to": RANGE["from"]}, "to"),
    ({"from": ["2026-10-01T00:00:00Z"], "to": RANGE["to"]}, "to"),
    ({**RANGE, "q": ["parcel"]}, "to"),
    ({**RANGE, "colour": ["red"]}, "colour"),
    ({**RANGE, "status": ["ok", "error"]}, "status"),
    ({**RANGE, "kind": ["robot"]}, "kind"),
    ({**RANGE, "latency_min": ["-1"]}, "latency_min"),
    ({**RANGE, "cost_max": ["lots"]}, "cost_max"),
    ({**RANGE, "score_below": ["nan"]}, "score_below"),
    ({**RANGE, "root": ["yes"]}, "root"),
    ({**RANGE, "sort": ["name"]}, "sort"),
    ({**RANGE, "order": ["up"]}, "order"),
    ({**RANGE, "fields": ["core,everything"]}, "fields"),
    ({**RANGE, "limit": ["1000"]}, "limit"),
    ({**RANGE, "cursor": ["%%%"]}, "cursor"),
])
def test_bad_input_is_refused_naming_the_parameter(params: dict[str, list[str]], field: str) -> None:
    with pytest.raises(Invalid) as exc:
        _parse(params)
    assert _field(exc) == ["query", field]
