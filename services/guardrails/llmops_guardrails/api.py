"""The guardrails API (FastAPI, port 8081): alerts, the inline check, policies, notification channels.

`python -m llmops_guardrails.api`. Every route is scoped to the tenant of the calling key; another
tenant's alert or channel is a 404. Scopes: `alerts:read` (list, get), `alerts:write` (acknowledge,
resolve), `guardrails:check` (POST /v1/check), `admin` (policies, channels; admin also passes every other
scope check). Routes are thin: the work is in `alerts_service`, `inline`, `policies_service` and
`channels_service`. The reference is `docs/guardrails.md`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import Histogram
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops_guardrails import alerts_service, channels_service, inline, policies_service
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.logs import configure_service_logging
from llmops_guardrails.policy import PolicyError, default_policy
from llmops_guardrails.settings import GuardrailsSettings
from llmops_shared.alerts import AlertMessage
from llmops_shared.apikeys import Principal, Scope
from llmops_shared.http import JSONBody, api_backends, backend_checks, ops_router, require_scope, run_api
from llmops_shared.kafka import durable_producer

log = logging.getLogger("llmops_guardrails.api")

CHECK_SECONDS = Histogram("llmops_guardrails_check_seconds", "POST /v1/check latency",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5))

Reader = Annotated[Principal, Depends(require_scope(Scope.ALERTS_READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.ALERTS_WRITE))]
Checker = Annotated[Principal, Depends(require_scope(Scope.GUARDRAILS_CHECK))]
Admin = Annotated[Principal, Depends(require_scope(Scope.ADMIN))]
AppQuery = Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$",
                                       description="an app's policy; absent: the tenant-wide one")]
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")



def _error(status: int, message: str, **extra: Any) -> JSONBody:
    return JSONBody({"error": message, **extra}, status_code=status)


class KafkaUnavailable(RuntimeError):
    pass


class AlertAnnouncer:
    """Publishes `resolved` alert messages; the producer starts lazily so the API runs while Kafka is down."""

    def __init__(self, settings: GuardrailsSettings) -> None:
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None
        self.lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self.lock:
            if self.producer is None:
                producer = durable_producer(self.settings.kafka_bootstrap, client_id="guardrails-api",
                                            request_timeout_ms=int(self.settings.kafka_timeout_s * 1000))
                try:
                    await asyncio.wait_for(producer.start(), self.settings.kafka_timeout_s)
                except (KafkaError, OSError, TimeoutError) as exc:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise KafkaUnavailable(type(exc).__name__) from exc
                self.producer = producer
            return self.producer

    async def announce(self, message: AlertMessage) -> None:
        producer = await self._started()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(self.settings.alerts_topic, message.to_json(), key=message.fingerprint.encode()),
                self.settings.kafka_timeout_s)
        except (KafkaError, TimeoutError) as exc:
            raise KafkaUnavailable(type(exc).__name__) from exc

    async def check(self) -> None:
        producer = await self._started()
        await producer.partitions_for(self.settings.alerts_topic)

    async def close(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()


class PolicyPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: str | dict[str, Any] | None = Field(
        None, description="the override: YAML text or a mapping; empty = inherit everything")


def create_app(settings: GuardrailsSettings, *, engine: PolicyEngine | None = None) -> FastAPI:
    """`engine`: tests pass one already loaded; otherwise one is built and warmed up at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with api_backends(app, settings, key_cache_ttl_s=settings.key_cache_ttl_s):
            app.state.engine = engine or PolicyEngine(settings)
            app.state.policies = policies_service.PolicyStore(min(settings.policy_cache_ttl_s, 5.0))
            app.state.announcer = AlertAnnouncer(settings)
            await asyncio.to_thread(app.state.engine.warm_up, default_policy())  # spaCy loads now, not later
            log.info("guardrails API ready", extra={"port": settings.port})
            try:
                yield
            finally:
                await app.state.announcer.close()

    app = FastAPI(
        title="LLMOps guardrails API",
        version="1.0",
        description="Alerts (list, get, acknowledge, resolve), the inline check, policies and notification "
        "channels. Every call is scoped to the tenant of its API key.",
        lifespan=lifespan,
    )

    async def kafka_check() -> None:
        await app.state.announcer.check()

    app.include_router(ops_router({**backend_checks(app), "kafka": kafka_check}))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the offending input; a check request's input is prompt text.
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
                  for e in exc.errors()]
        return _error(422, "invalid request", errors=errors)

    # -- alerts ------------------------------------------------------------------------------------------
    @app.get("/v1/alerts", tags=["alerts"], summary="List alerts, newest first (by last_seen)")
    async def list_alerts(  # noqa: PLR0917 (query parameters)
        principal: Reader, request: Request,
        status: Annotated[list[str], Query(description="open, acknowledged, resolved; repeatable")] = [],  # noqa: B006
        severity: Annotated[list[str], Query(description="info, warning, critical; repeatable")] = [],  # noqa: B006
        app_id: str | None = None, rule: str | None = None, detector: str | None = None,
        since: Annotated[datetime | None, Query(description="last_seen at or after (ISO 8601)")] = None,
        until: Annotated[datetime | None, Query(description="last_seen before (ISO 8601)")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    ) -> JSONResponse:
        bad = [s for s in status if s not in alerts_service.STATUSES] + [
            s for s in severity if s not in ("info", "warning", "critical")]
        if bad:
            return _error(422, f"unknown status or severity: {', '.join(bad)}")
        if any(t is not None and t.tzinfo is None for t in (since, until)):
            return _error(422, "since/until need a time zone (e.g. 2026-01-01T00:00:00Z)")
        where = alerts_service.AlertFilter(status=status, severity=severity, app_id=app_id, rule=rule,
                                           detector=detector, since=since, until=until)
        try:
            items, next_cursor = await alerts_service.list_alerts(
                db=request.app.state.pool, tenant_id=principal.tenant_id, where=where, limit=limit, cursor=cursor)
        except ValueError as exc:
            return _error(422, str(exc))
        return JSONBody({"alerts": items, "next_cursor": next_cursor})

    @app.get("/v1/alerts/{alert_id}", tags=["alerts"], summary="One alert")
    async def get_alert(alert_id: str, principal: Reader, request: Request) -> JSONResponse:
        try:
            return JSONBody(await alerts_service.get_alert(db=request.app.state.pool, tenant_id=principal.tenant_id,
                                                           alert_id=alert_id))
        except alerts_service.AlertNotFound:
            return _error(404, "no such alert")

    @app.post("/v1/alerts/{alert_id}/acknowledge", tags=["alerts"], summary="Acknowledge an open alert")
    async def acknowledge(alert_id: str, principal: Writer, request: Request) -> JSONResponse:
        try:
            return JSONBody(await alerts_service.acknowledge(db=request.app.state.pool, tenant_id=principal.tenant_id,
                                                             alert_id=alert_id, by=principal.key_id))
        except alerts_service.AlertNotFound:
            return _error(404, "no such alert")
        except alerts_service.AlertConflict as exc:
            return _error(409, str(exc))

    @app.post("/v1/alerts/{alert_id}/resolve", tags=["alerts"],
              summary="Resolve an alert (a `resolved` message goes to the notifier: PagerDuty resolves)")
    async def resolve(alert_id: str, principal: Writer, request: Request) -> JSONResponse:
        try:
            return JSONBody(await alerts_service.resolve(
                pool=request.app.state.pool, tenant_id=principal.tenant_id, alert_id=alert_id, by=principal.key_id,
                announce=request.app.state.announcer.announce))
        except alerts_service.AlertNotFound:
            return _error(404, "no such alert")
        except KafkaUnavailable:
            log.warning("alert not resolved: Kafka unavailable", extra={"tenant_id": principal.tenant_id})
            return JSONBody({"error": "the alert stream is unavailable; nothing changed, retry"}, status_code=503,
                            headers={"Retry-After": "5"})

    # -- the inline check --------------------------------------------------------------------------------
    @app.post("/v1/check", tags=["check"], summary="Check a prompt (and optionally a completion) against the policy",
              response_model=inline.CheckResponse)
    async def check(body: inline.CheckRequest, principal: Checker, request: Request) -> Response:
        started = time.perf_counter()
        if body.chars() > settings.check_max_chars:
            return _error(413, f"at most {settings.check_max_chars} characters per check")
        app_id = body.app_id or ""
        pool = request.app.state.pool
        try:
            stored = await request.app.state.policies.one(pool, principal.tenant_id, app_id)
            effective = await inline.policy_for(db=pool, store_effective=stored, tenant_id=principal.tenant_id,
                                                app_id=app_id, inline=body.policy)
        except PolicyError as exc:
            return _error(422, "invalid policy", errors=exc.errors)
        result = await inline.run_check(request.app.state.engine, body, effective)
        CHECK_SECONDS.observe(time.perf_counter() - started)
        return Response(result.model_dump_json(exclude_none=True), media_type="application/json")

    # -- policies ----------------------------------------------------------------------------------------
    @app.get("/v1/policies", tags=["policies"], summary="The latest version of each stored override")
    async def list_policies(principal: Admin, request: Request) -> JSONResponse:
        return JSONBody({"policies": await policies_service.list_latest(db=request.app.state.pool,
                                                                        tenant_id=principal.tenant_id)})

    @app.get("/v1/policy", tags=["policies"],
             summary="A stored override (latest or a version) and the effective policy")
    async def get_policy(principal: Admin, request: Request, app_id: AppQuery = None,
                         version: Annotated[int | None, Query(ge=1)] = None) -> JSONResponse:
        pool = request.app.state.pool
        stored = await policies_service.get_stored(db=pool, tenant_id=principal.tenant_id, app_id=app_id or "",
                                                   version=version)
        if version is not None and stored is None:
            return _error(404, "no such policy version")
        try:
            effective = await policies_service.effective_policy(db=pool, tenant_id=principal.tenant_id,
                                                                app_id=app_id or "")
            eff: dict[str, Any] = {"version": effective.version, "policy": effective.policy.model_dump(mode="json")}
        except PolicyError as exc:
            eff = {"errors": exc.errors}
        return JSONBody({"stored": stored.public() if stored else None, "effective": eff})

    @app.get("/v1/policy/versions", tags=["policies"], summary="Stored versions of an override, newest first")
    async def policy_versions(principal: Admin, request: Request, app_id: AppQuery = None) -> JSONResponse:
        return JSONBody({"versions": await policies_service.list_versions(
            db=request.app.state.pool, tenant_id=principal.tenant_id, app_id=app_id or "")})

    @app.put("/v1/policy", tags=["policies"], status_code=201,
             summary="Store a new version of the tenant's (or an app's) override",
             description="Body: `{\"document\": \"<YAML>\"}` or `{\"document\": {...}}`, or the YAML itself with "
             "Content-Type application/yaml. The merged policy (default <- tenant <- app) is validated; "
             "422 lists every error with its path. A tenant-wide change also re-validates each app override.")
    async def put_policy(principal: Admin, request: Request, app_id: AppQuery = None) -> JSONResponse:
        raw = await request.body()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        document: str | dict[str, Any] | None
        if content_type in YAML_TYPES:
            document = raw.decode("utf-8", "replace")
        else:
            try:
                document = PolicyPut.model_validate_json(raw or b"{}").document
            except ValidationError as exc:
                return _error(422, "body: expected {\"document\": <YAML text or mapping>}",
                              errors=[f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()])
        try:
            stored = await policies_service.put_policy(pool=request.app.state.pool, tenant_id=principal.tenant_id,
                                                       app_id=app_id or "", document=document,
                                                       created_by=principal.key_id)
        except PolicyError as exc:
            return _error(422, "invalid policy", errors=exc.errors)
        request.app.state.policies.invalidate(principal.tenant_id)
        log.info("guardrail policy stored", extra={"tenant_id": principal.tenant_id, "app_id": app_id or "",
                                                   "version": stored.version})
        return JSONBody(stored.public(), status_code=201)

    # -- notification channels ---------------------------------------------------------------------------
    @app.get("/v1/channels", tags=["channels"], summary="The tenant's notification channels")
    async def list_channels(principal: Admin, request: Request) -> JSONResponse:
        return JSONBody({"channels": await channels_service.list_channels(db=request.app.state.pool,
                                                                          tenant_id=principal.tenant_id)})

    @app.post("/v1/channels", tags=["channels"], status_code=201, summary="Add a channel")
    async def create_channel(body: channels_service.ChannelCreate, principal: Admin, request: Request) -> JSONResponse:
        try:
            created = await channels_service.create(db=request.app.state.pool, tenant_id=principal.tenant_id, body=body)
        except channels_service.ChannelError as exc:
            return _error(422, str(exc))
        except channels_service.ChannelNameTaken as exc:
            return _error(409, str(exc))
        return JSONBody(created, status_code=201)

    @app.get("/v1/channels/{channel_id}", tags=["channels"], summary="One channel")
    async def get_channel(channel_id: int, principal: Admin, request: Request) -> JSONResponse:
        try:
            return JSONBody(await channels_service.get(db=request.app.state.pool, tenant_id=principal.tenant_id,
                                                       channel_id=channel_id))
        except channels_service.ChannelNotFound:
            return _error(404, "no such channel")

    @app.patch("/v1/channels/{channel_id}", tags=["channels"], summary="Change a channel")
    async def update_channel(channel_id: int, body: channels_service.ChannelUpdate, principal: Admin,
                             request: Request) -> JSONResponse:
        try:
            return JSONBody(await channels_service.update(db=request.app.state.pool, tenant_id=principal.tenant_id,
                                                          channel_id=channel_id, body=body))
        except channels_service.ChannelNotFound:
            return _error(404, "no such channel")
        except channels_service.ChannelError as exc:
            return _error(422, str(exc))
        except channels_service.ChannelNameTaken as exc:
            return _error(409, str(exc))

    @app.delete("/v1/channels/{channel_id}", tags=["channels"], status_code=204, summary="Delete a channel")
    async def delete_channel(channel_id: int, principal: Admin, request: Request) -> Response:
        try:
            await channels_service.delete(db=request.app.state.pool, tenant_id=principal.tenant_id,
                                          channel_id=channel_id)
        except channels_service.ChannelNotFound:
            return _error(404, "no such channel")
        return Response(status_code=204)

    return app


def main() -> None:
    settings = GuardrailsSettings()
    configure_service_logging("guardrails-api", settings.log_level)
    run_api(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
