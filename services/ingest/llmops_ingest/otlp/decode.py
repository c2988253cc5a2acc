"""From an OTLP/HTTP request body to an `ExportTraceServiceRequest`: pure functions, no I/O.

Two encodings on one path, chosen by `Content-Type`: `application/x-protobuf` (parsed by the OpenTelemetry
project's own generated classes, `opentelemetry-proto`) and `application/json`, OTLP/JSON, which is not
plain proto3 JSON: trace and span ids are **hex** (proto3 JSON would have base64), so they are turned
into base64 before `json_format.ParseDict` reads the document. Unknown fields are ignored, as the
specification asks. A body may be gzip-compressed (`Content-Encoding: gzip`); it is decompressed up to
a cap, never whole first.

An id that is not hex does not fail the request: the span it belongs to is rejected on its own by the
mapping (`Decoded.bad_ids` says which and why), and the other spans are accepted.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SpanPlace = tuple[int, int, int]
"""A span's place in a request: (resource_spans index, scope_spans index, spans index)."""


class Encoding(StrEnum):
    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


class WireError(Exception):
    """The request as a whole is unusable: 400 (corrupt), 413 (too large) or 415 (media type, encoding)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Decoded:
    request: ExportTraceServiceRequest
    bad_ids: dict[SpanPlace, str] = field(default_factory=dict)  # OTLP/JSON spans whose ids are not hex


def encoding_of(content_type: str | None) -> Encoding | None:
    """The OTLP encoding a `Content-Type` names (parameters such as `charset` ignored), or None."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    for encoding in Encoding:
        if media_type == encoding.value:
            return encoding
    return None


def decompress(body: bytes, content_encoding: str | None, *, max_bytes: int) -> bytes:
    """The body without its content codings (`gzip`, `identity`), at most `max_bytes` of it."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    for coding in reversed(codings):  # the last coding applied is the first to undo
        if coding == "identity":
            continue
        if coding not in ("gzip", "x-gzip"):
            raise WireError(415, f"Content-Encoding {coding!r} is not supported; use gzip or none")
        body = _gunzip(body, max_bytes)
    if len(body) > max_bytes:
        raise WireError(413, f"the body is {len(body)} bytes; the limit is {max_bytes}")
    return body


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    out = bytearray()
    while data:  # a gzip stream may hold several members, one after the other
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, max_bytes + 1 - len(out))
        except zlib.error as exc:
            raise WireError(400, f"the gzip body is corrupt: {exc}") from None
        if len(out) > max_bytes:
            raise WireError(413, f"the body exceeds the limit of {max_bytes} bytes once decompressed")
        if not inflater.eof:
            raise WireError(400, "the gzip body is truncated")
        data = inflater.unused_data
    return bytes(out)


def parse(body: bytes, encoding: Encoding) -> Decoded:
    """The request a (decompressed) body holds. Raises `WireError` (400) when it holds none."""
    if encoding is Encoding.PROTOBUF:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise WireError(400, f"the body is not an ExportTraceServiceRequest in protobuf: {exc}") from None
        return Decoded(request)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WireError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise WireError(400, "the body must be a JSON object, an ExportTraceServiceRequest")
    bad_ids = _hex_ids_to_base64(doc)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise WireError(400, f"the body is not an ExportTraceServiceRequest in OTLP/JSON: {exc}") from None
    return Decoded(request, bad_ids)


_ID_FIELDS = (("traceId", "trace_id", 16), ("spanId", "span_id", 8), ("parentSpanId", "parent_span_id", 8))


def _hex_ids_to_base64(doc: dict[str, Any]) -> dict[SpanPlace, str]:
    """Rewrite, in place, every span's and link's hex ids as the base64 proto3 JSON expects; an id that
    is not hex is emptied and reported by the span's place (the mapping rejects that span alone)."""
    bad: dict[SpanPlace, str] = {}
    for r, resource_spans in enumerate(_items(doc, "resourceSpans", "resource_spans")):
        for s, scope_spans in enumerate(_items(resource_spans, "scopeSpans", "scope_spans")):
            for i, span in enumerate(_items(scope_spans, "spans", "spans")):
                problems = _convert_ids(span)
                for link in _items(span, "links", "links"):
                    problems += [f"links.{p}" for p in _convert_ids(link)]
                if problems:
                    bad[(r, s, i)] = "; ".join(problems)
    return bad


def _items(parent: Any, camel: str, snake: str) -> list[Any]:
    if not isinstance(parent, dict):
        return []
    items = parent.get(camel, parent.get(snake))
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _convert_ids(obj: dict[str, Any]) -> list[str]:
    problems = []
    for camel, snake, size in _ID_FIELDS:
        for name in (camel, snake):
            value = obj.get(name)
            if not isinstance(value, str) or not value:
                continue
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raw = None
            if raw is None or len(raw) != size:
                problems.append(f"{snake}: {value[:40]!r} is not {size * 2} hex digits (OTLP/JSON carries ids as hex)")
                obj[name] = ""
            else:
                obj[name] = base64.b64encode(raw).decode()
    return problems

