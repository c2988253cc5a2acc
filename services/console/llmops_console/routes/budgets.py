"""`/budgets`: each budget with its current period's spend, thresholds reached and state (billing's own
status function), and its burn-down: what is left of it through the period (billing's usage query over the
period, the budget's app or every app), beside an even pace to zero."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from llmops_billing import usage
from llmops_billing.budgets import tenant_budget_status
from llmops_billing.usage_query import parse_usage_query
from llmops_console import charts
from llmops_console.auth import Viewer
from llmops_console.routes.deps import render
from llmops_shared.apikeys import Scope
from llmops_shared.deps import Now

router = APIRouter()


async def burn_down(pool: Any, *, tenant_id: str, budget: dict[str, Any], now: datetime) -> dict[str, Any]:
    period = budget["current_period"]
    start, end = datetime.fromisoformat(period["start"]), datetime.fromisoformat(period["end"])
    step = timedelta(hours=1) if budget["period"] == "day" else timedelta(days=1)
    query = parse_usage_query(start=start, end=end, granularity="hour" if step == timedelta(hours=1) else "day",
                              group_by=None, filters={"app_id": budget["app_id"]}, now=now, limit=1_000)
    rows = (await usage.usage_page(pool, tenant_id=tenant_id, query=query))["rows"]
    return charts.burn_down(rows, amount=float(budget["amount"]), start=start, end=end,
                             step=step, until=now)


@router.get("/budgets", response_class=HTMLResponse, include_in_schema=False)
async def budgets(request: Request, viewer: Viewer, now: Now) -> HTMLResponse:
    viewer.require(Scope.BILLING_READ)
    pool, tenant = request.app.state.pool, viewer.principal.tenant_id
    found = await tenant_budget_status(pool, tenant_id=tenant, now=now)
    burns = [await burn_down(pool, tenant_id=tenant, budget=b, now=now) for b in found]
    return render(request, "budgets.html", viewer=viewer, page="budgets", budgets=list(zip(found, burns, strict=True)))
