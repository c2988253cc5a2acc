"""The console (FastAPI, port 8090): server-rendered pages over the suite's own service functions.

    python -m llmops_console.api          (or `llmops run console`)

Every page reads through the same functions as the services' APIs, scoped to the signed-in key's tenant
and limited by its scopes; there is no other way in. Static files (htmx, uPlot, the console's own CSS and
script) are served by the console itself: nothing comes from a CDN. This module only assembles the app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

import llmops_shared
from llmops_billing.settings import BillingSettings
from llmops_console.auth import SignInNeeded
from llmops_console.routes import alerts, budgets, costs, evaluations, monitors, overview, prompts, signin, traces
from llmops_console.routes.deps import render
from llmops_console.settings import ConsoleSettings
from llmops_guardrails.alerts_service import AlertAnnouncer
from llmops_guardrails.settings import GuardrailsSettings
from llmops_prompts.settings import PromptsSettings
from llmops_shared import db
from llmops_shared.clock import Clock, utc_now
from llmops_shared.http import api_backends, backend_checks, install_limits, ops_router, run_api
from llmops_shared.logging import configure_logging
from llmops_shared.problems import DomainError
from llmops_traces.api import SERVER_SETTINGS as TRACES_SERVER_SETTINGS
from llmops_traces.settings import TracesSettings

log = logging.getLogger("llmops_console.api")
HERE = Path(__file__).parent
VENDOR = Path(llmops_shared.__file__).parent / "static" / "vendor"
SECURITY_HEADERS = {
    # everything the pages use is the console's own: no inline script, no other origin, no framing
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def create_app(settings: ConsoleSettings, *, traces_settings: TracesSettings | None = None,
               guardrails_settings: GuardrailsSettings | None = None, billing_settings: BillingSettings | None = None,
               prompts_settings: PromptsSettings | None = None, clock: Clock = utc_now) -> FastAPI:
    """The app; the traces settings give the tenants' default retention, the guardrails settings the alert
    topic a resolution is announced on, billing's the CSV export's row cap, the prompts service's the
    reports' bootstrap resamples (each from its own variables unless given)."""
    announcer = AlertAnnouncer(guardrails_settings or GuardrailsSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The trace store's pages are read through its functions: plan them for their values, as its API
        # does (`llmops_traces.api.SERVER_SETTINGS`: a generic plan reads every day partition).
        async with api_backends(app, settings, server_settings=TRACES_SERVER_SETTINGS):
            log.info("console ready", extra={"port": settings.port})
            try:
                yield
            finally:
                await announcer.close()

    app = FastAPI(title="LLMOps console", version="1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    app.state.traces_settings = traces_settings or TracesSettings()
    app.state.billing_settings = billing_settings or BillingSettings()
    app.state.prompts_settings = prompts_settings or PromptsSettings()
    app.state.announcer = announcer
    app.state.clock = clock
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    install_limits(app, settings)

    @app.exception_handler(SignInNeeded)
    async def sign_in(request: Request, _exc: Exception) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(DomainError)
    async def domain(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, DomainError)
        return render(request, "error.html", exc.status, status=exc.status, detail=exc.detail)

    async def unavailable(request: Request, exc: Exception) -> HTMLResponse:
        log.warning("a backend is unavailable", extra={"path": request.url.path, "error_type": type(exc).__name__})
        return render(request, "error.html", 503, status=503, detail="a backend is unavailable; retry shortly")

    for kind in db.UNAVAILABLE:
        app.add_exception_handler(kind, unavailable)

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.include_router(ops_router(backend_checks(app)))
    for router in (signin.router, overview.router, alerts.router, traces.router, evaluations.router,
                   budgets.router, costs.router, prompts.router, monitors.router):
        app.include_router(router)
    app.mount("/static/vendor", StaticFiles(directory=VENDOR), name="vendor")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


def main() -> None:
    settings = ConsoleSettings()
    configure_logging("console", settings.log_level)
    run_api(create_app(settings), settings)


if __name__ == "__main__":
    main()
