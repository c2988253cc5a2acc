"""Span rows from clean events, pure: trace attributes, findings summary, metadata only, rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmops_shared.contract import Interaction
from llmops_traces import histogram
from llmops_traces.spans import rollups, span_row
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

    assert table_for("hour", None, {}) == "trace_metrics_tenant_hourly"
    assert table_for("hour", "model", {"environment": "production"}) == "trace_metrics_tenant_hourly"
    assert table_for("hour", "app", {}) == "trace_metrics_hourly"
    assert table_for("hour", None, {"app": "a"}) == "trace_metrics_hourly"
    assert table_for("hour", "prompt_version", {}) == "trace_metrics_hourly"
    assert table_for("minute", None, {}) == "trace_metrics_minute"
