"""`/v1/prices`: list prices and the tenant's own, quotes and discounts (`billing:read`); the tenant's
negotiated prices and discounts (`admin`). List prices are changed only by `llmops billing prices import`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime

from llmops_billing import price_list
from llmops_billing.routes.deps import Catalogue, Catalogues, Settings, problems_for
from llmops_billing.schemas import (
    DiscountCreate,
    DiscountCreated,
    Discounts,
    PriceCreate,
    PriceCreated,
    PricesPage,
    Quote,
)
from llmops_shared.deps import Admin, BillingReader, Now, Pool

router = APIRouter(prefix="/v1/prices", tags=["prices"])


@router.get("", summary="List prices and this tenant's own prices", response_model=PricesPage)
async def get_prices(*, principal: BillingReader, catalogue: Catalogue, settings: Settings, model: str | None = None,
                     provider: str | None = None, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
    return price_list.price_page(catalogue, tenant_id=principal.tenant_id, model=model, provider=provider, limit=limit,
                                 max_limit=settings.api_page_max, cursor=cursor)


@router.get("/quote", summary="The price this tenant pays for a model at an instant", response_model=Quote)
async def get_quote(*, principal: BillingReader, catalogue: Catalogue, now: Now, model: str,
                    provider: str | None = None, at: AwareDatetime | None = None) -> dict[str, Any]:
    return price_list.quote(catalogue, tenant_id=principal.tenant_id, model=model, provider=provider, at=at or now)


@router.get("/discounts", summary="This tenant's discounts", response_model=Discounts)
async def get_discounts(*, principal: BillingReader, catalogue: Catalogue) -> dict[str, Any]:
    return price_list.discounts_of(catalogue, tenant_id=principal.tenant_id)


@router.post("", summary="Add a negotiated price for this tenant (admin)", status_code=201,
             response_model=PriceCreated,
             responses=problems_for(409, "a price for this model, provider and effective_from exists"))
async def post_price(*, principal: Admin, pool: Pool, catalogues: Catalogues, now: Now,
                     body: PriceCreate) -> dict[str, Any]:
    return await price_list.add_price(pool, catalogues=catalogues, tenant_id=principal.tenant_id, price_in=body,
                                      now=now)


@router.post("/discounts", summary="Add a discount for this tenant (admin)", status_code=201,
             response_model=DiscountCreated,
             responses=problems_for(409, "a discount for this scope and effective_from exists"))
async def post_discount(*, principal: Admin, pool: Pool, catalogues: Catalogues, now: Now,
                        body: DiscountCreate) -> dict[str, Any]:
    return await price_list.add_discount(pool, catalogues=catalogues, tenant_id=principal.tenant_id,
                                         discount_in=body, now=now)
