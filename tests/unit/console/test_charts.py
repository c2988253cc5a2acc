"""What the console's charts and waterfall are given, from the services' answers (pure)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from llmops_console import charts


def test_pivot_makes_one_series_per_group_over_the_union_of_instants() -> None:
    rows = [{"bucket": "2026-11-01T00:00:00Z", "model": "b", "cost_total": "1.5"},
            {"bucket": "2026-11-02T00:00:00Z", "model": "a", "cost_total": "2"},
            {"bucket": "2026-11-02T00:00:00Z", "model": "b", "cost_total": "0.25"},
            {"bucket": "2026-11-02T00:00:00Z", "model": None, "cost_total": "1"}]
    chart = charts.pivot(rows, x="bucket", group="model", value="cost_total")
    assert chart["labels"] == ["(none)", "a", "b"]
    assert chart["data"] == [[1793491200, 1793577600], [None, 1.0], [None, 2.0], [1.5, 0.25]]


def test_series_orders_points_by_time_and_keeps_gaps() -> None:
    points = [{"bucket": "2026-11-24T11:00:00Z", "requests": 5, "errors": None},
              {"bucket": "2026-11-24T10:00:00Z", "requests": 2, "errors": 1}]
    chart = charts.series(points, x="bucket", values={"requests": "requests", "errors": "errors"})
    assert chart == {"labels": ["requests", "errors"],
                     "data": [[1795514400, 1795518000], [2.0, 5.0], [1.0, None]]}


def test_totals_are_largest_first() -> None:
    rows = [{"model": "a", "cost_total": "1"}, {"model": "b", "cost_total": "3"}, {"model": "a", "cost_total": "0.5"}]
    assert charts.totals(rows, group="model", value="cost_total") == [("b", 3.0), ("a", 1.5)]


def test_waterfall_flattens_the_tree_depth_first_with_bars_on_the_traces_time() -> None:
    child = {"span_id": "c", "occurred_at": "2026-11-24T12:00:00.500Z", "latency_ms": 500, "children": []}
    root = {"span_id": "r", "occurred_at": "2026-11-24T12:00:00Z", "latency_ms": 1000, "children": [child]}
    other = {"span_id": "o", "occurred_at": "2026-11-24T12:00:01Z", "latency_ms": None, "children": []}
    rows = charts.waterfall([root, other])
    assert [(r["span"]["span_id"], r["depth"], r["offset_pct"], r["width_pct"]) for r in rows] == [
        ("r", 0, 0.0, 100.0), ("c", 1, 50.0, 50.0), ("o", 0, 100.0, 0.5)]
    assert charts.waterfall([]) == []


def test_no_page_loads_anything_from_another_origin() -> None:
    package = Path(charts.__file__).parent
    for page in [*(package / "templates").glob("*.html"), package / "static" / "console.js",
                 package / "static" / "console.css"]:
        assert not re.search(r"(src|href)=\"(https?:)?//", page.read_text()), page.name
        assert "<script>" not in page.read_text(), page.name  # no inline script: the CSP forbids it


def test_an_interval_is_drawn_on_an_axis_that_shows_zero() -> None:
    bar = charts.interval(-3.0, -1.0, -2.0)  # all below zero: the axis runs from -3.3 to 0.3
    assert (bar["low"], bar["point"], bar["high"], bar["zero"]) == (8.33, 36.11, 63.89, 91.67)
    assert charts.interval(1.0, 1.0, 1.0) == {"low": 91.67, "high": 91.67, "point": 91.67, "zero": 8.33}
    assert charts.interval(0.0, 0.0, 0.0)["zero"] == 50.0  # nothing at all: a unit axis around zero


def test_diff_lines_are_classified() -> None:
    lines = ["--- p@1", "+++ p@2", "@@ -1 +1 @@", "-old", "+new", " same"]
    assert [kind for kind, _ in charts.diff_lines(lines)] == ["meta", "meta", "hunk", "del", "add", "same"]


def test_fold_others_keeps_the_named_groups() -> None:
    rows = [{"m": "a", "v": 1}, {"m": "b", "v": 2}, {"m": None, "v": 3}]
    assert [r["m"] for r in charts.fold_others(rows, group="m", keep={"a", "(none)"})] == ["a", "(others)", None]


def test_burn_down_is_what_is_left_after_each_bucket_beside_an_even_pace() -> None:
    start, end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 5, tzinfo=UTC)
    rows = [{"bucket": "2026-12-03T00:00:00Z", "cost_total": "0.25"}, {"bucket": "2026-12-01T00:00:00Z",
                                                                     "cost_total": "0.5"}]
    chart = charts.burn_down(rows, amount=1.0, start=start, end=end, step=timedelta(days=1),
                             until=datetime(2026, 12, 3, 8, tzinfo=UTC))
    day = 86_400
    t0 = int(start.timestamp())
    assert chart["data"] == [[t0 + d * day for d in range(5)], [1.0, 0.5, 0.5, 0.25, None],  # day 2 spent nothing
                             [1.0, None, None, None, 0.0]]


def test_spend_windows_compare_like_with_like() -> None:
    w = charts.spend_windows(datetime(2026, 3, 30, 10, 20, tzinfo=UTC))
    at = lambda *a: datetime(*a, tzinfo=UTC)  # noqa: E731
    assert w["today"] == (at(2026, 3, 30), at(2026, 3, 30, 11))
    assert w["yesterday_so_far"] == (at(2026, 3, 29), at(2026, 3, 29, 11))
    assert w["yesterday"] == (at(2026, 3, 29), at(2026, 3, 30))
    assert w["month"] == (at(2026, 3, 1), at(2026, 3, 30, 11))
    assert w["last_month_so_far"] == (at(2026, 2, 1), at(2026, 3, 1))  # February is shorter: all of it
    assert charts.spend_windows(datetime(2026, 3, 2, tzinfo=UTC))["last_month_so_far"] == (
        at(2026, 2, 1), at(2026, 2, 2, 1))
    assert charts.change(1.5, 1.0) == 0.5 and charts.change(1.0, 0.0) is None


def test_a_ranking_is_by_exact_cost_then_the_stored_value() -> None:
    rows = [{"app_id": "b", "cost_total": "1"}, {"app_id": "a", "cost_total": "1.00000000000000000001"},
            {"app_id": "c", "cost_total": "1"}, {"app_id": None, "cost_total": "1"}, {"app_id": "d", "cost_total": "2"}]
    ranked = charts.ranked(rows, group="app_id", value="cost_total")
    # "a" is larger than "b" though both are 1.0 as floats; no app ('') before "b" and "c", shown as (none)
    assert [(r.label, r.stored) for r in ranked] == [("d", "d"), ("a", "a"), ("(none)", ""), ("b", "b"), ("c", "c")]
    assert ranked[1].value == 1.0
