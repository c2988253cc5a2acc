"""The pure parts of the per-app-and-day compaction: which parts of a range are read from the hourly rollup,
which days a batch writes, and the compacted entries summed as the hourly rollup's rows are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmops_traces.compaction import expand, open_intervals, written_days

D = datetime(2026, 11, 20, tzinfo=UTC)
H = timedelta(hours=1)


def test_open_intervals_are_the_days_not_compacted_clipped_to_the_range() -> None:
    start, end = D + 5 * H, D + timedelta(days=3) + 2 * H
    assert open_intervals(start, end, []) == [(start, end)]
    assert open_intervals(start, end, [D + timedelta(days=1)]) == [(start, D + timedelta(days=1)),
                                                                   (D + timedelta(days=2), end)]
    assert open_intervals(start, end, [D, D + timedelta(days=1)]) == [(D + timedelta(days=2), end)]
    assert open_intervals(start, end, [D + timedelta(days=d) for d in range(4)]) == []


def test_written_days_are_each_tenant_and_utc_day_once() -> None:
    keys = [("t", D + 23 * H, "app"), ("t", D + 3 * H, "app"), ("u", D + 25 * H, "app"), ("t", D, "b")]
    assert written_days(keys) == [("t", D), ("u", D + timedelta(days=1))]


def row(app: str, entries: list[tuple[datetime, str, str, int, float]], lat: list[tuple[int, int, int]]) -> dict:
    return {"app_id": app, "bucket": [e[0] for e in entries], "environment": [e[1] for e in entries],
            "model": [e[2] for e in entries], "prompt_name": ["p"] * len(entries),
            "prompt_version": ["1"] * len(entries), "requests": [e[3] for e in entries],
            "errors": [1] * len(entries), "input_tokens": [10] * len(entries), "output_tokens": [2] * len(entries),
            "latency_count": [e[3] for e in entries], "latency_sum_ms": [e[4] for e in entries],
            "ttft_count": [0] * len(entries), "latency_entries": [x[0] for x in lat],
            "latency_positions": [x[1] for x in lat], "latency_counts": [x[2] for x in lat],
            "ttft_entries": [], "ttft_positions": [], "ttft_counts": []}


def test_expand_sums_the_kept_entries_per_bucket_and_group_with_their_histograms() -> None:
    compacted = [row("a", [(D + H, "prod", "m1", 2, 30.0), (D + H, "dev", "m2", 1, 5.0),
                           (D + 2 * H, "prod", "m1", 3, 9.0), (D + 9 * H, "prod", "m1", 1, 1.0)],
                     [(1, 40, 2), (2, 41, 1), (3, 40, 1), (3, 60, 2), (4, 1, 1)])]
    hour = expand(compacted, start=D + H, end=D + 9 * H, days=False, group=None, filters={"app": "a"})
    assert [(r["bucket"], r["grp"], r["requests"], r["latency_sum_ms"]) for r in hour] == [
        (D + H, "", 3, 35.0), (D + 2 * H, "", 3, 9.0)]  # the entry at 09:00 is outside the range
    assert hour[0]["latency_sparse"] == {39: 2, 40: 1} and hour[0]["ttft_sparse"] == {}
    assert hour[1]["latency_sparse"] == {39: 1, 59: 2}
    by_model = expand(compacted, start=D, end=D + timedelta(days=1), days=True, group="model",
                      filters={"app": "a", "environment": "prod"})
    assert [(r["bucket"], r["grp"], r["requests"], r["errors"]) for r in by_model] == [(D, "m1", 6, 3)]
    assert by_model[0]["latency_sparse"] == {39: 3, 59: 2, 0: 1}  # m1 in prod at 01:00, 02:00, 09:00; not dev
    assert [r["grp"] for r in expand(compacted, start=D, end=D + H * 3, days=True, group="app", filters={})] == ["a"]
