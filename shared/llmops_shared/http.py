"""What every API of the suite shares: `/healthz`, `/readyz`, `/metrics`, and bearer-key auth."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmops_shared.apikeys import KeyStore, Principal, Scope

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[object]]


def ops_router(checks: dict[str, ReadinessCheck], *, timeout_s: float = 2.0) -> APIRouter:
    """`/healthz` (the process answers), `/readyz` (its dependencies answer), `/metrics` (Prometheus)."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: every dependency answers", responses={503: {"description": "not ready"}})
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

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer API key (Authorization: Bearer lk_...)",
                            headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def require_scope(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the calling key's `Principal`, 401 for a bad key, 403 without `scope`."""

    async def dependency(request: Request) -> Principal:
        keystore: KeyStore = request.app.state.keystore
        principal = await keystore.resolve(_bearer(request))
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key",
                                headers={"WWW-Authenticate": "Bearer"})
        if not principal.allows(scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key lacks the scope {scope.value!r}")
        return principal

    return dependency


def principal_with(scope: Scope) -> object:
    """`Annotated[Principal, Depends(...)]` for a route parameter."""
    return Annotated[Principal, Depends(require_scope(scope))]
