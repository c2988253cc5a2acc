"""The billing API (FastAPI, port 8083): usage, summary, statements, budgets, prices.

    python -m llmops_billing.api          (or `llmops run billing-api`)

Every route reads or changes the data of the calling key's tenant only (`principal.tenant_id`); no
route takes a tenant from the request. Reading needs `billing:read` (or `admin`); changing budgets and
prices needs `admin`. Money is a string in JSON. Every error is RFC 9457 problem details
(`llmops_shared.problems`); a bad parameter answers 422 naming it
(`{"type": ..., "title": ..., "status": 422, "detail": ..., "errors": [{"loc": ["query", "group_by"], ...}]}`).

This module only assembles the app: the routers (`routes/`, one per resource), the error mapping, and
what the routes share on `app.state` (settings, clock, the price catalogue, reloaded when a price table
changes: the process's `ConfigWatcher`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from llmops_billing.routes import budgets, prices, usage
from llmops_billing.settings import BillingSettings
from llmops_billing.statements import StatementMismatch
from llmops_shared import problems
from llmops_shared.clock import Clock, utc_now
from llmops_shared.http import api_backends, run_api, suite_api
from llmops_shared.logging import configure_logging

log = logging.getLogger("llmops_billing.api")


def create_app(settings: BillingSettings, *, clock: Clock = utc_now) -> FastAPI:
    """The app; `clock` says what "now" is (current periods, open months, default ranges)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from llmops_billing.catalogue import catalogue_cache

        async with api_backends(app, settings) as (pool, _redis):
            # the process's watcher (api_backends'): a price change elsewhere counts at once here too
            app.state.catalogues = catalogue_cache(settings, watcher=app.state.config_watcher)
            await app.state.catalogues.reload(pool)
            log.info("billing API ready", extra={"port": settings.port})
            yield

    app = suite_api(
        settings,
        title="LLMOps billing API",
        description="Usage and cost per tenant, app, model, provider, prompt, user and tag; monthly statements; "
        "budgets and prices. Keys see their own tenant only. Money is a decimal string in USD. Errors are "
        "RFC 9457 problem details.",
        lifespan=lifespan,
    )
    app.state.clock = clock
    app.add_exception_handler(StatementMismatch, _statement_mismatch)
    app.include_router(usage.router)
    app.include_router(budgets.router)
    app.include_router(prices.router)
    return app


async def _statement_mismatch(_request: Request, exc: Exception) -> Response:
    """A statement that does not add up is refused (500) and logged, never sent wrong."""
    assert isinstance(exc, StatementMismatch)
    log.error("statement does not reconcile with the ledger", exc_info=exc,
              extra={"tenant_id": exc.tenant_id, "month": exc.month})
    return problems.problem_response(500, "the statement does not reconcile with the ledger; operators have been told")


def main() -> None:
    settings = BillingSettings()
    configure_logging("billing-api", settings.log_level)
    run_api(create_app(settings), settings)


if __name__ == "__main__":
    main()
