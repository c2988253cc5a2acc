"""What one interaction of `llm.interactions.clean` becomes in the trace store, pure.

`span_row` turns a (redacted) `Interaction` into a `SpanRow`: the span's own fields, the trace-level
attributes copied onto it (app, environment, user, session, tags), the guardrails summary of the clean
event (how many findings, of which types: never values), and, unless the tenant asked for metadata
only, the redacted input, output and metadata. `rollups` sums the rows actually inserted into the
request-metrics rollup rows of their minute and hour (`histogram` buckets for latency and TTFT).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from llmops_shared.contract import Interaction
from llmops_traces import histogram

GUARDRAILS_SUMMARY_KEY = "guardrails"
"""Where the guardrails worker puts its findings summary in a clean event's metadata."""


@dataclass(frozen=True, slots=True)
class SpanRow:
    tenant_id: str
    occurred_at: datetime
    event_id: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    span_kind: str
    name: str | None
    app_id: str
    environment: str
    provider: str | None
    model: str | None
    response_model: str | None
    status: str
    error_type: str | None
    error_message: str | None
    prompt_name: str | None
    prompt_version: str | None
    prompt_variant: str | None
    user_id: str | None
    session_id: str | None
    tags: tuple[str, ...]
    latency_ms: float | None
    ttft_ms: float | None
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_write_input_tokens: int
    reasoning_tokens: int
    finding_count: int
    finding_types: tuple[str, ...]
    text_stored: bool
    input: str | None  # JSON text (jsonb), or None
    output: str | None
    metadata: str | None


COLUMNS: tuple[str, ...] = tuple(SpanRow.__slots__)
"""The columns of `trace_spans` a writer sets, in `SpanRow` order."""


def _json(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True)
    elif isinstance(value, list):
        value = [v.model_dump(mode="json", exclude_none=True) if hasattr(v, "model_dump") else v for v in value]
    return orjson.dumps(value).decode()


def findings_summary(metadata: dict[str, Any]) -> tuple[int, tuple[str, ...]]:
    """(count, types) from the guardrails summary in a clean event's metadata; (0, ()) without one."""
    summary = metadata.get(GUARDRAILS_SUMMARY_KEY)
    if not isinstance(summary, dict):
        return 0, ()
    count = summary.get("findings")
    by_type = summary.get("by_type")
    types = tuple(sorted(str(t) for t in by_type)) if isinstance(by_type, dict) else ()
    return (count if isinstance(count, int) and count >= 0 else 0), types


def span_row(event: Interaction, *, metadata_only: bool) -> SpanRow:
    """The span row of one clean event; `metadata_only` leaves out every text (input, output, metadata,
    the error's message)."""
    usage = event.usage
    count, types = findings_summary(event.metadata)
    metadata = {k: v for k, v in event.metadata.items() if k != GUARDRAILS_SUMMARY_KEY}
    keep_text = not metadata_only
    return SpanRow(
        tenant_id=event.tenant_id, occurred_at=event.occurred_at, event_id=str(event.event_id),
        trace_id=event.trace_id, span_id=event.span_id, parent_span_id=event.parent_span_id,
        span_kind=event.span_kind.value, name=event.name, app_id=event.app_id, environment=event.environment,
        provider=event.provider, model=event.model, response_model=event.response_model,
        status=event.status.value, error_type=event.error.type if event.error else None,
        error_message=event.error.message if event.error and keep_text else None,
        prompt_name=event.prompt.name if event.prompt else None,
        prompt_version=event.prompt.version if event.prompt else None,
        prompt_variant=event.prompt.variant if event.prompt else None,
        user_id=event.user_id, session_id=event.session_id, tags=tuple(event.tags),
        latency_ms=event.latency_ms, ttft_ms=event.time_to_first_token_ms,
        input_tokens=usage.input_tokens if usage else 0, output_tokens=usage.output_tokens if usage else 0,
        cache_read_input_tokens=usage.cache_read_input_tokens if usage else 0,
        cache_write_input_tokens=usage.cache_write_input_tokens if usage else 0,
        reasoning_tokens=usage.reasoning_tokens if usage else 0,
        finding_count=count, finding_types=types, text_stored=keep_text,
        input=_json(event.input) if keep_text else None, output=_json(event.output) if keep_text else None,
        metadata=_json(metadata) if keep_text and metadata else None,
    )


def without_text(row: SpanRow) -> SpanRow:
    """`row` as a metadata-only tenant's span: no input, output, metadata or error message."""
    return replace(row, error_message=None, input=None, output=None, metadata=None, text_stored=False)


