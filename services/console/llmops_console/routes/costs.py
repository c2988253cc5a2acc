"""`/costs`: a month's cost per day by model, app, user or tag (billing's usage query, the one `/v1/usage`
answers), and `/costs.csv`: the same query's every row as CSV (billing's own export: formula-looking cells
quoted). Users are billing's pseudonyms, as the usage API shows them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from llmops_billing import usage
from llmops_billing.usage_query import GROUP_COLUMNS, GroupField, UsageQuery, parse_usage_query
from llmops_console import charts
from llmops_console.auth import Viewer
from llmops_console.routes.deps import Now, render
from llmops_shared.apikeys import Scope
from llmops_shared.problems import Invalid

router = APIRouter()
GROUPS = ("model", "app", "user", "tag")
PAGE_ROWS = 1_000  # (day, group) rows for the chart by group
MAX_GROUPS = 20_000  # groups summed for the table
TABLE_ROWS = 100  # the largest groups listed; the others in one row
CHART_SERIES = 8


def month_start(text: str | None, now: datetime) -> datetime:
    """The first instant of a `YYYY-MM` month (UTC); this month when not given; `Invalid` naming `month`."""
    if not text:
        return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    try:
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError(text)
        return datetime(int(year), int(month), 1, tzinfo=UTC)
    except ValueError:
        raise Invalid("month", f"{text!r} is not a month like 2026-11", location="query") from None


def cost_query(request: Request, now: datetime) -> tuple[UsageQuery, str, datetime]:
    """The page's and the CSV's one query: a month's daily cost by `group` (default model)."""
    group = request.query_params.get("group") or "model"
    if group not in GROUPS:
        raise Invalid("group", f"{group!r} is not one of {', '.join(GROUPS)}", location="query")
    start = month_start(request.query_params.get("month"), now)
    end = (start + timedelta(days=32)).replace(day=1)
    query = parse_usage_query(start=start, end=end, granularity="day", group_by=[group], now=now, limit=PAGE_ROWS)
    return query, group, start


@router.get("/costs", response_class=HTMLResponse, include_in_schema=False)
async def costs(request: Request, viewer: Viewer, now: Now) -> HTMLResponse:
    """The table: every group's total over the month (one row per group, from the same query without
    buckets). The chart: the daily cost of the largest groups, the rest folded as "(others)"; when the month
    has more than `PAGE_ROWS` rows of (day, group), the daily cost of all groups together instead."""
    viewer.require(Scope.BILLING_READ)
    pool, tenant = request.app.state.pool, viewer.principal.tenant_id
    query, group, start = cost_query(request, now)
    column = GROUP_COLUMNS[GroupField(group)][0][0]
    overall = await usage.usage_page(pool, tenant_id=tenant, query=replace(query, granularity=None, limit=MAX_GROUPS))
    totals = charts.totals(overall["rows"], group=column, value="cost_total")
    # More groups than the chart takes rows: more (day, group) rows too, so the chart is the daily total
    # without reading them (a month of 10,000 users: most of the page's time).
    page = None if len(overall["rows"]) > PAGE_ROWS else await usage.usage_page(pool, tenant_id=tenant, query=query)
    cut = page is None or page["next_cursor"] is not None
    if page is None or cut:
        daily = await usage.usage_page(pool, tenant_id=tenant, query=replace(query, group_by=()))
        chart = charts.series(daily["rows"], x="bucket", values={"all": "cost_total"})
    else:
        rows = charts.fold_others(page["rows"], group=column, keep={name for name, _ in totals[:CHART_SERIES]})
        chart = charts.pivot(rows, x="bucket", group=column, value="cost_total")
    rest = totals[TABLE_ROWS:]
    return render(request, "costs.html", viewer=viewer, page="costs", group=group, groups=GROUPS,
                  month=start.strftime("%Y-%m"), chart=chart, totals=totals[:TABLE_ROWS],
                  rest=(len(rest), sum(v for _, v in rest)), total=sum(v for _, v in totals),
                  cut=cut, groups_cut=overall["next_cursor"] is not None)


@router.get("/costs.csv", include_in_schema=False)
async def costs_csv(request: Request, viewer: Viewer, now: Now) -> StreamingResponse:
    viewer.require(Scope.BILLING_READ)
    query, group, start = cost_query(request, now)
    name = f"costs-by-{group}-{start.strftime('%Y-%m')}.csv"
    return StreamingResponse(
        usage.csv_export(request.app.state.pool, tenant_id=viewer.principal.tenant_id, query=query,
                         max_rows=request.app.state.billing_settings.csv_max_rows),
        media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'})
