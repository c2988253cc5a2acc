"""The ingest API (FastAPI, port 8080).

`POST /v1/interactions` takes one event or `{"interactions": [...]}` (up to 1,000 events / 5 MB):
202 all accepted, 207 some rejected (per-index errors), 422 none accepted, 400 unparseable body,
401/403 auth, 413 too large, 429 rate-limited (with Retry-After), 503 Kafka unavailable (nothing accepted).
`POST /v1/traces` takes OTLP/HTTP trace exports (`llmops_ingest.otlp`, docs/otlp.md), every span an event.
202 and 207 answer a `BatchResult`; every error answers RFC 9457 problem details
(`llmops_shared.problems`), the 422 naming each bad field of each event in `errors`. An event whose
`occurred_at` is outside the window around the server's time (`LLMOPS_INGEST_MAX_AGE_DAYS` back,
`LLMOPS_INGEST_MAX_AHEAD_S` ahead; "now" is `create_app`'s clock) is refused like any other bad field.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, Field

from llmops_ingest.deps import Limiter, Publisher, Settings, Window
from llmops_ingest.intake import BodyError, Intake, parse_body, validate_items
from llmops_ingest.otlp import route as otlp_route
from llmops_ingest.publisher import EventPublisher
from llmops_ingest.settings import IngestSettings
from llmops_shared import api_docs, problems
from llmops_shared.clock import Clock, utc_now
from llmops_shared.deps import Ingester
from llmops_shared.http import JSONBody, api_backends, backend_checks, install_limits, ops_router, run_api
from llmops_shared.kafka import KafkaUnavailable
from llmops_shared.logging import configure_logging
from llmops_shared.ratelimit import RateLimiter

log = logging.getLogger("llmops_ingest")

EVENTS = Counter("llmops_ingest_events_total", "Events received, by outcome", ["outcome"])
REQUESTS = Counter("llmops_ingest_requests_total", "Requests to POST /v1/interactions, by status", ["status"])
LATENCY = Histogram("llmops_ingest_request_seconds", "POST /v1/interactions latency",
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

_BATCH_EXAMPLE = {
    "interactions": [{
        "event_id": "6f1c1f0e-8f0a-4f57-9a55-3d8f2f7f1b0a", "occurred_at": "2026-11-24T09:00:00Z",
        "app_id": "support-bot", "trace_id": "t-1", "span_id": "s-1", "provider": "openai", "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": "Where is my order?"}], "output": "It ships today.",
        "usage": {"input_tokens": 12, "output_tokens": 5}, "latency_ms": 412.5,
    }]
}


# -- response models -------------------------------------------------------------------------------


class EventFieldError(BaseModel):
    field: str = Field(description="the field, dotted: `usage.input_tokens`; `(event)` for the event as a whole")
    message: str


class RejectedEvent(BaseModel):
    index: int = Field(description="the event's position in `interactions` (0 for a single-event body)")
    errors: list[EventFieldError]


class BatchResult(BaseModel):
    """What became of a request's events: 202 (all accepted) or 207 (some rejected, the rest accepted)."""

    accepted: int = Field(description="events durably in Kafka")
    rejected: int = Field(description="events refused, listed in `errors`")
    errors: list[RejectedEvent] | None = Field(None, description="207 only: each rejected event by index")


JSONSchema = dict[str, Any]


# -- errors: each maps to problem details once, in `_install_errors` ----------------------------------


class Refused(problems.DomainError):
    """`POST /v1/interactions` refuses the request; counted in `llmops_ingest_requests_total` by status."""


class RateLimited(Refused):
    status = 429


class EventStoreUnavailable(Refused):
    status = 503


class NoEventAccepted(Refused):
    """422: every event of the request is invalid. `errors` names each field of each event; its `loc`
    is the field's place in the body, as FastAPI gives it: `["body", "interactions", 2, "usage",
    "input_tokens"]` in a batch, `["body", "usage", "input_tokens"]` for a single-event body."""

    status = 422

    def __init__(self, intake: Intake, *, batch: bool) -> None:
        self.errors = [problems.FieldError(loc=_loc(rejected["index"], error["field"], batch=batch),
                                           msg=error["message"])
                       for rejected in intake.rejected for error in rejected["errors"]]
        shown = "; ".join(f"{'.'.join(str(p) for p in e.loc[1:]) or 'body'}: {e.msg}" for e in self.errors[:5])
        super().__init__(f"no event accepted, {len(intake.rejected)} rejected: {shown}")


def _loc(index: int, field: str, *, batch: bool) -> list[str | int]:
    path: list[str | int] = [] if field == "(event)" else [int(p) if p.isdigit() else p for p in field.split(".")]
    return ["body", "interactions", index, *path] if batch else ["body", *path]


