"""Span rows from clean events, pure: trace attributes, findings summary, metadata only, rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmops_shared.contract import Interaction
from llmops_traces import histogram
from llmops_traces.spans import Rollup, coarser, dense, rollups, span_row, tenant_rollups
from tests.support.events import make_event

AT = datetime(2026, 11, 24, 12, 30, 15, tzinfo=UTC)


def _event(**overrides: object) -> Interaction:
    return Interaction.model_validate({**make_event(occurred_at=AT.isoformat()), "tenant_id": "acme", **overrides})


def test_a_span_row_carries_the_trace_attributes_and_the_findings_summary() -> None:
    event = _event(user_id="u-9", session_id="s-1", tags=["x"], prompt={"name": "greet", "version": "3"},
                   metadata={"source": "t", "guardrails": {"findings": 3, "by_type": {"PHONE": 1, "EMAIL": 2}}})
    row = span_row(event, metadata_only=False)
    assert (row.user_id, row.session_id, row.tags, row.prompt_name, row.prompt_version) == (
        "u-9", "s-1", ("x",), "greet", "3")
    assert (row.finding_count, row.finding_types) == (3, ("EMAIL", "PHONE"))
    assert row.metadata == '{"source":"t"}' and row.input is not None and row.text_stored


def test_metadata_only_keeps_no_text() -> None:
    event = _event(status="error", error={"type": "rate_limit", "message": "the prompt was ..."})
    row = span_row(event, metadata_only=True)
    assert (row.input, row.output, row.metadata, row.error_message) == (None, None, None, None)
    assert row.error_type == "rate_limit" and not row.text_stored and row.input_tokens == 20


def test_rollups_count_each_row_in_its_minute_and_hour() -> None:
    rows = [span_row(_event(latency_ms=100.0, occurred_at=(AT + timedelta(seconds=50 * i)).isoformat()),
                     metadata_only=False) for i in range(3)]
    minutes = rollups(rows, timedelta(minutes=1))
    assert [(r.key[1], r.requests) for r in minutes] == [
        (datetime(2026, 11, 24, 12, 30, tzinfo=UTC), 1), (datetime(2026, 11, 24, 12, 31, tzinfo=UTC), 2)]
    (hour,) = rollups(rows, timedelta(hours=1))
    assert hour.requests == 3 and hour.latency_count == 3 and hour.ttft_count == 0
    assert hour.latency_hist[histogram.bucket_of(100.0)] == 3


def test_a_series_reads_the_coarsest_rollup_that_has_its_dimensions() -> None:
    from llmops_traces.store.rollups import table_for

    assert table_for("hour", None, {}) == "trace_metrics_tenant_hour_totals"
    assert table_for("hour", "model", {}) == "trace_metrics_tenant_hourly"
    assert table_for("hour", "model", {"environment": "production"}) == "trace_metrics_tenant_hourly"
    assert table_for("hour", None, {}, days=True) == "trace_metrics_tenant_daily"
    assert table_for("hour", "model", {"environment": "production"}, days=True) == "trace_metrics_tenant_daily"
    assert table_for("hour", "app", {}, days=True) == "trace_metrics_hourly"
    assert table_for("hour", "app", {}) == "trace_metrics_hourly"
    assert table_for("hour", None, {"app": "a"}) == "trace_metrics_hourly"
    assert table_for("hour", "prompt_version", {}) == "trace_metrics_hourly"
    assert table_for("minute", None, {}) == "trace_metrics_minute"


def _rows_over_hours() -> list:
    return [span_row(_event(latency_ms=None if i % 5 == 0 else 0.5 * ((i * 7919) % 9000),
                            time_to_first_token_ms=None if i % 3 else 0.25 * (i % 50),
                            app_id=f"app-{i % 3}", model=("gpt-4o", None)[i % 2],
                            status="error" if i % 7 == 0 else "ok", error={"type": "t"} if i % 7 == 0 else None,
                            occurred_at=(AT + timedelta(seconds=97 * i)).isoformat()), metadata_only=False)
            for i in range(120)]


def _measures(r: Rollup) -> tuple:
    return (r.key, r.requests, r.errors, r.input_tokens, r.output_tokens, r.latency_count, r.latency_sum_ms,
            dense(r.latency_hist), r.ttft_count, dense(r.ttft_hist))


def test_hourly_rollups_summed_from_the_minute_ones_equal_the_rows_summed_per_hour() -> None:
    rows = _rows_over_hours()
    minute = rollups(rows, timedelta(minutes=1))
    assert len({r.key[1].hour for r in minute}) > 1
    assert [_measures(r) for r in coarser(minute, timedelta(hours=1))] == [
        _measures(r) for r in rollups(rows, timedelta(hours=1))]


def test_a_sparse_histogram_holds_the_counts_of_the_dense_one() -> None:
    rows = _rows_over_hours()
    whole = Rollup(("all",))
    for r in tenant_rollups(rollups(rows, timedelta(minutes=1))):
        whole.merge(r)
    latencies = [r.latency_ms for r in rows if r.latency_ms is not None]
    assert dense(whole.latency_hist) == histogram.histogram(latencies)
    assert dense(whole.ttft_hist) == histogram.histogram([r.ttft_ms for r in rows if r.ttft_ms is not None])
    assert all(count > 0 for count in whole.latency_hist.values())


def test_the_rollup_store_sends_each_row_s_touched_buckets_only() -> None:
    from llmops_traces.store.rollups import _sparse

    assert _sparse([{3: 2, 0: 1}, {}, {161: 5}]) == ([1, 3, 3], [2, 2, 3], [1, 4, 162], [1, 2, 5])


def test_a_cost_series_reads_the_narrowest_billing_table_that_is_exact() -> None:
    from llmops_traces.store.usage import source

    assert source("hour", None, {}) == source("day", None, {}) == "usage_hourly_totals"
    assert source("day", "model", {}) == "usage_hourly_models"
    assert source("hour", "environment", {"model": "gpt-4o"}) == "usage_hourly_models"
    assert source("hour", "app", {}) == source("hour", "prompt_version", {"environment": "e"}) == "usage_hourly"
    assert source("hour", None, {"app": "a"}) == source("hour", "app", {"model": "m"}) == "usage_ledger"
    assert source("minute", None, {}) == "usage_ledger"


def test_coarser_tenant_rollups_sum_the_hourly_ones() -> None:
    from llmops_traces.spans import Rollup, tenant_daily_rollups, tenant_totals

    def hourly(hour: int, day: int, environment: str, model: str, requests: int) -> Rollup:
        rollup = Rollup(("t", datetime(2026, 11, day, hour, tzinfo=UTC), environment, model), requests=requests,
                        latency_count=requests, latency_sum_ms=10.0 * requests)
        rollup.latency_hist[3] = requests
        return rollup

    fine = [hourly(9, 24, "prod", "a", 1), hourly(10, 24, "prod", "a", 2), hourly(10, 24, "dev", "b", 4),
            hourly(23, 23, "prod", "a", 8)]
    assert [(r.key, r.requests, r.latency_hist[3]) for r in tenant_daily_rollups(fine)] == [
        (("t", datetime(2026, 11, 23, tzinfo=UTC), "prod", "a"), 8, 8),
        (("t", datetime(2026, 11, 24, tzinfo=UTC), "dev", "b"), 4, 4),
        (("t", datetime(2026, 11, 24, tzinfo=UTC), "prod", "a"), 3, 3)]
    assert [(r.key, r.requests, r.latency_sum_ms) for r in tenant_totals(fine)] == [
        (("t", datetime(2026, 11, 23, 23, tzinfo=UTC)), 8, 80.0),
        (("t", datetime(2026, 11, 24, 9, tzinfo=UTC)), 1, 10.0),
        (("t", datetime(2026, 11, 24, 10, tzinfo=UTC)), 6, 60.0)]

