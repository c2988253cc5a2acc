"""The monitors API (FastAPI, port 8086): monitor definitions and their firings.

    python -m llmops_monitors.api          (or `llmops run monitors-api`)

Every route is scoped to the tenant of the calling key; another tenant's monitor is a 404. Scopes:
`alerts:read` (list, get, firings), `admin` (create, replace, delete). A change is in force in the
monitors worker within a second (the `monitors` table notifies `llmops_config`). This module only
assembles the app: the router in `routes/`, the work in `service`, the SQL in `store/`. Every error is an
RFC 9457 problem (`llmops_shared.problems`). The reference is docs/monitors.md.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from llmops_monitors.routes import monitors
from llmops_monitors.settings import MonitorsSettings
from llmops_shared.http import api_backends, run_api, suite_api
from llmops_shared.logging import configure_logging

log = logging.getLogger("llmops_monitors.api")


def create_app(settings: MonitorsSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with api_backends(app, settings):
            log.info("monitors API ready", extra={"port": settings.port})
            yield

    app = suite_api(
        settings,
        title="LLMOps monitors API",
        description="Windowed monitors on error rate, latency, cost, tokens, request count, judge score and "
        "guardrail findings; their firings page through the notifier's channels. Every call is scoped to the "
        "tenant of its API key. Errors are RFC 9457 problem details (application/problem+json).",
        lifespan=lifespan,
    )
    app.include_router(monitors.router)
    return app


def main() -> None:
    settings = MonitorsSettings()
    configure_logging("monitors-api", settings.log_level)
    run_api(create_app(settings), settings)


if __name__ == "__main__":
    main()
