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
from llmops_console.routes.deps import render
from llmops_shared.apikeys import Scope
from llmops_shared.deps import Now
from llmops_shared.problems import Invalid

router = APIRouter()
GROUPS = ("model", "app", "user", "tag")
PAGE_ROWS = 1_000  # groups beyond which the chart is the daily total; (day, group) rows read for the chart
TABLE_ROWS = 100  # the largest groups listed; the others in one row
CHART_SERIES = 8  # the largest groups drawn; the others in one series


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
    """The table: the `TABLE_ROWS` groups of largest cost over the month and one row for the others (billing's
    top query: it ranks every group but sends only those). The chart: the daily cost of the table's first
    `CHART_SERIES` groups (billing reads only their days; the month is ranked once, for the table) and of the
    others; with more groups than `PAGE_ROWS`, the daily cost of all groups together instead (a month of
    10,000 users has millions of rows in the per-user daily rollup that the chart by user would read)."""
    viewer.require(Scope.BILLING_READ)
    pool, tenant = request.app.state.pool, viewer.principal.tenant_id
    query, group, start = cost_query(request, now)
    column = GROUP_COLUMNS[GroupField(group)][0][0]
    table = await usage.usage_page(pool, tenant_id=tenant, query=replace(query, granularity=None, top=TABLE_ROWS,
                                                                          limit=TABLE_ROWS))
    ranked = charts.ranked(table["rows"], group=column, value="cost_total")
    totals = [(row.label, row.value) for row in ranked]
    others = table["others"]
    rest = (others["groups"], sum(float(r["cost_total"]) for r in others["rows"]))
    groups = len(totals) + rest[0]
    cut = groups > PAGE_ROWS
    if cut:
        daily = await usage.usage_page(pool, tenant_id=tenant, query=replace(query, group_by=()))
        chart = charts.series(daily["rows"], x="bucket", values={"all": "cost_total"})
    elif groups <= CHART_SERIES:  # every group drawn: no others to sum
        page = await usage.usage_page(pool, tenant_id=tenant, query=query)
        chart = charts.pivot(page["rows"], x="bucket", group=column, value="cost_total")
    else:  # the table's first groups, by their stored values; the others per day
        only = tuple(row.stored for row in ranked[:CHART_SERIES])
        page = await usage.usage_page(pool, tenant_id=tenant, query=replace(query, only=only))
        other_days = [{**row, column: "(others)"} for row in page["others"]["rows"]]
        chart = charts.pivot(page["rows"] + other_days, x="bucket", group=column, value="cost_total")
    return render(request, "costs.html", viewer=viewer, page="costs", group=group, groups=GROUPS,
                  month=start.strftime("%Y-%m"), chart=chart, totals=totals, rest=rest,
                  total=sum(v for _, v in totals) + rest[1], cut=cut)


@router.get("/costs.csv", include_in_schema=False)
async def costs_csv(request: Request, viewer: Viewer, now: Now) -> StreamingResponse:
    viewer.require(Scope.BILLING_READ)
    query, group, start = cost_query(request, now)
    name = f"costs-by-{group}-{start.strftime('%Y-%m')}.csv"
    return StreamingResponse(
        usage.csv_export(request.app.state.pool, tenant_id=viewer.principal.tenant_id, query=query,
                         max_rows=request.app.state.billing_settings.csv_max_rows),
        media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'})
