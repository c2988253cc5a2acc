"""`/v1/budgets`: read with `billing:read`, changed with `admin`; always the calling key's tenant."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Response

from llmops_billing import budgets
from llmops_billing.routes.deps import problems_for
from llmops_billing.schemas import BudgetCreate, BudgetPublic, BudgetsPublic, BudgetUpdate
from llmops_shared.deps import Admin, BillingReader, Conn, Now, Pool

router = APIRouter(prefix="/v1/budgets", tags=["budgets"])


@router.get("", summary="Active budgets with their current period's spend", response_model=BudgetsPublic)
async def get_budgets(*, principal: BillingReader, pool: Pool, now: Now,
                      include_archived: bool = False) -> dict[str, Any]:
    return {"budgets": await budgets.tenant_budget_status(pool, tenant_id=principal.tenant_id, now=now,
                                                           include_archived=include_archived)}


@router.get("/{budget_id}", summary="One budget with its current spend", response_model=BudgetPublic)
async def get_budget(*, principal: BillingReader, pool: Pool, now: Now, budget_id: int) -> dict[str, Any]:
    return await budgets.budget_with_status(pool, tenant_id=principal.tenant_id, budget_id=budget_id, now=now)


@router.post("", summary="Create a budget (admin)", status_code=201, response_model=BudgetPublic,
             responses=problems_for(409, "an active budget exists for this app and period"))
async def post_budget(*, principal: Admin, conn: Conn, now: Now, body: BudgetCreate) -> dict[str, Any]:
    return await budgets.add_budget(conn, tenant_id=principal.tenant_id, app_id=body.app_id, period=body.period,
                                    amount=Decimal(body.amount), thresholds=body.thresholds,
                                    enforcement=body.enforcement, name=body.name, now=now)


@router.put("/{budget_id}", summary="Change a budget (admin)", response_model=BudgetPublic)
async def put_budget(*, principal: Admin, conn: Conn, now: Now, budget_id: int, body: BudgetUpdate) -> dict[str, Any]:
    return await budgets.change_budget(conn, tenant_id=principal.tenant_id, budget_id=budget_id,
                                       amount=None if body.amount is None else Decimal(body.amount),
                                       thresholds=body.thresholds, enforcement=body.enforcement, name=body.name,
                                       now=now)


@router.delete("/{budget_id}", summary="Archive a budget (admin)", status_code=204, response_class=Response,
               response_model=None, responses={204: {"description": "archived (no body)"}})
async def delete_budget(*, principal: Admin, pool: Pool, budget_id: int) -> Response:
    await budgets.archive_budget(pool, tenant_id=principal.tenant_id, budget_id=budget_id)
    return Response(status_code=204)
