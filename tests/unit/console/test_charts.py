"""What the console's charts and waterfall are given, from the services' answers (pure)."""

from __future__ import annotations

import re
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
