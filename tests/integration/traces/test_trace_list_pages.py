"""The trace list's cheaper plans answer exactly as the span aggregation (`reads.trace_page`) does, page after
page through the cursor, over a few thousand traces: filtered by errors (a walk in time order that stops
after the page, or, when errors are rare, every matching trace through a partial index), and an app's traces
sorted by cost (ties and traces without a cost included)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from llmops_traces.query import ListQuery, parse_list_query
from llmops_traces.store import reads
from tests.integration.traces.test_summaries import page_of
from tests.integration.traces.traces_support import NOW, bill, span_event, store_directly

pytestmark = pytest.mark.integration

MIDNIGHT = NOW.replace(hour=0)


def query_of(tenant: str, **params: str) -> ListQuery:
    values = {"from": [(NOW - timedelta(days=2)).isoformat()], "to": [NOW.isoformat()],
              **{k: [v] for k, v in params.items()}}
    query = parse_list_query("traces", values, tenant_id=tenant, sorts=("time", "latency", "cost"),
                             visible_from=NOW - timedelta(days=30), max_days=31, search_max_hours=72, max_limit=100)
    assert reads.summarised(query)
    return query


async def every_page_equal(pool: asyncpg.Pool, query: ListQuery) -> int:
    """Walks every page of `query` through the cursor's keyset, each from the summaries equal to the span
    aggregation's; returns the traces listed."""
    column = {"time": "started_at", "latency": "duration_ms", "cost": "cost_total"}[query.sort]
    seen = 0
    while True:
        from_spans = await page_of(reads.trace_page, pool, query)
        assert await page_of(reads.summary_trace_page, pool, query) == from_spans, (query.filters, query.after)
        seen += min(len(from_spans), query.limit)
        if len(from_spans) <= query.limit:
            return seen
        last = from_spans[query.limit - 1]
        key = -1 if last[column] is None else last[column]
        query = replace(query, after=(key, last["trace_id"]))