# --------------------------------------------------------------------------------------------------
# Request-metrics rollups

ROLLUP_KEY = ("tenant_id", "bucket", "app_id", "environment", "model", "prompt_name", "prompt_version")


@dataclass(slots=True)
class Rollup:
    """One rollup row's increment: a key (`ROLLUP_KEY`, or `TENANT_ROLLUP_KEY`) and its measures. The
    histograms are sparse: {bucket: count} of the buckets with a count (`histogram.BUCKETS` in all)."""

    key: tuple[Any, ...]
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_hist: dict[int, int] = field(default_factory=dict)
    ttft_count: int = 0
    ttft_hist: dict[int, int] = field(default_factory=dict)

    def add(self, row: SpanRow) -> None:
        self.requests += 1
        self.errors += row.status == "error"
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        if row.latency_ms is not None:
            self.latency_count += 1
            self.latency_sum_ms += row.latency_ms
            bucket = histogram.bucket_of(row.latency_ms)
            self.latency_hist[bucket] = self.latency_hist.get(bucket, 0) + 1
        if row.ttft_ms is not None:
            self.ttft_count += 1
            bucket = histogram.bucket_of(row.ttft_ms)
            self.ttft_hist[bucket] = self.ttft_hist.get(bucket, 0) + 1

    def merge(self, other: Rollup) -> None:
        """Add `other`'s measures (whatever its key)."""
        self.requests += other.requests
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.latency_count += other.latency_count
        self.latency_sum_ms += other.latency_sum_ms
        self.ttft_count += other.ttft_count
        for bucket, count in other.latency_hist.items():
            self.latency_hist[bucket] = self.latency_hist.get(bucket, 0) + count
        for bucket, count in other.ttft_hist.items():
            self.ttft_hist[bucket] = self.ttft_hist.get(bucket, 0) + count


def dense(sparse: dict[int, int]) -> list[int]:
    """A sparse histogram as the stored array (`histogram.BUCKETS` counts)."""
    counts = [0] * histogram.BUCKETS
    for bucket, count in sparse.items():
        counts[bucket] += count
    return counts


def truncate(at: datetime, unit: timedelta) -> datetime:
    """The start of `at`'s UTC minute or hour."""
    if unit == timedelta(hours=1):
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(second=0, microsecond=0)


def rollups(rows: Iterable[SpanRow], unit: timedelta) -> list[Rollup]:
    """The rollup increments of `rows` per `unit` (a minute or an hour), in key order (so concurrent
    writers lock rollup rows in one order)."""
    out: dict[tuple[Any, ...], Rollup] = {}
    for row in rows:
        key = (row.tenant_id, truncate(row.occurred_at.astimezone(UTC), unit), row.app_id, row.environment,
               row.model or "", row.prompt_name or "", row.prompt_version or "")
        rollup = out.get(key)
        if rollup is None:
            rollup = out[key] = Rollup(key)
        rollup.add(row)
    return [out[k] for k in sorted(out)]


def coarser(fine: Iterable[Rollup], unit: timedelta) -> list[Rollup]:
    """`fine` rollups (keyed by `ROLLUP_KEY`, per minute) summed per `unit` (an hour), in key order: the same
    as `rollups` of their rows per `unit`, without going over the rows again."""
    return regroup(fine, lambda k: (k[0], truncate(k[1], unit), *k[2:]))


TENANT_ROLLUP_KEY = ("tenant_id", "bucket", "environment", "model")
TENANT_DAILY_KEY = TENANT_ROLLUP_KEY
"""`trace_metrics_tenant_daily`'s key: the same columns, the bucket a UTC day."""
TENANT_TOTALS_KEY = ("tenant_id", "bucket")
"""`trace_metrics_tenant_hour_totals`'s key: no environment, no model."""


