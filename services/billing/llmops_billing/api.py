"""The billing API (FastAPI, port 8083): usage, summary, statements, budgets, prices.

    python -m llmops_billing.api          (or `llmops run billing-api`)

Every route reads or changes the data of the calling key's tenant only (`principal.tenant_id`); no
route takes a tenant from the request. Reading needs `billing:read` (or `admin`); changing budgets and
prices needs `admin`. Money is a string in JSON. Bad parameters answer 422 with FastAPI's error shape,
naming the field (`{"detail": [{"loc": ["query", "group_by"], "msg": ..., "type": ...}]}`).
The routes are thin: the work is in `service`, `budgets` and `price_store`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime

from llmops_billing import budgets, price_list, statements, usage
from llmops_billing.schemas import BudgetCreate, BudgetUpdate, DiscountCreate, PriceCreate
from llmops_billing.settings import BillingSettings
from llmops_billing.statements import StatementMismatch
from llmops_billing.usage_query import UsageQuery, parse_usage_query
from llmops_shared.apikeys import Principal, Scope
from llmops_shared.clock import Clock, utc_now
from llmops_shared.http import JSONBody, api_backends, backend_checks, ops_router, require_scope, run_api
from llmops_shared.logging import configure_logging
from llmops_shared.problems import DomainError, Invalid

log = logging.getLogger("llmops_billing.api")

Reader = Annotated[Principal, Depends(require_scope(Scope.BILLING_READ))]
Admin = Annotated[Principal, Depends(require_scope(Scope.ADMIN))]
From = Annotated[datetime | None, Query(alias="from", description="start, inclusive (ISO 8601 with time zone); "
                                        "default: the start of the current UTC month")]
To = Annotated[datetime | None, Query(alias="to", description="end, exclusive; default: the start of next month")]
GroupBy = Annotated[list[str] | None, Query(description="comma-separated or repeated: app, environment, model, "
                                            "provider, prompt, user, tag")]
Granularity = Annotated[str | None, Query(description="hour, day (default) or month")]



# -- the app ---------------------------------------------------------------------------------------


def create_app(settings: BillingSettings, *, clock: Clock = utc_now) -> FastAPI:
    """The app; `clock` says what "now" is (current periods, open months, default ranges)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from llmops_billing.worker import catalogue_cache

        async with api_backends(app, settings, key_cache_ttl_s=settings.key_cache_ttl_s) as (pool, _redis):
            app.state.catalogues = catalogue_cache(settings)
            await app.state.catalogues.reload(pool)
            log.info("billing API ready", extra={"port": settings.port})
            yield

    app = FastAPI(
        title="LLMOps billing API",
        version="1.0",
        description="Usage and cost per tenant, app, model, provider, prompt, user and tag; monthly statements; "
        "budgets and prices. Keys see their own tenant only. Money is a decimal string in USD.",
        lifespan=lifespan,
        default_response_class=JSONBody,
    )

    app.include_router(ops_router(backend_checks(app)))

    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        if isinstance(exc, Invalid):
            return JSONBody({"detail": [e.model_dump() for e in exc.errors]}, status_code=422)
        return JSONBody({"detail": exc.detail}, status_code=exc.status)

    def pool(request: Request) -> asyncpg.Pool:
        return request.app.state.pool

    # -- usage ------------------------------------------------------------------------------------

    def usage_query(*, start: datetime | None, end: datetime | None, granularity: str | None,
                    group_by: list[str] | None, app_id: str | None, environment: str | None, model: str | None,
                    provider: str | None, limit: int, cursor: str | None) -> UsageQuery:
        return parse_usage_query(
            start=start, end=end, granularity=granularity, group_by=group_by, limit=limit,
            max_limit=settings.api_page_max, cursor=cursor, now=clock(),
            filters={"app_id": app_id, "environment": environment, "model": model, "provider": provider})

    @app.get("/v1/usage", tags=["usage"], summary="Usage and cost, grouped and bucketed, one page")
    async def get_usage(*, request: Request, principal: Reader, start: From = None, end: To = None,
                        granularity: Granularity = None, group_by: GroupBy = None, app_id: str | None = None,
                        environment: str | None = None, model: str | None = None, provider: str | None = None,
                        limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        query = usage_query(start=start, end=end, granularity=granularity, group_by=group_by, app_id=app_id,
                            environment=environment, model=model, provider=provider, limit=limit, cursor=cursor)
        return await usage.usage_page(pool(request), tenant_id=principal.tenant_id, query=query)

    @app.get("/v1/usage.csv", tags=["usage"], summary="The same query as /v1/usage, every row, as CSV",
             response_class=StreamingResponse)
    async def get_usage_csv(*, request: Request, principal: Reader, start: From = None, end: To = None,
                            granularity: Granularity = None, group_by: GroupBy = None, app_id: str | None = None,
                            environment: str | None = None, model: str | None = None,
                            provider: str | None = None) -> StreamingResponse:
        query = usage_query(start=start, end=end, granularity=granularity, group_by=group_by, app_id=app_id,
                            environment=environment, model=model, provider=provider, limit=1, cursor=None)
        return StreamingResponse(usage.csv_export(pool(request), tenant_id=principal.tenant_id, query=query,
                                                  max_rows=settings.csv_max_rows), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="usage.csv"'})

    @app.get("/v1/summary", tags=["usage"], summary="Totals, top models, apps and providers, budget status")
    async def get_summary(*, request: Request, principal: Reader, start: From = None,
                          end: To = None) -> dict[str, Any]:
        return await usage.summary(pool(request), tenant_id=principal.tenant_id, start=start, end=end, now=clock())

    @app.get("/v1/statements/{month}", tags=["usage"], summary="The monthly statement: line items and total")
    async def get_statement(*, request: Request, principal: Reader,
                            month: Annotated[str, Path(description="YYYY-MM (UTC month)")]) -> dict[str, Any]:
        when = statements.parse_month(month)
        async with pool(request).acquire() as conn:
            try:
                return await statements.statement(conn, tenant_id=principal.tenant_id, month=when, now=clock())
            except StatementMismatch:
                log.exception("statement does not reconcile with the ledger",
                              extra={"tenant_id": principal.tenant_id, "month": month})
                raise HTTPException(500, "the statement does not reconcile with the ledger; "
                                         "operators have been told") from None

    @app.get("/v1/unpriced-models", tags=["usage"], summary="Models seen without a price")
    async def get_unpriced(*, request: Request, principal: Reader) -> dict[str, Any]:
        return await usage.unpriced_models(pool(request), tenant_id=principal.tenant_id)

    # -- budgets ----------------------------------------------------------------------------------

    @app.get("/v1/budgets", tags=["budgets"], summary="Active budgets with their current period's spend")
    async def get_budgets(*, request: Request, principal: Reader, include_archived: bool = False) -> dict[str, Any]:
        return {"budgets": await budgets.tenant_budget_status(pool(request), tenant_id=principal.tenant_id, now=clock(),
                                                               include_archived=include_archived)}

    @app.get("/v1/budgets/{budget_id}", tags=["budgets"], summary="One budget with its current spend")
    async def get_budget(*, request: Request, principal: Reader, budget_id: int) -> dict[str, Any]:
        return await budgets.budget_with_status(pool(request), tenant_id=principal.tenant_id, budget_id=budget_id,
                                                now=clock())

    @app.post("/v1/budgets", tags=["budgets"], summary="Create a budget (admin)", status_code=201)
    async def post_budget(*, request: Request, principal: Admin, body: BudgetCreate) -> dict[str, Any]:
        async with pool(request).acquire() as conn:
            return await budgets.add_budget(conn, tenant_id=principal.tenant_id, app_id=body.app_id, period=body.period,
                                            amount=Decimal(body.amount), thresholds=body.thresholds,
                                            enforcement=body.enforcement, name=body.name, now=clock())

    @app.put("/v1/budgets/{budget_id}", tags=["budgets"], summary="Change a budget (admin)")
    async def put_budget(*, request: Request, principal: Admin, budget_id: int, body: BudgetUpdate) -> dict[str, Any]:
        async with pool(request).acquire() as conn:
            return await budgets.change_budget(conn, tenant_id=principal.tenant_id, budget_id=budget_id,
                                               amount=None if body.amount is None else Decimal(body.amount),
                                               thresholds=body.thresholds, enforcement=body.enforcement,
                                               name=body.name, now=clock())

    @app.delete("/v1/budgets/{budget_id}", tags=["budgets"], summary="Archive a budget (admin)", status_code=204)
    async def delete_budget(*, request: Request, principal: Admin, budget_id: int) -> Response:
        await budgets.archive_budget(pool(request), tenant_id=principal.tenant_id, budget_id=budget_id)
        return Response(status_code=204)

    # -- prices -----------------------------------------------------------------------------------

    async def catalogue(request: Request) -> Any:
        return await request.app.state.catalogues.get(pool(request))

    @app.get("/v1/prices", tags=["prices"], summary="List prices and this tenant's own prices")
    async def get_prices(*, request: Request, principal: Reader, model: str | None = None, provider: str | None = None,
                         limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        return price_list.price_page(await catalogue(request), tenant_id=principal.tenant_id, model=model,
                                     provider=provider, limit=limit, max_limit=settings.api_page_max, cursor=cursor)

    @app.get("/v1/prices/quote", tags=["prices"], summary="The price this tenant pays for a model at an instant")
    async def get_quote(*, request: Request, principal: Reader, model: str, provider: str | None = None,
                        at: AwareDatetime | None = None) -> dict[str, Any]:
        return price_list.quote(await catalogue(request), tenant_id=principal.tenant_id, model=model,
                                provider=provider, at=at or clock())

    @app.get("/v1/prices/discounts", tags=["prices"], summary="This tenant's discounts")
    async def get_discounts(*, request: Request, principal: Reader) -> dict[str, Any]:
        return price_list.discounts_of(await catalogue(request), tenant_id=principal.tenant_id)

    @app.post("/v1/prices", tags=["prices"], summary="Add a negotiated price for this tenant (admin)", status_code=201)
    async def post_price(*, request: Request, principal: Admin, body: PriceCreate) -> dict[str, Any]:
        return await price_list.add_price(pool(request), catalogues=request.app.state.catalogues,
                                          tenant_id=principal.tenant_id, price_in=body, now=clock())

    @app.post("/v1/prices/discounts", tags=["prices"], summary="Add a discount for this tenant (admin)",
              status_code=201)
    async def post_discount(*, request: Request, principal: Admin, body: DiscountCreate) -> dict[str, Any]:
        return await price_list.add_discount(pool(request), catalogues=request.app.state.catalogues,
                                             tenant_id=principal.tenant_id, discount_in=body, now=clock())

    return app


def main() -> None:
    settings = BillingSettings()
    configure_logging("billing-api", settings.log_level)
    run_api(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
