"""One OTLP span -> one interaction event (`Interaction`): pure functions, no I/O. docs/otlp.md has the table.

- **Ids.** `trace_id`/`span_id`/`parent_span_id` are the span's ids in lower-case hex, so a trace's tree
  survives. `event_id` is a UUIDv5 of (tenant, trace id, span id): an exporter that sends a span again
  sends the same event, which every consumer counts once.
- **Kind.** `openinference.span.kind`, else `gen_ai.operation.name`, else `llm` when a model or token
  count is named, else `chain` (any other span of the trace: an HTTP handler, a step of the app).
- **Where and when.** The tenant is the key's; `app_id` is the resource's `service.name` and
  `environment` its `deployment.environment.name` (or the older `deployment.environment`), each made to
  fit the id pattern (other characters become `-`), with `unknown_service` and `production` when absent.
  `occurred_at` is the span's start, `latency_ms` its duration.
- **What is left** (attributes no rule read) goes into `metadata` within the contract's limits: long
  values are truncated, what does not fit is dropped, and both are counted (`otel.truncated_attributes`,
  `otel.dropped_attributes`); metadata never costs a span. Attributes that carry prompt or completion
  text are never copied there (`messages.CONTENT_PREFIXES`).
- **Rejected**, alone, with a reason: a span whose ids are not 16/8 non-zero bytes, without a start
  time, that ends before it starts, outside the accepted time window, or that does not make a valid
  event. The request's other spans are accepted.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pydantic import ValidationError

from llmops_ingest.intake import TimeWindow
from llmops_ingest.otlp.attributes import as_float, as_int, as_text, clean, maybe_json, to_dict
from llmops_ingest.otlp.decode import Decoded
from llmops_ingest.otlp.messages import CONTENT_PREFIXES, conversation
from llmops_shared.contract import (
    IDENTIFIER_PATTERN,
    MAX_EVENT_BYTES,
    MAX_METADATA_BYTES,
    MAX_METADATA_KEYS,
    MAX_TAGS,
    Interaction,
    field_errors,
)

log = logging.getLogger("llmops_ingest.otlp")

EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://llmops.dev/otlp/span")
DEFAULT_APP_ID = "unknown_service"
DEFAULT_ENVIRONMENT = "production"
METADATA_VALUE_CHARS = 1_024
"""A metadata value longer than this (as text) is truncated."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_LATENCY_MS = 86_400_000
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_NOT_IN_IDENTIFIER = re.compile(r"[^A-Za-z0-9._:/@-]+")

_OPENINFERENCE_KINDS = {"LLM": "llm", "EMBEDDING": "embedding", "CHAIN": "chain", "RETRIEVER": "retriever",
                        "RERANKER": "retriever", "TOOL": "tool", "AGENT": "agent", "GUARDRAIL": "chain",
                        "EVALUATOR": "chain", "PROMPT": "chain", "UNKNOWN": "chain"}
_OPERATION_KINDS = {"chat": "llm", "text_completion": "llm", "generate_content": "llm", "completion": "llm",
                    "embeddings": "embedding", "embedding": "embedding", "execute_tool": "tool",
                    "create_agent": "agent", "invoke_agent": "agent", "invoke_workflow": "chain"}
_ERROR = Status.StatusCode.STATUS_CODE_ERROR

# usage fields of the contract <- attributes, first present wins (GenAI current, GenAI older, OpenInference)
_USAGE = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"),
    "cache_read_input_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                                "llm.token_count.prompt_details.cache_read"),
    "cache_write_input_tokens": ("gen_ai.usage.cache_creation.input_tokens",
                                 "gen_ai.usage.cache_creation_input_tokens",
                                 "llm.token_count.prompt_details.cache_write"),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                         "llm.token_count.completion_details.reasoning"),
}


@dataclass(frozen=True)
class Rejection:
    index: int  # the span's position in the request, counting every span in order
    trace_id: str
    span_id: str
    reason: str

    def describe(self) -> str:
        return f"span {self.index} (trace {self.trace_id or '-'}, span {self.span_id or '-'}): {self.reason}"


