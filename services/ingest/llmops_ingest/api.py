"""The ingest API (FastAPI, port 8080).

`POST /v1/interactions` takes one event or `{"interactions": [...]}` (up to 1,000 events / 5 MB):
202 all accepted, 207 some rejected (per-index errors), 422 none accepted, 400 unparseable body,
401/403 auth, 413 too large, 429 rate-limited (with Retry-After), 503 Kafka unavailable (nothing accepted).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram

from llmops_ingest.intake import BodyError, parse_body, validate_items
from llmops_ingest.publisher import EventPublisher, KafkaUnavailable
from llmops_ingest.ratelimit import RateLimiter
from llmops_ingest.settings import IngestSettings
from llmops_shared.apikeys import Principal, Scope
from llmops_shared.http import JSONBody, api_backends, backend_checks, ops_router, require_scope, run_api
from llmops_shared.logging import configure_logging

log = logging.getLogger("llmops_ingest")

EVENTS = Counter("llmops_ingest_events_total", "Events received, by outcome", ["outcome"])
REQUESTS = Counter("llmops_ingest_requests_total", "Requests to POST /v1/interactions, by status", ["status"])
LATENCY = Histogram("llmops_ingest_request_seconds", "POST /v1/interactions latency",
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

Ingester = Annotated[Principal, Depends(require_scope(Scope.INGEST_WRITE))]

_BATCH_EXAMPLE = {
    "interactions": [{
        "event_id": "6f1c1f0e-8f0a-4f57-9a55-3d8f2f7f1b0a", "occurred_at": "2026-11-24T09:00:00Z",
        "app_id": "support-bot", "trace_id": "t-1", "span_id": "s-1", "provider": "openai", "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": "Where is my order?"}], "output": "It ships today.",
        "usage": {"input_tokens": 12, "output_tokens": 5}, "latency_ms": 412.5,
    }]
}



def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    REQUESTS.labels(str(status)).inc()
    return JSONBody({"error": message}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: IngestSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with api_backends(app, settings, key_cache_ttl_s=settings.key_cache_ttl_s) as (_pool, redis):
            publisher = EventPublisher(settings.kafka_bootstrap, timeout_s=settings.kafka_timeout_s,
                                       topic=settings.topic)
            app.state.limiter = RateLimiter(redis, rate_per_s=settings.rate_limit_per_s,
                                            burst=settings.rate_limit_burst)
            app.state.publisher = publisher
            try:
                await publisher.check()
            except KafkaUnavailable as exc:
                log.warning("Kafka not reachable at start-up; requests get 503 until it is",
                            extra={"error": str(exc)})
            log.info("ingest API ready", extra={"port": settings.port})
            try:
                yield
            finally:
                await publisher.close()

    app = FastAPI(
        title="LLMOps ingest API",
        version="1.0",
        description="Authenticated, validated, durable intake of interaction events into Kafka "
        "(`llm.interactions.raw`, keyed by `trace_id`). The event schema: `GET /v1/schema`.",
        lifespan=lifespan,
    )

    async def kafka_check() -> None:
        await app.state.publisher.check()

    app.include_router(ops_router({**backend_checks(app), "kafka": kafka_check}))

    @app.get("/v1/schema", tags=["interactions"], summary="JSON Schema of one interaction event")
    async def schema() -> dict[str, Any]:
        from llmops_shared.contract import interaction_json_schema

        return interaction_json_schema()

    @app.post(
        "/v1/interactions",
        tags=["interactions"],
        summary="Send one interaction event or a batch",
        status_code=202,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"example": _BATCH_EXAMPLE}}}},
        responses={
            202: {"description": "every event accepted and durably in Kafka"},
            207: {"description": "some events rejected: `errors` lists them by index; the others are accepted"},
            400: {"description": "the body is not JSON or not an event/batch"},
            401: {"description": "missing, invalid or revoked API key"},
            403: {"description": "the key lacks `ingest:write`"},
            413: {"description": "more than 1,000 events or 5 MB"},
            422: {"description": "no event valid: `errors` names each field"},
            429: {"description": "rate limit: retry after `Retry-After` seconds"},
            503: {"description": "Kafka unavailable: nothing was accepted; retry"},
        },
    )
    async def post_interactions(request: Request, principal: Ingester) -> JSONResponse:
        started = time.perf_counter()
        try:
            body = await _read_body(request, settings.max_body_bytes)
            items, _ = parse_body(body, max_events=settings.max_events_per_request)
        except BodyError as exc:
            return _error(exc.status, exc.message)
        decision = await request.app.state.limiter.take(principal.key_id, len(items), principal.rate_limit_per_s)
        if not decision.allowed:
            return _error(429, "rate limit exceeded for this API key",
                          headers={"Retry-After": str(decision.retry_after_s)})
        intake = validate_items(items, tenant_id=principal.tenant_id)
        EVENTS.labels("rejected").inc(len(intake.rejected))
        if not intake.accepted:
            return _rejected_all(intake.rejected)
        keyed = [(e.trace_id.encode(), p) for e, p in zip(intake.accepted, intake.payloads, strict=True)]
        try:
            await request.app.state.publisher.publish(keyed)
        except KafkaUnavailable as exc:
            log.warning("events not accepted: Kafka unavailable",
                        extra={"tenant_id": principal.tenant_id, "events": len(keyed), "error": str(exc)})
            return _error(503, "event store unavailable; nothing was accepted, retry later",
                          headers={"Retry-After": "5"})
        EVENTS.labels("accepted").inc(len(keyed))
        LATENCY.observe(time.perf_counter() - started)
        body_out: dict[str, Any] = {"accepted": len(intake.accepted), "rejected": len(intake.rejected)}
        if intake.rejected:
            body_out["errors"] = intake.rejected
            REQUESTS.labels("207").inc()
            return JSONBody(body_out, status_code=207)
        REQUESTS.labels("202").inc()
        return JSONBody(body_out, status_code=202)

    return app


def _rejected_all(rejected: list[dict[str, Any]]) -> JSONResponse:
    REQUESTS.labels("422").inc()
    return JSONBody({"accepted": 0, "rejected": len(rejected), "errors": rejected}, status_code=422)


def main() -> None:
    settings = IngestSettings()
    configure_logging("ingest-api", settings.log_level)
    run_api(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