def errors_tenant(tenant: str, *, traces: int, error_every: int) -> list[dict[str, Any]]:
    """`traces` one-span traces over the last 30 hours (some at the same instant: ties broken by trace id),
    one in `error_every` failed; and 20 traces over midnight whose error is in their second day only (their
    first row, the sort key, does not match the filter)."""
    events = []
    for i in range(traces):
        failed = i % error_every == 0
        events.append(span_event(tenant, at=NOW - timedelta(minutes=(i // 2) * 3 + 1), trace_id=f"t-{i:05d}",
                                 span_id="root", parent_span_id=None, status="error" if failed else "ok",
                                 error={"type": "t", "message": "m"} if failed else None))
    for i in range(20):
        trace = f"m-{i:02d}"
        events.append(span_event(tenant, at=MIDNIGHT - timedelta(minutes=10 + 40 * i), trace_id=trace,
                                 span_id="root", parent_span_id=None))
        events.append(span_event(tenant, at=MIDNIGHT + timedelta(minutes=5 + i), trace_id=trace, span_id="child",
                                 parent_span_id="root", status="error", error={"type": "t", "message": "m"}))
    return events


async def test_errors_listed_by_time_answer_as_the_span_aggregation(pg_pool: asyncpg.Pool) -> None:
    tenant = f"walk-{uuid.uuid4().hex[:8]}"
    await store_directly(pg_pool, errors_tenant(tenant, traces=1_500, error_every=7))
    expected = 1_500 // 7 + 1 + 20
    for params in ({"status": "error", "limit": "40"}, {"status": "error", "limit": "40", "order": "asc"},
                   {"status": "error", "limit": "7"}, {"status": "ok", "limit": "100"},
                   {"status": "error", "has_findings": "true"}):
        listed = await every_page_equal(pg_pool, query_of(tenant, **params))
        if params.get("status") == "error" and "has_findings" not in params:
            assert listed == expected, params


async def test_rare_errors_listed_by_time_answer_as_the_span_aggregation(pg_pool: asyncpg.Pool) -> None:
    tenant = f"rare-{uuid.uuid4().hex[:8]}"
    await store_directly(pg_pool, errors_tenant(tenant, traces=1_000, error_every=400))
    for params in ({"status": "error", "limit": "2"}, {"status": "error", "limit": "2", "order": "asc"},
                   {"status": "error"}):
        assert await every_page_equal(pg_pool, query_of(tenant, **params)) == 3 + 20, params


class RowsRead:
    """A connection that runs each statement under EXPLAIN ANALYZE and counts the `trace_summaries` rows its
    scans read (kept, or removed by a filter), over every loop."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn, self.rows = conn, 0

    def _count(self, node: dict[str, Any]) -> None:
        if node.get("Relation Name", "").startswith("trace_summaries"):
            self.rows += (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
        for child in node.get("Plans", []):
            self._count(child)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        plan = orjson.loads(await self.conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args))
        self._count(plan[0]["Plan"])
        return await self.conn.fetch(sql, *args)


async def summary_rows_read(pool: asyncpg.Pool, query: ListQuery) -> int:
    async with pool.acquire() as conn:
        # As the API's pool (`api.SERVER_SETTINGS`); and no sequential scan: with a few thousand rows a partition
        # may be read whole where, at volume (~80,000 rows a day), its indexes are used.
        await conn.execute("SET plan_cache_mode = force_custom_plan; SET enable_seqscan = off")
        try:
            counting = RowsRead(conn)
            await reads.summary_trace_page(counting, query)  # type: ignore[arg-type]
            return counting.rows
        finally:
            await conn.execute("RESET plan_cache_mode; RESET enable_seqscan")


async def test_a_page_of_errors_reads_about_a_page_of_summary_rows(pg_pool: asyncpg.Pool) -> None:
    tenant = f"read-{uuid.uuid4().hex[:8]}"
    await store_directly(pg_pool, errors_tenant(tenant, traces=3_000, error_every=3))
    await pg_pool.execute("ANALYZE trace_summaries")  # the planner knows the partitions' sizes, as at volume
    query = query_of(tenant, status="error", limit="10")
    assert len(await reads.summary_trace_page(pg_pool, query)) == 11
    # ~1,000 traces have an error; the page's 11 are among the ~33 newest rows, and the walk reads at most
    # WALK_ROWS_PER_TRACE rows per trace of the page (the old plan read every matching trace, and more).
    assert await summary_rows_read(pg_pool, query) < 400


def costs_tenant(tenant: str) -> list[dict[str, Any]]:
    """1,200 traces of app-c and 300 of app-d over the last 30 hours, one or two spans each: token counts from
    a few values (many traces cost the same: ties, broken by trace id), one trace in five never billed and
    one in seven on a model without a price (no cost: sorted as -1), some over midnight."""
    events = []
    for i in range(1_500):
        trace, app = f"c-{i:05d}", "app-c" if i < 1_200 else "app-d"
        at = MIDNIGHT - timedelta(minutes=2) if i % 50 == 0 else NOW - timedelta(minutes=i + 1)
        model = "no-such-model" if i % 7 == 0 else "gpt-4o-mini"
        events.append(span_event(tenant, at=at, trace_id=trace, span_id="root", parent_span_id=None, app_id=app,
                                 model=model, usage={"input_tokens": 100 * (i % 4), "output_tokens": 10 * (i % 3)}))
        if i % 3 == 0:
            later = timedelta(minutes=5) if i % 50 == 0 else timedelta(seconds=30)  # over midnight, or not
            events.append(span_event(tenant, at=at + later, trace_id=trace, span_id="child",
                                     parent_span_id="root", app_id=app, model=model,
                                     usage={"input_tokens": 50, "output_tokens": 5}))
    return events


async def test_traces_sorted_by_cost_answer_as_the_span_aggregation(pg_pool: asyncpg.Pool) -> None:
    tenant = f"cost-{uuid.uuid4().hex[:8]}"
    events = costs_tenant(tenant)
    await store_directly(pg_pool, events)
    await bill(pg_pool, [e for e in events if int(e["trace_id"][2:]) % 5 != 0])
    cheapest = await reads.trace_page(pg_pool, query_of(tenant, sort="cost", order="asc", limit="100"))
    assert cheapest[0]["cost_total"] is None  # traces without a cost come first, as -1
    dearest = [r["cost_total"] for r in await reads.trace_page(pg_pool, query_of(tenant, sort="cost", limit="100"))]
    assert None not in dearest and len(set(dearest)) < len(dearest)  # ties
    for params in ({"app": "app-c", "sort": "cost", "limit": "60"},
                   {"app": "app-c", "sort": "cost", "limit": "60", "order": "asc"},
                   {"sort": "cost", "limit": "100"}, {"app": "app-d", "sort": "cost", "status": "ok", "limit": "7"}):
        listed = await every_page_equal(pg_pool, query_of(tenant, **params))
        assert listed == {"app-c": 1_200, "app-d": 300}.get(params.get("app", ""), 1_500), params


async def test_a_page_by_cost_sums_the_summaries_of_its_traces_only(pg_pool: asyncpg.Pool) -> None:
    tenant = f"cost-{uuid.uuid4().hex[:8]}"
    events = costs_tenant(tenant)
    await store_directly(pg_pool, events)
    await bill(pg_pool, events)
    await pg_pool.execute("ANALYZE trace_summaries")
    # app-c has 1,200 traces (1,224 summary rows): each one's cost is read, but only the page's 11 traces' rows
    # are read again and summed (the old plan summed every matching trace's rows before the cut: ~2,450 read).
    assert await summary_rows_read(pg_pool, query_of(tenant, app="app-c", sort="cost", limit="10")) < 1_400


async def test_the_cost_of_each_trace_is_read_from_an_index_alone(pg_pool: asyncpg.Pool) -> None:
    tenant = f"cost-{uuid.uuid4().hex[:8]}"
    events = costs_tenant(tenant)[:300]
    await store_directly(pg_pool, events)
    await bill(pg_pool, events)
    await pg_pool.execute("VACUUM ANALYZE usage_trace_costs")  # its pages all-visible, as most are at volume
    plans: list[str] = []

    class Explained:
        async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
            plans.append("\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args)))
            return await conn.fetch(sql, *args)

    async with pg_pool.acquire() as conn:
        await reads.summary_trace_page(Explained(), query_of(tenant, app="app-c", sort="cost"))  # type: ignore[arg-type]
    assert "Index Only Scan using usage_trace_costs_pkey" in plans[-1], plans[-1]  # billing/0016: the key covers it