@dataclass
class Mapped:
    accepted: list[Interaction] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)  # wire form of `accepted`, same order
    rejected: list[Rejection] = field(default_factory=list)

    def summary(self, shown: int = 3) -> str:
        """The partial-success message: how many were rejected and the first reasons."""
        if not self.rejected:
            return ""
        reasons = "; ".join(r.describe() for r in self.rejected[:shown])
        more = f"; and {len(self.rejected) - shown} more" if len(self.rejected) > shown else ""
        return f"{len(self.rejected)} span(s) rejected: {reasons}{more}"


class SpanRejected(Exception):
    pass


@dataclass(frozen=True)
class Origin:
    """What a span's resource and instrumentation scope say about it."""

    app_id: str
    environment: str
    metadata: tuple[tuple[str, Any], ...] = ()


def count_spans(decoded: Decoded) -> int:
    return sum(len(ss.spans) for rs in decoded.request.resource_spans for ss in rs.scope_spans)


def map_request(decoded: Decoded, *, tenant_id: str, window: TimeWindow | None = None) -> Mapped:
    """Every span of the request mapped on its own: accepted as an event, or rejected with a reason."""
    mapped = Mapped()
    index = 0
    for r, resource_spans in enumerate(decoded.request.resource_spans):
        resource = to_dict(resource_spans.resource.attributes)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            origin = origin_of(resource, scope_spans.scope.name)
            for i, span in enumerate(scope_spans.spans):
                trace_hex, span_hex = span.trace_id.hex(), span.span_id.hex()
                try:
                    if (bad := decoded.bad_ids.get((r, s, i))) is not None:
                        raise SpanRejected(bad)
                    event = span_to_interaction(span, tenant_id=tenant_id, origin=origin, window=window)
                    payload = event.to_json()
                    if len(payload) > MAX_EVENT_BYTES:
                        raise SpanRejected(f"the event is {len(payload)} bytes; the limit is {MAX_EVENT_BYTES}")
                except SpanRejected as exc:
                    mapped.rejected.append(Rejection(index, trace_hex, span_hex, str(exc)))
                except Exception as exc:  # a shape no rule foresaw: this span alone is refused, never the request
                    log.warning("span not mappable", extra={"error_type": type(exc).__name__}, exc_info=True)
                    mapped.rejected.append(Rejection(index, trace_hex, span_hex,
                                                     f"could not be mapped ({type(exc).__name__})"))
                else:
                    mapped.accepted.append(event)
                    mapped.payloads.append(payload)
                index += 1
    return mapped


def origin_of(resource: Mapping[str, Any], scope_name: str = "") -> Origin:
    app_id = _identifier_from(resource.get("service.name")) or DEFAULT_APP_ID
    environment = (_identifier_from(resource.get("deployment.environment.name"))
                   or _identifier_from(resource.get("deployment.environment")) or DEFAULT_ENVIRONMENT)
    extra = [(key, resource[key]) for key in ("service.namespace", "service.version") if key in resource]
    if scope_name:
        extra.append(("otel.scope.name", scope_name))
    return Origin(app_id, environment, tuple(extra))


