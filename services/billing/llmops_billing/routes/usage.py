"""`/v1/usage`, `/v1/usage.csv`, `/v1/summary`, `/v1/statements/{month}`, `/v1/unpriced-models`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse

from llmops_billing import statements, usage
from llmops_billing.routes.deps import Settings, problems_for
from llmops_billing.schemas import Statement, UnpricedModels, UsagePage, UsageSummary
from llmops_billing.usage_query import UsageQuery, parse_usage_query, user_filter
from llmops_shared.deps import BillingReader, Conn, Now, Pool
from llmops_shared.http import JSONBody

router = APIRouter(prefix="/v1", tags=["usage"])

From = Annotated[datetime | None, Query(alias="from", description="start, inclusive (ISO 8601 with time zone); "
                                        "default: the start of the current UTC month")]
To = Annotated[datetime | None, Query(alias="to", description="end, exclusive; default: the start of next month")]
GroupBy = Annotated[list[str] | None, Query(description="comma-separated or repeated: app, environment, model, "
                                            "provider, prompt, user, tag")]
GranularityParam = Annotated[str | None, Query(description="hour, day (default) or month")]
Top = Annotated[int | None, Query(description="only the rows of the N groups with the largest cost over the "
                                  "range (ties by the group's values; needs group_by); `others` sums the rest")]


@dataclass(frozen=True)
class UsageParams:
    """The parameters `/v1/usage` and `/v1/usage.csv` share."""

    start: datetime | None
    end: datetime | None
    granularity: str | None
    group_by: list[str] | None
    filters: dict[str, str | None]

    user_id: str | None

    def query(self, *, tenant_id: str, pseudonym_key: bytes, now: datetime, limit: int = 100,
              max_limit: int = 1_000, cursor: str | None = None, top: int | None = None) -> UsageQuery:
        user = user_filter(self.user_id, tenant_id=tenant_id, key=pseudonym_key)
        return parse_usage_query(start=self.start, end=self.end, granularity=self.granularity,
                                 group_by=self.group_by, filters={**self.filters, "user_id": user}, limit=limit,
                                 max_limit=max_limit, cursor=cursor, now=now, top=top)


UserId = Annotated[str | None, Query(description="only this user: the app's own user id (or the pseudonym a "
                                     "row shows); users are stored and shown as pseudonyms (docs/security.md)")]


async def _usage_params(*, start: From = None, end: To = None, granularity: GranularityParam = None,
                  group_by: GroupBy = None, app_id: str | None = None, environment: str | None = None,
                  model: str | None = None, provider: str | None = None, user_id: UserId = None) -> UsageParams:
    return UsageParams(start, end, granularity, group_by,
                       {"app_id": app_id, "environment": environment, "model": model, "provider": provider},
                       user_id)


Params = Annotated[UsageParams, Depends(_usage_params)]

_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "every row of the query as CSV: `bucket`, the group columns, then the measures",
    "content": {"text/csv": {"schema": {"type": "string"}}}}}


@router.get("/usage", summary="Usage and cost, grouped and bucketed, one page", response_model=UsagePage)
async def get_usage(*, principal: BillingReader, pool: Pool, settings: Settings, now: Now, params: Params,
                    limit: int = 100, cursor: str | None = None, top: Top = None) -> JSONBody:
    query = params.query(tenant_id=principal.tenant_id, pseudonym_key=settings.pseudonym_secret(), now=now,
                         limit=limit, max_limit=settings.api_page_max, cursor=cursor, top=top)
    return JSONBody(await usage.usage_page(pool, tenant_id=principal.tenant_id, query=query))  # rendered as it is


@router.get("/usage.csv", summary="The same query as /v1/usage, every row, as CSV", response_class=StreamingResponse,
            response_model=None, responses=_CSV_RESPONSE)
async def get_usage_csv(*, principal: BillingReader, pool: Pool, settings: Settings, now: Now,
                        params: Params) -> StreamingResponse:
    query = params.query(tenant_id=principal.tenant_id, pseudonym_key=settings.pseudonym_secret(), now=now)
    return StreamingResponse(
        usage.csv_export(pool, tenant_id=principal.tenant_id, query=query, max_rows=settings.csv_max_rows),
        media_type="text/csv; charset=utf-8", headers={"Content-Disposition": 'attachment; filename="usage.csv"'})


@router.get("/summary", summary="Totals, top models, apps and providers, budget status", response_model=UsageSummary)
async def get_summary(*, principal: BillingReader, pool: Pool, now: Now, start: From = None,
                      end: To = None) -> JSONBody:
    return JSONBody(await usage.summary(pool, tenant_id=principal.tenant_id, start=start, end=end, now=now))


@router.get("/statements/{month}", summary="The monthly statement: line items and total", response_model=Statement,
            responses=problems_for(500, "the statement does not reconcile with the ledger (logged)"))
async def get_statement(*, principal: BillingReader, conn: Conn, now: Now,
                        month: Annotated[str, Path(description="YYYY-MM (UTC month)")]) -> dict[str, Any]:
    return await statements.statement(conn, tenant_id=principal.tenant_id, month=statements.parse_month(month),
                                      now=now)


@router.get("/unpriced-models", summary="Models seen without a price", response_model=UnpricedModels)
async def get_unpriced(*, principal: BillingReader, pool: Pool) -> dict[str, Any]:
    return await usage.unpriced_models(pool, tenant_id=principal.tenant_id)