def regroup(fine: Iterable[Rollup], key_of: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> list[Rollup]:
    """`fine` rollups summed per `key_of(their key)`, in key order."""
    out: dict[tuple[Any, ...], Rollup] = {}
    for r in fine:
        key = key_of(r.key)
        into = out.get(key)
        if into is None:
            into = out[key] = Rollup(key)
        into.merge(r)
    return [out[k] for k in sorted(out)]


def tenant_rollups(fine: Iterable[Rollup]) -> list[Rollup]:
    """`fine` rollups (keyed by `ROLLUP_KEY`) summed per `TENANT_ROLLUP_KEY` (no app, no prompt), in key
    order; their keys are (tenant_id, bucket, environment, model)."""
    return regroup(fine, lambda k: (k[0], k[1], k[3], k[4]))


def tenant_daily_rollups(tenant: Iterable[Rollup]) -> list[Rollup]:
    """Hourly `tenant` rollups (keyed by `TENANT_ROLLUP_KEY`) summed per UTC day (`TENANT_DAILY_KEY`)."""
    return regroup(tenant, lambda k: (k[0], k[1].replace(hour=0), k[2], k[3]))


def tenant_totals(tenant: Iterable[Rollup]) -> list[Rollup]:
    """Hourly `tenant` rollups (keyed by `TENANT_ROLLUP_KEY`) summed per hour (`TENANT_TOTALS_KEY`)."""
    return regroup(tenant, lambda k: (k[0], k[1]))


def inserted_rows(rows: Sequence[SpanRow], inserted: Iterable[tuple[str, str]]) -> list[SpanRow]:
    """The rows whose (tenant_id, event_id) came back from the insert."""
    wanted = set(inserted)
    return [r for r in rows if (r.tenant_id, r.event_id) in wanted]


# --------------------------------------------------------------------------------------------------
# Trace summaries (a row per trace and UTC day, `trace_summaries`)


@dataclass(slots=True)
class TraceSummary:
    """The summary of some spans of one trace and UTC day: what the writer adds to `trace_summaries`.
    Adding two summaries of the same key gives the summary of both sets of spans (`merge`)."""

    tenant_id: str
    day: datetime
    trace_id: str
    first_at: datetime
    last_at: datetime
    ended_at: datetime
    span_count: int
    error_count: int
    finding_count: int
    input_tokens: int
    output_tokens: int
    root_is_root: bool
    root_at: datetime
    root_span_id: str
    root_name: str | None
    app_id: str
    environment: str
    user_id: str | None
    session_id: str | None
    tags: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str, datetime]:
        return self.tenant_id, self.trace_id, self.day

    @property
    def root_order(self) -> tuple[bool, datetime, str]:
        """The root-first order: a root span before any other, then the earliest, then the lowest id."""
        return not self.root_is_root, self.root_at, self.root_span_id

    def merge(self, other: TraceSummary) -> None:
        if other.root_order < self.root_order:
            self.root_is_root, self.root_at, self.root_span_id = other.root_is_root, other.root_at, other.root_span_id
            self.root_name, self.app_id, self.environment = other.root_name, other.app_id, other.environment
        self.first_at, self.last_at = min(self.first_at, other.first_at), max(self.last_at, other.last_at)
        self.ended_at = max(self.ended_at, other.ended_at)
        self.span_count += other.span_count
        self.error_count += other.error_count
        self.finding_count += other.finding_count
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.user_id = _largest(self.user_id, other.user_id)
        self.session_id = _largest(self.session_id, other.session_id)
        self.tags = tuple(sorted(set(self.tags) | set(other.tags)))


def _largest(a: str | None, b: str | None) -> str | None:
    return b if a is None else a if b is None else max(a, b)


def day_of(at: datetime) -> datetime:
    """The start of `at`'s UTC day."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def summary_of(row: SpanRow) -> TraceSummary:
    """The summary of one span."""
    ended = row.occurred_at + timedelta(milliseconds=row.latency_ms or 0)
    return TraceSummary(
        tenant_id=row.tenant_id, day=day_of(row.occurred_at), trace_id=row.trace_id, first_at=row.occurred_at,
        last_at=row.occurred_at, ended_at=ended, span_count=1, error_count=int(row.status == "error"),
        finding_count=row.finding_count, input_tokens=row.input_tokens, output_tokens=row.output_tokens,
        root_is_root=row.parent_span_id is None, root_at=row.occurred_at, root_span_id=row.span_id,
        root_name=row.name, app_id=row.app_id, environment=row.environment, user_id=row.user_id,
        session_id=row.session_id, tags=tuple(sorted(set(row.tags))))


def summaries(rows: Iterable[SpanRow]) -> list[TraceSummary]:
    """The summary increments of `rows` per (tenant, trace, UTC day), in key order (the lock order)."""
    out: dict[tuple[str, str, datetime], TraceSummary] = {}
    for row in rows:
        piece = summary_of(row)
        held = out.get(piece.key)
        if held is None:
            out[piece.key] = piece
        else:
            held.merge(piece)
    return [out[k] for k in sorted(out)]