def event_id(tenant_id: str, trace_id: str, span_id: str) -> uuid.UUID:
    """The span's event id: the same tenant, trace and span always give the same id."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, orjson.dumps([tenant_id, trace_id, span_id]).decode())


def span_to_interaction(span: Span, *, tenant_id: str, origin: Origin, window: TimeWindow | None = None,
                        ) -> Interaction:
    """The span as an event; raises `SpanRejected` with the reason when it cannot be one."""
    trace_id, span_id, parent_span_id = _ids(span)
    occurred_at, latency_ms = _timing(span)
    if window is not None and (refused := window.refusal(occurred_at)) is not None:
        raise SpanRejected(f"start_time_unix_nano: {refused}")
    attrs = _Attributes(to_dict(span.attributes))
    events = [(event.name, to_dict(event.attributes)) for event in span.events]
    fields: dict[str, Any] = {
        "event_id": event_id(tenant_id, trace_id, span_id),
        "occurred_at": occurred_at, "tenant_id": tenant_id, "app_id": origin.app_id,
        "environment": origin.environment, "trace_id": trace_id, "span_id": span_id,
        "parent_span_id": parent_span_id, "span_kind": _kind(attrs), "name": clean(span.name, 256) or None,
        "latency_ms": latency_ms,
    }
    unusable: list[tuple[str, Any]] = []  # mapped attributes whose value the contract cannot hold
    for target, names in (("model", ("gen_ai.request.model", "llm.model_name", "embedding.model_name",
                                     "gen_ai.response.model")),
                          ("response_model", ("gen_ai.response.model",)),
                          ("provider", ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"))):
        name, value = attrs.first(*names)
        if value is not None:
            identifier = _identifier(value.lower() if target == "provider" and isinstance(value, str) else value)
            fields[target] = identifier
            if identifier is None:
                unusable.append((name, value))
    fields["usage"] = _usage(attrs)
    fields["input"], fields["output"] = conversation(attrs.values, events)
    attrs.consume_prefixes(CONTENT_PREFIXES)
    fields["status"], fields["error"] = _status(span, attrs, events)
    fields["time_to_first_token_ms"] = _ttft(attrs, latency_ms)
    fields["session_id"] = _short(attrs.first("gen_ai.conversation.id", "session.id")[1])
    fields["user_id"] = _short(attrs.first("user.id", "enduser.id")[1])
    fields["tags"] = _tags(attrs.first("tag.tags")[1])
    user_metadata = maybe_json(attrs.first("metadata")[1])
    left = [*origin.metadata, *(user_metadata.items() if isinstance(user_metadata, dict) else ()),
            *unusable, *attrs.unread()]
    dropped_events = sum(1 for name, _ in events if not _read_event(name))
    fields["metadata"] = bounded_metadata(left, dropped=len(attrs.dropped_content) + dropped_events
                                          + span.dropped_attributes_count)
    try:
        return Interaction.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise SpanRejected("; ".join(f"{e['field']}: {e['message']}" for e in field_errors(exc))) from None


class _Attributes:
    """A span's attributes, remembering which ones a rule read (the others go into metadata)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self._read: set[str] = set()
        self.dropped_content: list[str] = []

    def first(self, *names: str) -> tuple[str, Any]:
        """The first of `names` that is present, and its value; every one of `names` counts as read."""
        self._read.update(names)
        for name in names:
            if self.values.get(name) is not None:
                return name, self.values[name]
        return names[0], None

    def consume_prefixes(self, prefixes: Sequence[str]) -> None:
        exact, nested = frozenset(prefixes), tuple(p + "." for p in prefixes)
        for key in self.values:
            if key not in self._read and (key in exact or key.startswith(nested)):
                self._read.add(key)
                self.dropped_content.append(key)

    def unread(self) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in self.values.items() if k not in self._read]


def _read_event(name: str) -> bool:
    return name == "exception" or name.startswith("gen_ai.")


def _ids(span: Span) -> tuple[str, str, str | None]:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        raise SpanRejected(f"trace_id: must be 16 bytes, not all zero (got {len(span.trace_id)} bytes)")
    if len(span.span_id) != 8 or not any(span.span_id):
        raise SpanRejected(f"span_id: must be 8 bytes, not all zero (got {len(span.span_id)} bytes)")
    if span.parent_span_id and len(span.parent_span_id) != 8:
        raise SpanRejected(f"parent_span_id: must be 8 bytes or empty (got {len(span.parent_span_id)} bytes)")
    parent = span.parent_span_id.hex() if any(span.parent_span_id) else None
    return span.trace_id.hex(), span.span_id.hex(), parent


