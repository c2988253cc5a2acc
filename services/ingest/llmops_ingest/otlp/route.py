"""`POST /v1/traces`: OTLP/HTTP trace export, the I/O around the pure `decode` and `mapping`.

Content type (415) -> key (401/403; the key store down: 503) -> body, decompressed and decoded (400, 413)
-> spans per request (413) -> the key's event bucket, one token per span (429) -> each span mapped, valid
ones published to Kafka (503 if Kafka does not take them) -> 200 with partial success for the rejected.
Every answer is in the request's encoding (`answers`); the body cap's 413 too (`too_large`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from prometheus_client import Counter, Histogram
from starlette.responses import Response
from starlette.types import Scope

from llmops_ingest.deps import Limiter, Publisher, Settings, Window
from llmops_ingest.otlp import answers, decode, mapping
from llmops_shared.apikeys import Principal
from llmops_shared.apikeys import Scope as KeyScope
from llmops_shared.http import require_scope
from llmops_shared.kafka import KafkaUnavailable

log = logging.getLogger("llmops_ingest.otlp")

PATH = "/v1/traces"
SPANS = Counter("llmops_ingest_otlp_spans_total", "OTLP spans received, by outcome", ["outcome"])
REQUESTS = Counter("llmops_ingest_otlp_requests_total", "Requests to POST /v1/traces, by status", ["status"])
LATENCY = Histogram("llmops_ingest_otlp_request_seconds", "POST /v1/traces latency",
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

_ingester = require_scope(KeyScope.INGEST_WRITE)


class OtlpRefused(Exception):
    """The request is refused as a whole; answered as a `google.rpc.Status` in the request's encoding."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


router = APIRouter(tags=["traces"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_EXPORTED: dict[str, Any] = {"content": {"application/x-protobuf": _BINARY, "application/json": {"schema": {
    "title": "ExportTraceServiceResponse", "type": "object", "properties": {"partialSuccess": {
        "type": "object", "properties": {"rejectedSpans": {"type": "string", "description": "an int64"},
                                         "errorMessage": {"type": "string"}}}}}}}}
_STATUS: dict[str, Any] = {"content": {"application/x-protobuf": _BINARY, "application/json": {"schema": {
    "title": "google.rpc.Status", "type": "object",
    "properties": {"code": {"type": "integer", "description": "the gRPC status code"},
                   "message": {"type": "string"}}}}}}


@router.post(
    PATH,
    summary="OTLP/HTTP trace export: every span becomes an interaction event",
    response_class=Response,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/x-protobuf": _BINARY,
        "application/json": {"schema": {"type": "object"}}}}},
    responses={
        200: {"description": "an ExportTraceServiceResponse; `partial_success` counts and explains rejected spans",
              **_EXPORTED},
        400: {"description": "the body is not an ExportTraceServiceRequest (google.rpc.Status)", **_STATUS},
        401: {"description": "missing, invalid or revoked API key", **_STATUS},
        403: {"description": "the key lacks `ingest:write`", **_STATUS},
        413: {"description": "the body (after decompression) or the span count is over the limit", **_STATUS},
        415: {"description": "neither application/x-protobuf nor application/json, or not gzip", **_STATUS},
        429: {"description": "the key's event bucket is empty: retry after `Retry-After`", **_STATUS},
        503: {"description": "Kafka or the key store is unavailable: retry after `Retry-After`", **_STATUS},
    },
)
async def post_traces(request: Request, *, settings: Settings, limiter: Limiter, publisher: Publisher,
                      window: Window) -> Response:
    started = time.perf_counter()
    encoding = decode.encoding_of(request.headers.get("content-type"))
    if encoding is None:
        raise OtlpRefused(415, "Content-Type must be application/x-protobuf or application/json")
    principal = await _principal(request)
    try:
        body = decode.decompress(await request.body(), request.headers.get("content-encoding"),
                                 max_bytes=settings.max_body_bytes)
        decoded = decode.parse(body, encoding)
    except decode.WireError as exc:
        raise OtlpRefused(exc.status, exc.message) from None
    spans = mapping.count_spans(decoded)
    if spans > settings.max_events_per_request:
        raise OtlpRefused(413, f"{spans} spans in one request; the limit is {settings.max_events_per_request}")
    if spans:
        decision = await limiter.take(principal.key_id, spans, principal.rate_limit_per_s)
        if not decision.allowed:
            raise OtlpRefused(429, "rate limit exceeded for this API key",
                              headers={"Retry-After": str(decision.retry_after_s)})
    mapped = mapping.map_request(decoded, tenant_id=principal.tenant_id, window=window)
    SPANS.labels("rejected").inc(len(mapped.rejected))
    if mapped.accepted:
        keyed = [(e.trace_id.encode(), p) for e, p in zip(mapped.accepted, mapped.payloads, strict=True)]
        try:
            await publisher.publish(keyed)
        except KafkaUnavailable as exc:
            log.warning("spans not accepted: Kafka unavailable",
                        extra={"tenant_id": principal.tenant_id, "events": len(keyed), "error": str(exc)})
            raise OtlpRefused(503, "event store unavailable; nothing was accepted, retry later",
                              headers={"Retry-After": "5"}) from exc
    SPANS.labels("accepted").inc(len(mapped.accepted))
    REQUESTS.labels("200").inc()
    LATENCY.observe(time.perf_counter() - started)
    return answers.exported(encoding, rejected=len(mapped.rejected), message=mapped.summary())


async def _principal(request: Request) -> Principal:
    """The calling key (scope `ingest:write`), its refusals (401, 403, 503) as OTLP answers."""
    try:
        return await _ingester(request)
    except HTTPException as exc:
        raise OtlpRefused(exc.status_code, str(exc.detail), headers=dict(exc.headers or {})) from None


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OtlpRefused)
    REQUESTS.labels(str(exc.status)).inc()
    encoding = decode.encoding_of(request.headers.get("content-type"))
    return answers.refused(exc.status, exc.message, encoding, exc.headers)


def too_large(scope: Scope, detail: str) -> Response | None:
    """The body cap's 413 on this route, in the request's encoding (None elsewhere: problem details)."""
    if scope.get("path") != PATH:
        return None
    content_type = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"content-type"), None)
    REQUESTS.labels("413").inc()
    return answers.refused(413, detail, decode.encoding_of(content_type))


def install(app: FastAPI) -> None:
    """The route and its error answers; the app's body cap takes `too_large` (`install_limits`)."""
    app.add_exception_handler(OtlpRefused, _refused)
    app.include_router(router)
