"""What every API of the suite shares: `/healthz`, `/readyz`, `/metrics`, and bearer-key auth."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from llmops_shared.apikeys import KeyStore, Principal, Scope
from llmops_shared.body_limit import TooLarge
from llmops_shared.config_changes import ConfigWatcher
from llmops_shared.db import create_pool
from llmops_shared.heap import Thresholds, freeze_long_lived
from llmops_shared.ratelimit import RateLimiter
from llmops_shared.settings import ApiSettings, CommonSettings

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[object]]


class Health(BaseModel):
    status: str = Field(description='always "ok": the process answers')


class Readiness(BaseModel):
    status: str = Field(description='"ready" (200) or "not ready" (503)')
    checks: dict[str, str] = Field(description='each dependency: "ok" or "error: <exception type>"')


def ops_router(checks: dict[str, ReadinessCheck], *, timeout_s: float = 2.0) -> APIRouter:
    """`/healthz` (the process answers), `/readyz` (its dependencies answer), `/metrics` (Prometheus)."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: every dependency answers", response_model=Readiness,
                responses={503: {"model": Readiness, "description": "not ready"}})
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout_s)
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"error: {type(exc).__name__}"
        ready = all(v == "ok" for v in results.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": results},
                            status_code=200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response,
                responses={200: {"description": "Prometheus text format", "content": {CONTENT_TYPE_LATEST: {}}}})
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


@asynccontextmanager
async def api_backends(app: FastAPI, settings: CommonSettings, *, pool_size: int = 8,
                       server_settings: dict[str, str] | None = None,
                       ) -> AsyncIterator[tuple[asyncpg.Pool, aioredis.Redis]]:
    """What every API's lifespan opens: a Postgres pool, a Redis client, a `ConfigWatcher` and the API-key
    store, on `app.state.pool`, `app.state.redis`, `app.state.config_watcher` and `app.state.keystore`, and,
    with `ApiSettings` that set `requests_per_s`, each key's request bucket; closed when the app stops.
    `server_settings` go to every connection of the pool. The watcher empties the key store's answers when
    `api_keys` changes (a revoked key is refused within a second)."""
    key_cache_ttl_s = settings.key_cache_ttl_s if isinstance(settings, ApiSettings) else 30
    key_outage_ttl_s = settings.key_outage_ttl_s if isinstance(settings, ApiSettings) else 0
    requests_per_s = settings.requests_per_s if isinstance(settings, ApiSettings) else None
    requests_burst = settings.requests_burst if isinstance(settings, ApiSettings) else None
    # min_size=0: the API starts while Postgres is down (known keys still work; the rest answers 503)
    pool = await create_pool(settings.database_url, min_size=0, max_size=pool_size,
                             server_settings=server_settings)
    redis = aioredis.from_url(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)
    app.state.pool, app.state.redis = pool, redis
    watcher = ConfigWatcher(settings.database_url)
    await watcher.start(wait_s=2)  # Postgres down: the API starts anyway, keys are checked as without it
    app.state.config_watcher = watcher
    app.state.keystore = KeyStore(pool, redis, cache_ttl_s=key_cache_ttl_s, outage_ttl_s=key_outage_ttl_s,
                                  watcher=watcher)
    if requests_per_s:  # every scoped route then counts the calling key's requests (`require_scope`)
        app.state.request_limiter = RateLimiter(redis, rate_per_s=requests_per_s,
                                                burst=requests_burst or requests_per_s,
                                                purpose=f"requests:{app.title}")
    try:
        yield pool, redis
    finally:
        await watcher.close()
        await redis.aclose()
        await pool.close()


def backend_checks(app: FastAPI) -> dict[str, ReadinessCheck]:
    """Readiness checks for what `api_backends` opened."""

    async def postgres() -> None:
        await app.state.pool.fetchval("SELECT 1")

    async def redis() -> None:
        await app.state.redis.ping()

    return {"postgres": postgres, "redis": redis}


class JSONBody(JSONResponse):
    """A JSON response rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def install_limits(app: FastAPI, settings: ApiSettings, *, too_large: TooLarge | None = None) -> None:
    """The body cap every API has (413 before anything reads the body); call once in `create_app`.
    `too_large` answers the 413 of paths whose protocol has its own error shape."""
    from llmops_shared import body_limit

    body_limit.install(app, max_bytes=settings.max_body_bytes, too_large=too_large)


def suite_api(settings: ApiSettings, *, title: str, description: str, lifespan: Any, json_body: bool = True,
              extra_checks: dict[str, ReadinessCheck] | None = None) -> FastAPI:
    """An API of the suite as every one is built: problem details for errors (and in OpenAPI), the reference
    pages served offline (`api_docs`), the body cap, `/healthz`, `/readyz` (Postgres, Redis and
    `extra_checks`) and `/metrics`, `app.state.settings`; responses rendered by orjson unless `json_body` is
    False. The caller sets its own state and includes its routers."""
    from llmops_shared import api_docs, problems

    options: dict[str, Any] = {"default_response_class": JSONBody} if json_body else {}
    app = FastAPI(title=title, version="1.0", description=description, lifespan=lifespan,
                  responses=problems.ERROR_RESPONSES, docs_url=None, redoc_url=None, **options)
    app.state.settings = settings
    problems.install(app)
    api_docs.install(app)
    install_limits(app, settings)
    app.include_router(ops_router({**backend_checks(app), **(extra_checks or {})}))
    return app


def run_api(app: FastAPI, settings: ApiSettings) -> None:
    """Serve an API in the foreground on the settings' host and port, as every service's `main()` does (logs are
    ours, not uvicorn's), with the settings' collector thresholds once it has started (`freeze_after_start_up`)."""
    import uvicorn

    freeze_after_start_up(app, settings.gc_thresholds)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False, loop="uvloop",
                http="httptools")


def freeze_after_start_up(app: FastAPI, thresholds: Thresholds) -> None:
    """Once the app's lifespan has started (pools, models, caches loaded), freeze what is alive then out of the
    garbage collector's sight and set its thresholds (`llmops_shared.heap`): a request's objects die by
    reference counting, and with Python's default thresholds the ingest API walked every object of its process
    again every ~0.3 s at line rate, to free nothing (bench/RESULTS.md)."""
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with started(app) as state:
            freeze_long_lived(thresholds)
            yield state

    app.router.lifespan_context = lifespan


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer API key (Authorization: Bearer lk_...)",
                            headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def require_scope(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the calling key's `Principal`, 401 for a bad key, 403 without `scope`, 429 (with
    `Retry-After`) past the key's request rate when the app has a `request_limiter` on its state, 503 (with
    `Retry-After`) when Postgres is unreachable and the key has no recent last-known-good answer."""

    async def dependency(request: Request) -> Principal:
        keystore: KeyStore = request.app.state.keystore
        principal = await keystore.resolve(_bearer(request))  # Postgres unreachable: a known key, or 503
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key",
                                headers={"WWW-Authenticate": "Bearer"})
        if not principal.allows(scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key lacks the scope {scope.value!r}")
        limiter: RateLimiter | None = getattr(request.app.state, "request_limiter", None)
        if limiter is not None:
            decision = await limiter.take(principal.key_id, 1)
            if not decision.allowed:
                raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "request rate limit reached for this key",
                                    headers={"Retry-After": str(decision.retry_after_s)})
        return principal

    return dependency
