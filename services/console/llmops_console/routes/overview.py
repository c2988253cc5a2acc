"""`/`: cost today against yesterday and the month so far against last month, cost by model this month,
budgets' burn, requests, errors and p95 latency over the last day, open alerts. The charts part
(`/overview/live`) is fetched again by htmx every minute, so the page updates without a reload."""

from __future__ import annotations

from dataclasses import replace
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
from llmops_guardrails import alerts_service
from llmops_shared.apikeys import Scope
from llmops_shared.deps import Now
from llmops_traces import metrics
from llmops_traces.views import iso

router = APIRouter()


async def _cost(pool: Any, tenant: str, start: datetime, end: datetime, now: datetime) -> float:
    """The tenant's cost over `[start, end)` (billing's usage query, one row, no buckets)."""
    query = replace(parse_usage_query(start=start, end=end, granularity=None, group_by=None, now=now),
                    granularity=None)
    rows = (await usage.usage_page(pool, tenant_id=tenant, query=query))["rows"]
    return float(rows[0]["cost_total"]) if rows else 0.0


async def _spend(pool: Any, tenant: str, now: datetime) -> dict[str, Any]:
    """Today so far against yesterday to the same hour (and all of yesterday); the month so far against last
    month to the same day and hour. Ranges end on the next whole hour, so billing answers from its hourly
    rollup."""
    windows = charts.spend_windows(now)
    figures = {name: await _cost(pool, tenant, start, end, now) for name, (start, end) in windows.items()}
    return {**figures, "day_change": charts.change(figures["today"], figures["yesterday_so_far"]),
            "month_change": charts.change(figures["month"], figures["last_month_so_far"])}


async def _live(request: Request, viewer: Viewer, now: datetime) -> dict[str, Any]:
    pool, tenant = request.app.state.pool, viewer.principal.tenant_id
    out: dict[str, Any] = {"cost": None, "spend": None, "budgets": None, "traffic": None, "alerts": None}
    if viewer.may(Scope.BILLING_READ):
        usage_query = parse_usage_query(start=None, end=None, granularity="day", group_by=["model"], now=now,
                                        limit=1_000)
        rows = (await usage.usage_page(pool, tenant_id=tenant, query=usage_query))["rows"]
        out["cost"] = {"chart": charts.pivot(rows, x="bucket", group="model", value="cost_total"),
                       "totals": charts.totals(rows, group="model", value="cost_total")}
        out["spend"] = await _spend(pool, tenant, now)
        out["budgets"] = await tenant_budget_status(pool, tenant_id=tenant, now=now)
    if viewer.may(Scope.TRACES_READ):
        end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        span = {"from": [iso(end - timedelta(hours=24)) or ""], "to": [iso(end) or ""], "granularity": ["hour"]}
        metrics_query = metrics.parse_metrics_query(span, tenant_id=tenant, far_past=now - timedelta(days=800))
        answer = await metrics.metrics(pool, metrics_query)
        points = [p for s in answer["series"] for p in s["points"]]
        chart = charts.series(points, x="bucket", values={"requests": "requests", "errors": "errors"})
        latency = charts.series(points, x="bucket", values={"p95 ms": "latency_p95_ms", "p50 ms": "latency_p50_ms"})
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        today = {"from": [iso(day) or ""], "to": [iso(day + timedelta(days=1)) or ""], "granularity": ["day"]}
        today_points = [p for s in (await metrics.metrics(pool, metrics.parse_metrics_query(
            today, tenant_id=tenant, far_past=now - timedelta(days=800))))["series"] for p in s["points"]]
        out["traffic"] = {"chart": chart, "latency": latency,
                          "requests": sum(p["requests"] for p in points), "errors": sum(p["errors"] for p in points),
                          "p95_today": today_points[0]["latency_p95_ms"] if today_points else None}
    if viewer.may(Scope.ALERTS_READ):
        where = alerts_service.AlertFilter(status=["open", "acknowledged"])
        out["alerts"] = (await alerts_service.list_alerts(pool, tenant_id=tenant, where=where, limit=10)).alerts
    return out


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def overview(request: Request, viewer: Viewer, now: Now) -> HTMLResponse:
    return render(request, "overview.html", viewer=viewer, page="overview", **await _live(request, viewer, now))


@router.get("/overview/live", response_class=HTMLResponse, include_in_schema=False)
async def overview_live(request: Request, viewer: Viewer, now: Now) -> HTMLResponse:
    return render(request, "overview_live.html", viewer=viewer, **await _live(request, viewer, now))