def _install_errors(app: FastAPI) -> None:
    problems.install(app)
    api_docs.install(app)

    async def refused(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        REQUESTS.labels(str(exc.status)).inc()
        return problems.problem_response(exc.status, exc.detail, errors=getattr(exc, "errors", None),
                                         headers=exc.headers)

    async def unusable_body(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BodyError)
        REQUESTS.labels(str(exc.status)).inc()
        return problems.problem_response(exc.status, exc.message)

    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(BodyError, unusable_body)


def _problem(description: str) -> dict[str, Any]:
    # `model` puts Problem among the schemas (FastAPI also lists it under application/json); the
    # schema is named again under the media type the answer really has.
    return {"model": problems.Problem, "description": description,
            "content": {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


# -- the router ------------------------------------------------------------------------------------------


router = APIRouter(prefix="/v1", tags=["interactions"])


@router.get("/schema", summary="JSON Schema of one interaction event", response_model=JSONSchema)
async def get_schema() -> JSONSchema:
    from llmops_shared.contract import interaction_json_schema

    return interaction_json_schema()


@router.post(
    "/interactions",
    summary="Send one interaction event or a batch",
    status_code=202,
    response_model=BatchResult,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"example": _BATCH_EXAMPLE}}}},
    responses={
        202: {"description": "every event accepted and durably in Kafka"},
        207: {"model": BatchResult,
              "description": "some events rejected: `errors` lists them by index; the others are accepted"},
        400: _problem("the body is not JSON or not an event/batch"),
        401: _problem("missing, invalid or revoked API key"),
        403: _problem("the key lacks `ingest:write`"),
        413: _problem("more than 1,000 events or 5 MB"),
        422: _problem("no event valid: `errors` names each field, `loc` starting with the event's place (an "
                      "`occurred_at` outside the accepted window around the server's time is such a field)"),
        429: _problem("rate limit: retry after `Retry-After` seconds"),
        503: _problem("Kafka unavailable: nothing was accepted; retry after `Retry-After` seconds"),
    },
)
async def post_interactions(request: Request, *, principal: Ingester, settings: Settings, limiter: Limiter,
                            publisher: Publisher, window: Window) -> Response:
    started = time.perf_counter()
    body = await _read_body(request, settings.max_body_bytes)
    items, batch = parse_body(body, max_events=settings.max_events_per_request)
    decision = await limiter.take(principal.key_id, len(items), principal.rate_limit_per_s)
    if not decision.allowed:
        raise RateLimited("rate limit exceeded for this API key", headers={"Retry-After": str(decision.retry_after_s)})
    intake = validate_items(items, tenant_id=principal.tenant_id, window=window)
    EVENTS.labels("rejected").inc(len(intake.rejected))
    if not intake.accepted:
        raise NoEventAccepted(intake, batch=batch)
    await _publish(publisher, intake, tenant_id=principal.tenant_id)
    EVENTS.labels("accepted").inc(len(intake.accepted))
    LATENCY.observe(time.perf_counter() - started)
    result: dict[str, Any] = {"accepted": len(intake.accepted), "rejected": len(intake.rejected)}
    if intake.rejected:
        result["errors"] = intake.rejected
        REQUESTS.labels("207").inc()
        return JSONBody(result, status_code=207)
    REQUESTS.labels("202").inc()
    return JSONBody(result, status_code=202)


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


async def _publish(publisher: EventPublisher, intake: Intake, *, tenant_id: str) -> None:
    """The accepted events into Kafka, keyed by trace; `EventStoreUnavailable` (503) if Kafka does not take them."""
    keyed = [(e.trace_id.encode(), p) for e, p in zip(intake.accepted, intake.payloads, strict=True)]
    try:
        await publisher.publish(keyed)
    except KafkaUnavailable as exc:
        log.warning("events not accepted: Kafka unavailable",
                    extra={"tenant_id": tenant_id, "events": len(keyed), "error": str(exc)})
        raise EventStoreUnavailable("event store unavailable; nothing was accepted, retry later",
                                    headers={"Retry-After": "5"}) from exc


# -- the app -----------------------------------------------------------------------------------------


def create_app(settings: IngestSettings, *, clock: Clock = utc_now) -> FastAPI:
    """The app; `clock` says what "now" is (the window `occurred_at` must fall in)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with api_backends(app, settings) as (_pool, redis):
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
        "(`llm.interactions.raw`, keyed by `trace_id`). The event schema: `GET /v1/schema`. Errors are "
        "RFC 9457 problem details (`application/problem+json`), except on `POST /v1/traces` (OTLP/HTTP), "
        "which answers as the OTLP specification says.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock
    _install_errors(app)
    install_limits(app, settings, too_large=otlp_route.too_large)

    async def kafka_check() -> None:
        await app.state.publisher.check()

    app.include_router(ops_router({**backend_checks(app), "kafka": kafka_check}))
    app.include_router(router)
    otlp_route.install(app)
    return app


def main() -> None:
    settings = IngestSettings()
    configure_logging("ingest-api", settings.log_level)
    run_api(create_app(settings), settings)


if __name__ == "__main__":
    main()
