"""`/traces` (the last day's traces, newest first; the trace store's filters in the query string) and
`/traces/{id}`: the trace as a waterfall with each span's latency, cost, findings (types only) and scores."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from llmops_console import charts
from llmops_console.auth import Viewer
from llmops_console.routes.deps import render
from llmops_shared.apikeys import Scope
from llmops_shared.deps import Now
from llmops_traces import explorer, retention
from llmops_traces.query import DEFAULT_FIELDS, parse_list_query
from llmops_traces.store import tenant_settings
from llmops_traces.views import iso

router = APIRouter()


async def _visible_from(request: Request, tenant_id: str, now: datetime) -> datetime:
    chosen = await tenant_settings.get(request.app.state.pool, tenant_id=tenant_id)
    return retention.visible_from(request.app.state.traces_settings, chosen.retention_days, now)


@router.get("/traces", response_class=HTMLResponse, include_in_schema=False)
async def traces(request: Request, viewer: Viewer, now: Now) -> HTMLResponse:
    viewer.require(Scope.TRACES_READ)
    settings = request.app.state.traces_settings
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        if value != "":
            params.setdefault(name, []).append(value)
    params.setdefault("from", [iso(now - timedelta(days=1)) or ""])
    params.setdefault("to", [iso(now + timedelta(minutes=1)) or ""])
    query = parse_list_query("traces", params, tenant_id=viewer.principal.tenant_id, sorts=("time", "latency", "cost"),
                             visible_from=await _visible_from(request, viewer.principal.tenant_id, now),
                             max_days=settings.query_max_days, search_max_hours=settings.search_max_hours,
                             max_limit=settings.api_page_max)
    page = await explorer.trace_page(request.app.state.pool, query)
    return render(request, "traces.html", viewer=viewer, page="traces", traces=page["items"],
                  next_cursor=page["next_cursor"], params={k: v[0] for k, v in params.items()})


@router.get("/traces/{trace_id:path}", response_class=HTMLResponse, include_in_schema=False)
async def trace(request: Request, viewer: Viewer, now: Now, trace_id: str) -> HTMLResponse:
    viewer.require(Scope.TRACES_READ)
    detail = await explorer.trace_detail(
        request.app.state.pool, tenant_id=viewer.principal.tenant_id, trace_id=trace_id,
        since=await _visible_from(request, viewer.principal.tenant_id, now),
        max_spans=request.app.state.traces_settings.trace_max_spans, groups=DEFAULT_FIELDS | {"usage"})
    return render(request, "trace.html", viewer=viewer, page="traces", trace=detail,
                  rows=charts.waterfall(detail["spans"]))
