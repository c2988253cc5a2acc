"""`/alerts` (list, filtered by status), `/alerts/{id}` (its timeline and the traces that raised it),
acknowledge and resolve: the guardrails service's own functions, for the signed-in key's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from llmops_console.auth import CheckedForm, Viewer
from llmops_console.routes.deps import render
from llmops_guardrails import alerts_service
from llmops_shared.apikeys import Scope
from llmops_shared.deps import Now
from llmops_traces import explorer, retention
from llmops_traces.store import tenant_settings

router = APIRouter()
STATUSES = ("open", "acknowledged", "resolved")


@router.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
async def alerts(request: Request, viewer: Viewer,
                 status: Annotated[list[str], Query()] = [],  # noqa: B006
                 cursor: str | None = None) -> HTMLResponse:
    viewer.require(Scope.ALERTS_READ)
    chosen = [s for s in status if s in STATUSES] or ["open", "acknowledged"]
    page = await alerts_service.list_alerts(request.app.state.pool, tenant_id=viewer.principal.tenant_id,
                                            where=alerts_service.AlertFilter(status=chosen), limit=50, cursor=cursor)
    return render(request, "alerts.html", viewer=viewer, page="alerts", alerts=page.alerts,
                  next_cursor=page.next_cursor, chosen=chosen, statuses=STATUSES)


@router.get("/alerts/{alert_id}", response_class=HTMLResponse, include_in_schema=False)
async def alert(request: Request, viewer: Viewer, now: Now, alert_id: str) -> HTMLResponse:
    viewer.require(Scope.ALERTS_READ)
    pool, tenant = request.app.state.pool, viewer.principal.tenant_id
    found = await alerts_service.get_alert(pool, tenant_id=tenant, alert_id=alert_id)
    traces = None
    if viewer.may(Scope.TRACES_READ):
        events = await alerts_service.alert_events(pool, tenant_id=tenant, alert_id=alert_id, limit=200)
        chosen = await tenant_settings.get(pool, tenant_id=tenant)
        since = retention.visible_from(request.app.state.traces_settings, chosen.retention_days, now)
        traces = await explorer.traces_of_events(pool, tenant_id=tenant, since=since,
                                                 keys=[(e["event_id"], e["occurred_at"]) for e in events])
    return render(request, "alert.html", viewer=viewer, page="alerts", alert=found, traces=traces)


@router.post("/alerts/{alert_id}/acknowledge", include_in_schema=False)
async def acknowledge(request: Request, viewer: Viewer, _form: CheckedForm, alert_id: str) -> RedirectResponse:
    viewer.require(Scope.ALERTS_WRITE)
    await alerts_service.acknowledge(request.app.state.pool, tenant_id=viewer.principal.tenant_id,
                                     alert_id=alert_id, by=viewer.principal.key_id)
    return RedirectResponse(f"/alerts/{alert_id}", status_code=303)


@router.post("/alerts/{alert_id}/resolve", include_in_schema=False)
async def resolve(request: Request, viewer: Viewer, _form: CheckedForm, alert_id: str) -> RedirectResponse:
    viewer.require(Scope.ALERTS_WRITE)
    await alerts_service.resolve(request.app.state.pool, tenant_id=viewer.principal.tenant_id, alert_id=alert_id,
                                 by=viewer.principal.key_id, announce=request.app.state.announcer.announce)
    return RedirectResponse(f"/alerts/{alert_id}", status_code=303)
