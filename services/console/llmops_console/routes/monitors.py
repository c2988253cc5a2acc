"""`/monitors`: the tenant's monitor definitions, each one's current state and its recent firings (the
monitors service's own functions, with `alerts:read` as its API asks)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from llmops_console.auth import Viewer
from llmops_console.routes.deps import render
from llmops_monitors import service
from llmops_shared.apikeys import Scope

router = APIRouter()
RECENT_FIRINGS = 5


@router.get("/monitors", response_class=HTMLResponse, include_in_schema=False)
async def monitors(request: Request, viewer: Viewer) -> HTMLResponse:
    viewer.require(Scope.ALERTS_READ)
    pool, tenant = request.app.state.pool, viewer.principal.tenant_id
    defined = (await service.list_monitors(pool, tenant_id=tenant)).monitors
    states = await service.states(pool, tenant_id=tenant, monitor_ids=[m.monitor_id for m in defined])
    firings = {m.monitor_id: (await service.list_firings(pool, tenant_id=tenant, monitor_id=m.monitor_id,
                                                         limit=RECENT_FIRINGS)).firings for m in defined}
    return render(request, "monitors.html", viewer=viewer, page="monitors", monitors=defined, states=states,
                  firings=firings)
