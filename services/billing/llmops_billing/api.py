"""The billing API (FastAPI, port 8083): usage, summary, statements, budgets, prices.

    python -m llmops_billing.api          (or `llmops run billing-api`)

Every route reads or changes the data of the calling key's tenant only (`principal.tenant_id`); no
route takes a tenant from the request. Reading needs `billing:read` (or `admin`); changing budgets and
prices needs `admin`. Money is a string in JSON. Bad parameters answer 422 with FastAPI's error shape,
naming the field (`{"detail": [{"loc": ["query", "group_by"], "msg": ..., "type": ...}]}`).
The routes are thin: the work is in `service`, `budgets` and `price_store`.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, field_validator

from llmops_billing import budgets as budget_store
from llmops_billing import service
from llmops_billing.alerts import add_to_outbox
from llmops_billing.budgets import BudgetConflict, Enforcement, Period
from llmops_billing.money import check_scale, to_decimal
from llmops_billing.price_store import insert_discount, insert_prices
from llmops_billing.prices import ModelPrice, PriceTier, TenantDiscount
from llmops_billing.service import QueryError, StatementMismatch
from llmops_billing.settings import BillingSettings
from llmops_shared.apikeys import Principal, Scope
from llmops_shared.clock import Clock, utc_now
from llmops_shared.http import JSONBody, api_backends, backend_checks, ops_router, require_scope, run_api
from llmops_shared.logging import configure_logging

log = logging.getLogger("llmops_billing.api")

Reader = Annotated[Principal, Depends(require_scope(Scope.BILLING_READ))]
Admin = Annotated[Principal, Depends(require_scope(Scope.ADMIN))]
From = Annotated[datetime | None, Query(alias="from", description="start, inclusive (ISO 8601 with time zone); "
                                        "default: the start of the current UTC month")]
To = Annotated[datetime | None, Query(alias="to", description="end, exclusive; default: the start of next month")]
GroupBy = Annotated[list[str] | None, Query(description="comma-separated or repeated: app, environment, model, "
                                            "provider, prompt, user, tag")]
Granularity = Annotated[str | None, Query(description="hour, day (default) or month")]
Identifier = Annotated[str, Field(max_length=128, pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")]



def _unprocessable(location: str, fallback_field: str, exc: Exception, fields: Any) -> HTTPException:
    """422 naming the field: the domain's errors start with it (`input_per_token: ...`)."""
    message = str(exc)
    named = message.split(":", 1)[0].strip().removeprefix("tier ")
    field = named if named in fields else fallback_field
    return HTTPException(422, [{"loc": [location, field], "msg": message, "type": "value_error"}])


def _money(value: str, what: str) -> Decimal:
    return check_scale(to_decimal(value, what=what), what=what)


def _optional_money(value: str | None, what: str) -> Decimal | None:
    return None if value is None else _money(value, what)


# -- request bodies --------------------------------------------------------------------------------


class BudgetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_id: Identifier = Field("", description="one app of the tenant; empty: every app")
    period: Period
    amount: StrictStr = Field(description="USD, a decimal string such as \"250.00\"")
    thresholds: list[int] = Field(default_factory=lambda: list(budget_store.DEFAULT_THRESHOLDS),
                                  description="percent of the amount, each 1..1000")
    enforcement: Enforcement = Enforcement.SOFT
    name: str = Field("", max_length=200)

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str) -> str:
        budget_store.validate_amount(value)
        return value

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: list[int]) -> list[int]:
        return list(budget_store.validate_thresholds(value))


class BudgetUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictStr | None = None
    thresholds: list[int] | None = None
    enforcement: Enforcement | None = None
    name: str | None = Field(None, max_length=200)

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str | None) -> str | None:
        if value is not None:
            budget_store.validate_amount(value)
        return value

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: list[int] | None) -> list[int] | None:
        return None if value is None else list(budget_store.validate_thresholds(value))


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    above_input_tokens: int = Field(ge=0)
    input_per_token: StrictStr | None = None
    output_per_token: StrictStr | None = None
    cache_read_per_token: StrictStr | None = None
    cache_write_per_token: StrictStr | None = None
    reasoning_per_token: StrictStr | None = None


