"""OTLP spans and requests built with the real `opentelemetry-proto` classes, for the OTLP tests."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

NOW_NS = 1_795_000_000_000_000_000  # 2026-11-18T...: tests pin the app's clock near it


def any_value(value: Any) -> AnyValue:
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(attributes(value))
        return out
    out = AnyValue()
    out.array_value.values.extend(any_value(v) for v in value)
    return out


def attributes(values: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in values.items()]


def new_trace_id() -> bytes:
    return os.urandom(16)


def span(*, trace_id: bytes | None = None, span_id: bytes | None = None, parent: bytes = b"", name: str = "chat",
         start_ns: int = NOW_NS, duration_ms: float = 250.0, attrs: dict[str, Any] | None = None,
         events: list[tuple[str, dict[str, Any]]] | None = None, error: str | None = None) -> Span:
    out = Span(trace_id=new_trace_id() if trace_id is None else trace_id,
               span_id=os.urandom(8) if span_id is None else span_id, parent_span_id=parent, name=name,
               kind=Span.SpanKind.SPAN_KIND_CLIENT, start_time_unix_nano=start_ns,
               end_time_unix_nano=start_ns + int(duration_ms * 1e6) if duration_ms >= 0 else 0)
    out.attributes.extend(attributes(attrs or {}))
    for event_name, event_attrs in events or []:
        event = out.events.add(name=event_name, time_unix_nano=start_ns)
        event.attributes.extend(attributes(event_attrs))
    if error is not None:
        out.status.code = out.status.STATUS_CODE_ERROR
        out.status.message = error
    return out


def request(*spans: Span, resource: dict[str, Any] | None = None, scope: str = "tests") -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    resource_spans = out.resource_spans.add()
    resource_spans.resource.attributes.extend(attributes(
        {"service.name": "support-bot"} if resource is None else resource))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return out
