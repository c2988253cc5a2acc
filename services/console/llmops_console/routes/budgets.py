"""`/budgets`: each budget with its current period's spend, thresholds reached and state (billing's own
status function)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from llmops_billing.budgets import tenant_budget_status
from llmops_console.auth import Viewer
from llmops_console.routes.deps import Now, render
from llmops_shared.apikeys import Scope

router = APIRouter()


@router.get("/budgets", response_class=HTMLResponse, include_in_schema=False)
async def budgets(request: Request, viewer: Viewer, now: Now) -> HTMLResponse:
    viewer.require(Scope.BILLING_READ)
    found = await tenant_budget_status(request.app.state.pool, tenant_id=viewer.principal.tenant_id, now=now)
    return render(request, "budgets.html", viewer=viewer, page="budgets", budgets=found)
