"""The traces API's request and response bodies. Money is a decimal string in USD (never a JSON number);
instants are ISO 8601 in UTC. Errors are `llmops_shared.problems.Problem` (RFC 9457) on every route."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Money = Annotated[str, Field(description="USD, an exact decimal string", examples=["0.00015"])]
Instant = Annotated[str, Field(description="ISO 8601, UTC", json_schema_extra={"format": "date-time"})]


class Span(BaseModel):
    """One span: `core` fields always, the other groups when `fields=` asks for them (text: `io`)."""

    model_config = ConfigDict(extra="allow")

    event_id: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    span_kind: str
    name: str | None
    app_id: str
    environment: str
    occurred_at: Instant
    latency_ms: float | None
    ttft_ms: float | None
    status: str
    cost_total: Money | None = Field(None, description="billing's cost (group `usage`); null until billed or "
                                     "when unpriced")


class SpanPage(BaseModel):
    items: list[Span]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")
    from_: Instant = Field(alias="from", description="the range's start, cut at the tenant's retention")
    to: Instant


class TraceRow(BaseModel):
    trace_id: str
    started_at: Instant
    ended_at: Instant
    duration_ms: float
    root_name: str | None
    root_span_id: str
    app_id: str
    environment: str
    user_id: str | None
    session_id: str | None
    span_count: int
    input_tokens: int
    output_tokens: int
    cost_total: Money | None
    unpriced_spans: int
    error_count: int
    finding_count: int
    lowest_score: float | None = Field(description="the lowest judge score (0..1) of its spans")


class TracePage(BaseModel):
    items: list[TraceRow]
    next_cursor: str | None
    from_: Instant = Field(alias="from")
    to: Instant


class Finding(BaseModel):
    detector: str
    entity_type: str
    rule_id: str | None
    part: str
    message_index: int | None


class Score(BaseModel):
    evaluator_id: str
    rubric: str
    rubric_version: int
    score: float | None
    raw_score: int | None
    label: str | None
    judge_model: str


class Feedback(BaseModel):
    rubric: str
    score: float | None
    label: str | None
    comment: str | None
    reviewer: str
    updated_at: Instant


class SpanNode(Span):
    cost_lines: list[dict[str, Any]] = Field(description="billing's line items of the span (tokens and cost "
                                             "per kind, price version)")
    findings: list[Finding] = Field(description="guardrail findings: type and rule, never values")
    scores: list[Score]
    feedback: list[Feedback]
    children: list[SpanNode]


class TraceDetail(BaseModel):
    trace_id: str
    span_count: int
    truncated: bool = Field(description="the trace has more spans than LLMOPS_TRACES_TRACE_MAX_SPANS")
    started_at: Instant
    cost_total: Money | None
    error_count: int
    finding_count: int
    lowest_score: float | None
    spans: list[SpanNode] = Field(description="the roots, each with its children")


class SessionRow(BaseModel):
    session_id: str
    first_at: Instant
    last_at: Instant
    trace_count: int
    span_count: int
    user_ids: list[str] | None
    app_ids: list[str]
    input_tokens: int
    output_tokens: int
    cost_total: Money | None
    error_count: int
    finding_count: int


class SessionPage(BaseModel):
    items: list[SessionRow]
    next_cursor: str | None
    from_: Instant = Field(alias="from")
    to: Instant


class SessionDetail(BaseModel):
    session_id: str
    truncated: bool
    traces: list[TraceRow]


class UserApp(BaseModel):
    app_id: str
    span_count: int
    trace_count: int
    session_count: int
    first_at: Instant
    last_at: Instant
    input_tokens: int
    output_tokens: int
    cost_total: Money | None
    error_count: int
    finding_count: int


class UserSummary(BaseModel):
    user_id: str
    from_: Instant = Field(alias="from")
    to: Instant
    span_count: int
    first_at: Instant
    last_at: Instant
    apps: list[UserApp]


class MetricsPoint(BaseModel):
    bucket: Instant
    requests: int
    errors: int
    error_rate: float | None
    latency_mean_ms: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_total: Money


class MetricsSeries(BaseModel):
    group: str | None = Field(description="the group's value (null: ungrouped, or spans without one)")
    points: list[MetricsPoint]


class HistogramInfo(BaseModel):
    buckets_per_decade: int
    max_relative_error: float = Field(description="percentiles are within this share of the exact value")


class Metrics(BaseModel):
    from_: Instant = Field(alias="from")
    to: Instant
    granularity: str
    group_by: str | None
    histogram: HistogramInfo
    series: list[MetricsSeries]


class KeptElsewhere(BaseModel):
    store: str
    keeps: str


class Removed(BaseModel):
    spans: int


class Erasure(BaseModel):
    trace_id: str | None = None
    user_id: str | None = None
    removed: Removed
    erased_before: Instant = Field(description="spans of it that occurred before this are not stored again")
    kept_elsewhere: list[KeptElsewhere] = Field(description="what other stores keep, by design")


class TraceSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metadata_only: bool = Field(False, description="store no text (input, output, metadata, error messages)")
    retention_days: int | None = Field(None, ge=1, description="days spans are kept; null: the deployment's default")


class TraceSettings(BaseModel):
    metadata_only: bool
    retention_days: int | None
    effective_retention_days: int
    max_retention_days: int
    visible_from: Instant = Field(description="reads return nothing older than this")