class PriceCreate(BaseModel):
    """A negotiated price of the calling tenant (list prices are managed with `llmops billing prices import`)."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr = Field(min_length=1, max_length=200)
    provider: StrictStr = Field("", max_length=64)
    effective_from: AwareDatetime
    effective_until: AwareDatetime | None = None
    input_per_token: StrictStr
    output_per_token: StrictStr
    cache_read_per_token: StrictStr | None = None
    cache_write_per_token: StrictStr | None = None
    reasoning_per_token: StrictStr | None = None
    request_fee: StrictStr = "0"
    tiers: list[TierIn] = Field(default_factory=list)

    def to_price(self, tenant_id: str) -> ModelPrice:
        return ModelPrice(
            model=self.model, provider=self.provider, effective_from=self.effective_from,
            effective_until=self.effective_until, input_per_token=_money(self.input_per_token, "input_per_token"),
            output_per_token=_money(self.output_per_token, "output_per_token"),
            cache_read_per_token=_optional_money(self.cache_read_per_token, "cache_read_per_token"),
            cache_write_per_token=_optional_money(self.cache_write_per_token, "cache_write_per_token"),
            reasoning_per_token=_optional_money(self.reasoning_per_token, "reasoning_per_token"),
            request_fee=_money(self.request_fee, "request_fee"), tenant_id=tenant_id, source="api",
            tiers=tuple(
                PriceTier(t.above_input_tokens, _optional_money(t.input_per_token, "tier input_per_token"),
                          _optional_money(t.output_per_token, "tier output_per_token"),
                          _optional_money(t.cache_read_per_token, "tier cache_read_per_token"),
                          _optional_money(t.cache_write_per_token, "tier cache_write_per_token"),
                          _optional_money(t.reasoning_per_token, "tier reasoning_per_token"))
                for t in self.tiers),
        )


class DiscountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    percent: StrictStr = Field(description="more than 0, at most 100")
    provider: StrictStr = Field("", max_length=64, description="empty: every provider")
    model: StrictStr = Field("", max_length=200, description="empty: every model")
    effective_from: AwareDatetime
    effective_until: AwareDatetime | None = None
    note: str = Field("", max_length=500)


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

    @app.exception_handler(QueryError)
    async def query_error(_request: Request, exc: QueryError) -> JSONResponse:
        return JSONBody({"detail": [{"loc": [exc.location, exc.field], "msg": exc.message, "type": "value_error"}]},
                        status_code=422)

    def pool(request: Request) -> asyncpg.Pool:
        return request.app.state.pool

    # -- usage ------------------------------------------------------------------------------------

    def usage_query(*, start: datetime | None, end: datetime | None, granularity: str | None,
                    group_by: list[str] | None, app_id: str | None, environment: str | None, model: str | None,
                    provider: str | None, limit: int, cursor: str | None) -> service.UsageQuery:
        return service.parse_usage_query(
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
        page = await service.usage(pool(request), tenant_id=principal.tenant_id, query=query)
        return {"from": service.iso_utc(query.start), "to": service.iso_utc(query.end),
                "granularity": query.granularity.value if query.granularity else None,
                "group_by": [g.value for g in query.group_by], "currency": "USD", "source": page.source.value,
                "rows": page.rows, "next_cursor": page.next_cursor}

    @app.get("/v1/usage.csv", tags=["usage"], summary="The same query as /v1/usage, every row, as CSV",
             response_class=StreamingResponse)
    async def get_usage_csv(*, request: Request, principal: Reader, start: From = None, end: To = None,
                            granularity: Granularity = None, group_by: GroupBy = None, app_id: str | None = None,
                            environment: str | None = None, model: str | None = None,
                            provider: str | None = None) -> StreamingResponse:
        query = usage_query(start=start, end=end, granularity=granularity, group_by=group_by, app_id=app_id,
                            environment=environment, model=model, provider=provider, limit=1, cursor=None)
        columns = service.csv_columns(query)
        db = pool(request)
        tenant_id = principal.tenant_id

        async def lines() -> AsyncIterator[bytes]:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
            writer.writeheader()
            async with db.acquire() as conn:
                async for row in service.usage_export(conn, tenant_id=tenant_id, query=query,
                                                      max_rows=settings.csv_max_rows):
                    writer.writerow({k: "" if v is None else v for k, v in row.items()})
                    if buffer.tell() > 64 * 1024:
                        yield buffer.getvalue().encode()
                        buffer.seek(0)
                        buffer.truncate()
            yield buffer.getvalue().encode()

        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="usage.csv"'})

    @app.get("/v1/summary", tags=["usage"], summary="Totals, top models, apps and providers, budget status")
    async def get_summary(*, request: Request, principal: Reader, start: From = None,
                          end: To = None) -> dict[str, Any]:
        query = service.parse_usage_query(start=start, end=end, granularity=None, group_by=None, now=clock())
        db = pool(request)
        body = await service.summary(db, tenant_id=principal.tenant_id, start=query.start, end=query.end)
        active = await budget_store.list_budgets(db, tenant_id=principal.tenant_id)
        body["budgets"] = await budget_store.budget_status(db, active, now=clock())
        return body

    @app.get("/v1/statements/{month}", tags=["usage"], summary="The monthly statement: line items and total")
    async def get_statement(*, request: Request, principal: Reader,
                            month: Annotated[str, Path(description="YYYY-MM (UTC month)")]) -> dict[str, Any]:
        when = service.parse_month(month)
        async with pool(request).acquire() as conn:
            try:
                return await service.statement(conn, tenant_id=principal.tenant_id, month=when, now=clock())
            except StatementMismatch:
                log.exception("statement does not reconcile with the ledger",
                              extra={"tenant_id": principal.tenant_id, "month": month})
                raise HTTPException(500, "the statement does not reconcile with the ledger; "
                                         "operators have been told") from None

    @app.get("/v1/unpriced-models", tags=["usage"], summary="Models seen without a price")
    async def get_unpriced(*, request: Request, principal: Reader) -> dict[str, Any]:
        rows = await pool(request).fetch(
            """SELECT provider, model, model_key, reason, first_seen_at, last_seen_at, event_count, alerted_at,
                      resolved_at FROM unpriced_models WHERE tenant_id = $1 ORDER BY last_seen_at DESC""",
            principal.tenant_id)
        return {"models": [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items()}
                           for r in rows]}

    # -- budgets ----------------------------------------------------------------------------------

    @app.get("/v1/budgets", tags=["budgets"], summary="Active budgets with their current period's spend")
    async def get_budgets(*, request: Request, principal: Reader, include_archived: bool = False) -> dict[str, Any]:
        db = pool(request)
        found = await budget_store.list_budgets(db, tenant_id=principal.tenant_id, include_archived=include_archived)
        return {"budgets": await budget_store.budget_status(db, found, now=clock())}

    @app.get("/v1/budgets/{budget_id}", tags=["budgets"], summary="One budget with its current spend")
    async def get_budget(*, request: Request, principal: Reader, budget_id: int) -> dict[str, Any]:
        db = pool(request)
        found = await budget_store.get_budget(db, tenant_id=principal.tenant_id, budget_id=budget_id)
        if found is None:
            raise HTTPException(404, "no such budget")
        return (await budget_store.budget_status(db, [found], now=clock()))[0]

    @app.post("/v1/budgets", tags=["budgets"], summary="Create a budget (admin)", status_code=201)
    async def post_budget(*, request: Request, principal: Admin, body: BudgetCreate) -> dict[str, Any]:
        now = clock()
        async with pool(request).acquire() as conn, conn.transaction():
            try:
                created = await budget_store.create_budget(
                    conn, tenant_id=principal.tenant_id, app_id=body.app_id, period=body.period,
                    amount=Decimal(body.amount), thresholds=body.thresholds, enforcement=body.enforcement,
                    name=body.name)
            except BudgetConflict as exc:
                raise HTTPException(409, str(exc)) from None
            # A budget created below what is already spent alerts now (the worker's relay sends it).
            await add_to_outbox(conn, await budget_store.evaluate_current(conn, created, now=now))
            return (await budget_store.budget_status(conn, [created], now=now))[0]

    @app.put("/v1/budgets/{budget_id}", tags=["budgets"], summary="Change a budget (admin)")
    async def put_budget(*, request: Request, principal: Admin, budget_id: int, body: BudgetUpdate) -> dict[str, Any]:
        now = clock()
        async with pool(request).acquire() as conn, conn.transaction():
            updated = await budget_store.update_budget(
                conn, tenant_id=principal.tenant_id, budget_id=budget_id,
                amount=None if body.amount is None else Decimal(body.amount), thresholds=body.thresholds,
                enforcement=body.enforcement, name=body.name)
            if updated is None:
                raise HTTPException(404, "no such active budget")
            await add_to_outbox(conn, await budget_store.evaluate_current(conn, updated, now=now))
            return (await budget_store.budget_status(conn, [updated], now=now))[0]

    @app.delete("/v1/budgets/{budget_id}", tags=["budgets"], summary="Archive a budget (admin)", status_code=204)
    async def delete_budget(*, request: Request, principal: Admin, budget_id: int) -> Response:
        if not await budget_store.archive_budget(pool(request), tenant_id=principal.tenant_id, budget_id=budget_id):
            raise HTTPException(404, "no such active budget")
        return Response(status_code=204)

    # -- prices -----------------------------------------------------------------------------------

    async def catalogue(request: Request) -> Any:
        return await request.app.state.catalogues.get(pool(request))

    @app.get("/v1/prices", tags=["prices"], summary="List prices and this tenant's own prices")
    async def get_prices(*, request: Request, principal: Reader, model: str | None = None, provider: str | None = None,
                         limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        if not 1 <= limit <= settings.api_page_max:
            raise QueryError("limit", f"must be from 1 to {settings.api_page_max}")
        rows = service.visible_prices(await catalogue(request), tenant_id=principal.tenant_id, model=model,
                                      provider=provider)
        chunk, next_cursor = service.page_of(rows, limit=limit, cursor=cursor,
                                             scope=f"prices:{model or ''}:{provider or ''}")
        return {"prices": [p.as_json() for p in chunk], "next_cursor": next_cursor}

    @app.get("/v1/prices/quote", tags=["prices"], summary="The price this tenant pays for a model at an instant")
    async def get_quote(*, request: Request, principal: Reader, model: str, provider: str | None = None,
                        at: AwareDatetime | None = None) -> dict[str, Any]:
        found = service.quote(await catalogue(request), tenant_id=principal.tenant_id, model=model,
                              provider=provider, at=at or clock())
        if found is None:
            raise HTTPException(404, "no price for this model at that instant")
        return found

    @app.get("/v1/prices/discounts", tags=["prices"], summary="This tenant's discounts")
    async def get_discounts(*, request: Request, principal: Reader) -> dict[str, Any]:
        found = [d for d in (await catalogue(request)).discounts if d.tenant_id == principal.tenant_id]
        return {"discounts": [
            {"discount_id": d.discount_id, "percent": str(d.percent), "provider": d.provider,
             "model_key": d.model_key, "effective_from": d.effective_from.isoformat(),
             "effective_until": None if d.effective_until is None else d.effective_until.isoformat()}
            for d in sorted(found, key=lambda d: (d.provider, d.model_key, d.effective_from))]}

    @app.post("/v1/prices", tags=["prices"], summary="Add a negotiated price for this tenant (admin)", status_code=201)
    async def post_price(*, request: Request, principal: Admin, body: PriceCreate) -> dict[str, Any]:
        try:
            price = body.to_price(principal.tenant_id)
        except (TypeError, ValueError) as exc:
            raise _unprocessable("body", "price", exc, PriceCreate.model_fields) from None
        async with pool(request).acquire() as conn, conn.transaction():
            report = await insert_prices(conn, [price])
        if not report.inserted:
            raise HTTPException(409, "a price for this model, provider and effective_from already exists; "
                                     "prices are never edited: add one with a later effective_from")
        await request.app.state.catalogues.reload(pool(request))
        return {**price.as_json(), "note": _reprice_note(price.effective_from, clock())}

    @app.post("/v1/prices/discounts", tags=["prices"], summary="Add a discount for this tenant (admin)",
              status_code=201)
    async def post_discount(*, request: Request, principal: Admin, body: DiscountCreate) -> dict[str, Any]:
        try:
            discount = TenantDiscount(tenant_id=principal.tenant_id, percent=_money(body.percent, "percent"),
                                      effective_from=body.effective_from, provider=body.provider, model=body.model,
                                      effective_until=body.effective_until)
        except (TypeError, ValueError) as exc:
            raise _unprocessable("body", "percent", exc, DiscountCreate.model_fields) from None
        if not await insert_discount(pool(request), discount, note=body.note):
            raise HTTPException(409, "a discount for this scope and effective_from already exists")
        await request.app.state.catalogues.reload(pool(request))
        return {"discount_id": discount.discount_id, "percent": str(discount.percent), "provider": discount.provider,
                "model_key": discount.model_key, "effective_from": discount.effective_from.isoformat(),
                "effective_until": None if discount.effective_until is None else discount.effective_until.isoformat(),
                "note": _reprice_note(discount.effective_from, clock())}

    return app


def _reprice_note(effective_from: datetime, now: datetime) -> str:
    if effective_from <= now:
        return ("in force from a past instant: events already priced keep their old cost until "
                "`llmops billing reprice` runs over that period")
    return "in force from a future instant"


def main() -> None:
    settings = BillingSettings()
    configure_logging("billing-api", settings.log_level)
    run_api(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