def _timing(span: Span) -> tuple[datetime, float | None]:
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if not start:
        raise SpanRejected("start_time_unix_nano: missing")
    occurred_at = _EPOCH + timedelta(microseconds=start // 1_000)
    if not end:
        return occurred_at, None
    if end < start:
        raise SpanRejected("end_time_unix_nano: before start_time_unix_nano")
    latency_ms = (end - start) / 1e6
    return occurred_at, latency_ms if latency_ms <= _MAX_LATENCY_MS else None


def _kind(attrs: _Attributes) -> str:
    _, openinference = attrs.first("openinference.span.kind")
    if isinstance(openinference, str) and openinference.upper() in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[openinference.upper()]
    _, operation = attrs.first("gen_ai.operation.name")
    if isinstance(operation, str) and operation.lower() in _OPERATION_KINDS:
        return _OPERATION_KINDS[operation.lower()]
    llm_hints = ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name", *_USAGE["input_tokens"])
    return "llm" if any(attrs.values.get(name) is not None for name in llm_hints) else "chain"


def _usage(attrs: _Attributes) -> dict[str, int] | None:
    counts: dict[str, int] = {}
    for target, names in _USAGE.items():
        name, raw = attrs.first(*names)
        if raw is None:
            continue
        value = as_int(raw)
        if value is None:
            raise SpanRejected(f"{name}: not an integer token count")
        counts[target] = value
    if not counts:
        return None
    # The contract counts cached tokens inside input_tokens and reasoning inside output_tokens, as the GenAI
    # conventions and OpenAI do; a producer that reported them apart (Anthropic's way) has them added.
    cached = counts.get("cache_read_input_tokens", 0) + counts.get("cache_write_input_tokens", 0)
    if cached > counts.get("input_tokens", 0) >= 0:
        counts["input_tokens"] = counts.get("input_tokens", 0) + cached
    if counts.get("reasoning_tokens", 0) > counts.get("output_tokens", 0) >= 0:
        counts["output_tokens"] = counts.get("output_tokens", 0) + counts["reasoning_tokens"]
    return counts


def _status(span: Span, attrs: _Attributes, events: list[tuple[str, dict[str, Any]]],
            ) -> tuple[str, dict[str, Any] | None]:
    _, error_type = attrs.first("error.type")
    exception = next((ev for name, ev in events if name == "exception"), {})
    if span.status.code != _ERROR and error_type is None:
        return "ok", None
    kind = error_type or exception.get("exception.type") or "error"
    message = span.status.message or exception.get("exception.message") or ""
    return "error", {"type": clean(str(kind), 256) or "error", "message": clean(str(message), 4_096)}


def _ttft(attrs: _Attributes, latency_ms: float | None) -> float | None:
    seconds = as_float(attrs.first("gen_ai.response.time_to_first_chunk")[1])
    if seconds is None or seconds < 0:
        return None
    ttft = seconds * 1_000
    return ttft if latency_ms is None or ttft <= latency_ms else None


def _short(value: Any) -> str | None:
    return as_text(value, 256) if isinstance(value, str | int) and not isinstance(value, bool) else None


def _tags(value: Any) -> list[str] | None:
    value = maybe_json(value)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return None
    tags = [t for t in (clean(v, 200) for v in value if isinstance(v, str)) if t]
    return list(dict.fromkeys(tags))[:MAX_TAGS] or None


def _identifier(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= 128 and _IDENTIFIER.match(value) else None


def _identifier_from(value: Any) -> str | None:
    """`value` made to fit the id pattern: characters outside it become `-`, at most 128 of them."""
    if not isinstance(value, str):
        return None
    text = _NOT_IN_IDENTIFIER.sub("-", value.strip()).strip("-._:/@")[:128]
    return text or None


def bounded_metadata(items: Sequence[tuple[str, Any]], *, dropped: int = 0) -> dict[str, Any]:
    """Key-value pairs as `metadata` within the contract's limits: each value at most
    `METADATA_VALUE_CHARS` long (else truncated), as many as fit in `MAX_METADATA_KEYS` keys and
    `MAX_METADATA_BYTES` bytes (the rest dropped); both counted, under `otel.truncated_attributes` and
    `otel.dropped_attributes`, together with the `dropped` counted before."""
    out: dict[str, Any] = {}
    truncated = 0
    budget = MAX_METADATA_BYTES - 96  # room for the two counts
    size = 2
    for key, raw in items:
        if raw is None:
            continue
        value, was_truncated = _bounded_value(raw)
        name = clean(str(key), 256)
        entry = len(orjson.dumps(name)) + len(orjson.dumps(value)) + 2
        if len(out) >= MAX_METADATA_KEYS - 2 or size + entry > budget or name in out:
            dropped += 1
            continue
        out[name] = value
        size += entry
        truncated += was_truncated
    if truncated:
        out["otel.truncated_attributes"] = truncated
    if dropped:
        out["otel.dropped_attributes"] = dropped
    return out


def _bounded_value(value: Any) -> tuple[Any, bool]:
    if isinstance(value, bool | int | float):
        return value, False
    if isinstance(value, list) and all(isinstance(v, bool | int | float | str) for v in value):
        bounded = [v if not isinstance(v, str) else clean(v, METADATA_VALUE_CHARS) for v in value[:32]]
        fits = len(orjson.dumps(bounded)) <= METADATA_VALUE_CHARS * 2
        if fits:
            return bounded, bounded != value
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    cleaned = clean(text, METADATA_VALUE_CHARS)
    return cleaned, len(text) > METADATA_VALUE_CHARS
