"""`trace_summaries` (a row per trace and UTC day, kept by the writer) always equals the same aggregation
over the spans (the view `trace_summaries_of_spans`): after batches in any order, a redelivered batch, an
erasure of a trace or of a user, and retention. The trace list it serves answers as the span aggregation
did; `trace_metrics_tenant_hourly` equals the app-level hourly rollup summed per environment and model, and
its twins per day and per hour equal it summed."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from llmops_shared import db, migrations
from llmops_shared.settings import CommonSettings
from llmops_traces import explorer, retention
from llmops_traces.query import parse_list_query
from llmops_traces.settings import TracesSettings
from llmops_traces.store import reads
from tests.integration.traces.traces_support import NOW, agent_trace, bill, span_event, store_directly

pytestmark = pytest.mark.integration

COLUMNS = ("tenant_id, day, trace_id, first_at, last_at, ended_at, span_count, error_count, finding_count, "
           "input_tokens, output_tokens, root_is_root, root_at, root_span_id, root_name, app_id, environment, "
           "user_id, session_id, tags")


async def kept(pool: asyncpg.Pool, tenant: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(f"SELECT {COLUMNS} FROM trace_summaries WHERE tenant_id = $1 "  # noqa: S608
                            "ORDER BY trace_id, day", tenant)
    return [dict(r) for r in rows]


async def aggregated(pool: asyncpg.Pool, tenant: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(f"SELECT {COLUMNS} FROM trace_summaries_of_spans WHERE tenant_id = $1 "  # noqa: S608
                            "ORDER BY trace_id, day", tenant)
    return [dict(r) for r in rows]


def mixed_trace(tenant: str, trace: str) -> list[dict[str, Any]]:
    """One trace over midnight (two UTC days), its root last, users, sessions and tags that differ per span
    (upper and lower case), an error, findings, spans without latency."""
    midnight = NOW.replace(hour=0) + timedelta(days=-0)
    base = dict(trace_id=trace, app_id="app-x")
    return [
        span_event(tenant, at=midnight - timedelta(minutes=5), span_id="b-child", parent_span_id="root",
                   user_id="Zed", session_id="s-1", tags=["b", "A"], latency_ms=400_000.0, name="child b", **base,
                   usage={"input_tokens": 10, "output_tokens": 3}),
        span_event(tenant, at=midnight + timedelta(minutes=1), span_id="a-child", parent_span_id="root",
                   user_id="alice", session_id=None, tags=["c"], latency_ms=None, name="child a", status="error",
                   error={"type": "timeout", "message": "slow"}, **base),
        span_event(tenant, at=midnight + timedelta(minutes=2), span_id="c-child", parent_span_id="a-child",
                   user_id=None, tags=[], name="grandchild", app_id="app-other", trace_id=trace,
                   metadata={"guardrails": {"findings": 2, "by_type": {"EMAIL": 2}}}),
        span_event(tenant, at=midnight - timedelta(minutes=6), span_id="root", parent_span_id=None,
                   user_id="bob", tags=["A"], latency_ms=1_000.0, name="the root", **base),
    ]


async def test_summaries_equal_the_spans_aggregated_whatever_the_batches(pg_pool: asyncpg.Pool) -> None:
    tenant = f"sum-{uuid.uuid4().hex[:8]}"
    trace = f"tr-{uuid.uuid4().hex[:8]}"
    spans = mixed_trace(tenant, trace)
    agent = agent_trace(tenant, at=NOW - timedelta(hours=1))
    # Children first, the root in a later batch, one span twice in a batch, then the first batch redelivered.
    await store_directly(pg_pool, [spans[1], spans[0], spans[1]])
    await store_directly(pg_pool, agent[2:])
    assert await kept(pg_pool, tenant) == await aggregated(pg_pool, tenant)
    await store_directly(pg_pool, [spans[2], spans[3], *agent[:2]])
    await store_directly(pg_pool, [spans[1], spans[0]])  # redelivered: nothing inserted, nothing added
    await store_directly(pg_pool, spans + agent)
    rows = await kept(pg_pool, tenant)
    assert rows == await aggregated(pg_pool, tenant)
    mine = [r for r in rows if r["trace_id"] == trace]
    assert [(r["day"].date(), r["span_count"], r["root_name"], r["user_id"], r["tags"]) for r in mine] == [
        ((NOW - timedelta(days=1)).date(), 2, "the root", "bob", ["A", "b"]),
        (NOW.date(), 2, "child a", "alice", ["c"])]
    assert [(r["error_count"], r["finding_count"], r["session_id"]) for r in mine] == [(0, 0, "s-1"), (1, 2, None)]
    assert sum(r["span_count"] for r in rows) == await pg_pool.fetchval(
        "SELECT count(*) FROM trace_spans WHERE tenant_id = $1", tenant) == 9


async def test_summaries_follow_an_erasure_of_a_trace_or_a_user(pg_pool: asyncpg.Pool) -> None:
    tenant = f"sum-{uuid.uuid4().hex[:8]}"
    trace = f"tr-{uuid.uuid4().hex[:8]}"
    agent = agent_trace(tenant, at=NOW - timedelta(hours=1), user="carol")
    await store_directly(pg_pool, [*mixed_trace(tenant, trace), *agent])
    await explorer.erase(pg_pool, tenant_id=tenant, kind="user", subject="bob", now=NOW)  # the root of `trace`
    after_user = await kept(pg_pool, tenant)
    assert after_user == await aggregated(pg_pool, tenant)
    assert next((r["root_name"], r["span_count"], r["user_id"]) for r in after_user if r["trace_id"] == trace) == (
        "child b", 1, "Zed")
    await explorer.erase(pg_pool, tenant_id=tenant, kind="trace", subject=agent[0]["trace_id"], now=NOW)
    assert await kept(pg_pool, tenant) == await aggregated(pg_pool, tenant)
    assert {r["trace_id"] for r in await kept(pg_pool, tenant)} == {trace}
    await explorer.erase(pg_pool, tenant_id=tenant, kind="user", subject="carol", now=NOW)  # no span left: no-op
    await store_directly(pg_pool, agent)  # redelivered after the erasure: not stored again, not summed
    assert await kept(pg_pool, tenant) == await aggregated(pg_pool, tenant)
    assert {r["trace_id"] for r in await kept(pg_pool, tenant)} == {trace}


async def test_summaries_go_with_their_spans_at_retention(stack: CommonSettings) -> None:
    url = db.with_database(stack.database_url, f"llmops_traces_sum_{uuid.uuid4().hex[:8]}")
    await db.ensure_database(url)
    await migrations.migrate(url)
    pool = await db.create_pool(url, max_size=3)
    try:
        writer_now = datetime(2026, 10, 1, tzinfo=UTC)
        await pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ('acme', 'acme')")
        events = []
        for days_ago in (1, 20, 31, 40):  # 40: outside the writer's window, the default partitions
            at = writer_now - timedelta(days=days_ago, hours=-1)
            # a trace of two spans on two days: 23:30 the day before and 00:30
            trace = f"tr-{days_ago}"
            events += [span_event("acme", at=at - timedelta(hours=1, minutes=30), trace_id=trace, span_id="r",
                                  parent_span_id=None),
                       span_event("acme", at=at - timedelta(minutes=30), trace_id=trace, span_id="c",
                                  parent_span_id="r")]
        await store_directly(pool, events, now=writer_now)
        assert await kept(pool, "acme") == await aggregated(pool, "acme")
        assert await pool.fetchval("SELECT count(*) FROM trace_summaries_default") == 2
        settings = TracesSettings(**stack.model_dump(), retention_days=30, retention_max_days=60)
        outcomes = await retention.run(pool, settings, now=writer_now)
        assert [(o.target, o.rows) for o in outcomes if o.table == "trace_summaries"] == [
            ("trace_summaries_2026_08_30", 0), ("trace_summaries_2026_08_31", 0), ("trace_summaries_default", 2)]
        left = await kept(pool, "acme")
        assert left == await aggregated(pool, "acme")
        assert [(r["trace_id"], r["day"].date().isoformat()) for r in left] == [
            ("tr-1", "2026-09-29"), ("tr-1", "2026-09-30"), ("tr-20", "2026-09-10"), ("tr-20", "2026-09-11")]
    finally:
        await pool.close()
        await db.drop_database(url)


async def test_a_trace_list_from_the_summaries_answers_as_the_span_aggregation(pg_pool: asyncpg.Pool) -> None:
    tenant = f"sum-{uuid.uuid4().hex[:8]}"
    traces = [agent_trace(tenant, at=NOW - timedelta(hours=h), user=f"u-{h % 2}", app=f"app-{h % 3}")
              for h in range(1, 7)]
    singles = [span_event(tenant, at=NOW - timedelta(minutes=30 + i), app_id="app-1", user_id="u-1",
                          tags=["vip"] if i % 2 else [], status="error" if i == 1 else "ok",
                          error={"type": "t", "message": "m"} if i == 1 else None) for i in range(4)]
    everything = [s for t in traces for s in t] + singles + mixed_trace(tenant, "tr-over-midnight")
    await store_directly(pg_pool, everything)
    await bill(pg_pool, everything)
    day = {"from": [(NOW - timedelta(hours=12)).isoformat()], "to": [NOW.isoformat()]}
    two_days = {"from": [(NOW - timedelta(days=2)).isoformat()], "to": [NOW.isoformat()]}
    for extra in ({**two_days}, {**two_days, "order": ["asc"]}, {**two_days, "limit": ["9"]},
                  {**two_days, "order": ["asc"], "limit": ["1"]}, {**two_days, "user": ["alice"]},
                  {}, {"order": ["asc"]}, {"limit": ["2"]}, {"order": ["asc"], "limit": ["2"]},
                  {"app": ["app-1"]}, {"user": ["u-0"]}, {"status": ["error"]}, {"tag": ["vip"]},
                  {"has_findings": ["true"]}, {"sort": ["latency"]}, {"order": ["asc"], "limit": ["3"]},
                  {"app": ["app-1", "app-2"], "sort": ["latency"], "order": ["asc"]}, {"sort": ["cost"]},
                  {"sort": ["cost"], "limit": ["2"]}, {"app": ["app-1"], "sort": ["cost"], "order": ["asc"]}):
        query = parse_list_query("traces", {**day, **extra}, tenant_id=tenant, sorts=("time", "latency", "cost"),
                                 visible_from=NOW - timedelta(days=30), max_days=31, search_max_hours=72,
                                 max_limit=100)
        assert reads.summarised(query)
        from_summaries = await page_of(reads.summary_trace_page, pg_pool, query)
        from_spans = await page_of(reads.trace_page, pg_pool, query)
        assert from_summaries == from_spans, extra
        assert from_summaries, extra
        if len(from_spans) > query.limit:  # the next page, through the cursor's keyset, too
            last = from_spans[query.limit - 1]
            column = {"time": "started_at", "latency": "duration_ms", "cost": "cost_total"}[query.sort]
            after = replace(query, after=(last[column], last["trace_id"]))
            assert await page_of(reads.summary_trace_page, pg_pool, after) == await page_of(
                reads.trace_page, pg_pool, after), extra


async def page_of(read: Any, pool: asyncpg.Pool, query: Any) -> list[dict[str, Any]]:
    rows = [dict(r) for r in await read(pool, query)]
    for row in rows:
        row["event_ids"] = sorted(row["event_ids"])  # the same spans, in no particular order
    return rows


def test_only_what_the_summaries_hold_is_read_from_them() -> None:
    def query(**params: str) -> Any:
        return parse_list_query("traces", {"from": ["2026-11-24T00:00:00Z"], "to": ["2026-11-24T12:00:00Z"],
                                           **{k: [v] for k, v in params.items()}},
                                tenant_id="t", sorts=("time", "latency", "cost"), visible_from=NOW - timedelta(days=30),
                                max_days=31, search_max_hours=72, max_limit=100)

    assert reads.summarised(query(app="a", user="u", status="error", has_findings="true", sort="latency"))
    assert reads.summarised(query(sort="cost"))
    assert not reads.summarised(query(model="gpt-4o"))
    assert not reads.summarised(query(has_findings="false"))
    assert not reads.summarised(query(latency_min="100"))


async def test_the_tenant_hourly_rollup_equals_the_app_rollup_summed(pg_pool: asyncpg.Pool) -> None:
    tenant = f"sum-{uuid.uuid4().hex[:8]}"
    events = [span_event(tenant, at=NOW - timedelta(minutes=37 * i), app_id=f"app-{i % 3}",  # over two days
                         model=("gpt-4o", "gpt-4o-mini", None)[i % 3], environment=("production", "staging")[i % 2],
                         prompt={"name": f"p-{i % 4}", "version": "1"}, latency_ms=50.0 * (i + 1),
                         time_to_first_token_ms=10.0 * (i + 1) if i % 2 else None) for i in range(40)]
    await store_directly(pg_pool, events[:25])
    await store_directly(pg_pool, events[20:])  # five redelivered
    coarse = await pg_pool.fetch(
        "SELECT bucket, environment, model, requests, errors, input_tokens, output_tokens, latency_count, "
        "latency_sum_ms, latency_hist, ttft_count, ttft_hist FROM trace_metrics_tenant_hourly WHERE tenant_id = $1 "
        "ORDER BY 1, 2, 3", tenant)
    summed = await pg_pool.fetch(
        "SELECT bucket, environment, model, sum(requests) AS requests, sum(errors) AS errors, "
        "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(latency_count) AS latency_count, "
        "sum(latency_sum_ms) AS latency_sum_ms, traces_hist_sum(latency_hist) AS latency_hist, "
        "sum(ttft_count) AS ttft_count, traces_hist_sum(ttft_hist) AS ttft_hist FROM trace_metrics_hourly "
        "WHERE tenant_id = $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", tenant)
    assert [tuple(r) for r in coarse] == [tuple(r) for r in summed]
    assert sum(r["requests"] for r in coarse) == 40
    # Its coarser twins (migration traces/0007): per UTC day, environment and model; per hour.
    for table, key in (("trace_metrics_tenant_daily",
                        ("date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'", "environment", "model")),
                       ("trace_metrics_tenant_hour_totals", ("bucket",))):
        columns = ("bucket", "environment", "model")[:len(key)]
        twin = await pg_pool.fetch(
            f"SELECT {', '.join(columns)}, requests, errors, input_tokens, output_tokens, latency_count, "  # noqa: S608
            f"latency_sum_ms, latency_hist, ttft_count, ttft_hist FROM {table} WHERE tenant_id = $1 ORDER BY "
            f"{', '.join(columns)}", tenant)
        groups = ", ".join(str(i) for i in range(1, len(key) + 1))
        resummed = await pg_pool.fetch(
            f"SELECT {', '.join(f'{e} AS {c}' for e, c in zip(key, columns, strict=True))}, "  # noqa: S608
            "sum(requests) AS requests, sum(errors) AS errors, sum(input_tokens) AS input_tokens, "
            "sum(output_tokens) AS output_tokens, sum(latency_count) AS latency_count, "
            "sum(latency_sum_ms) AS latency_sum_ms, traces_hist_sum(latency_hist) AS latency_hist, "
            "sum(ttft_count) AS ttft_count, traces_hist_sum(ttft_hist) AS ttft_hist "
            f"FROM trace_metrics_tenant_hourly WHERE tenant_id = $1 GROUP BY {groups} ORDER BY {groups}", tenant)
        assert [tuple(r) for r in twin] == [tuple(r) for r in resummed], table
        assert len({r["bucket"] for r in twin}) > 1, table


async def test_the_api_plans_every_statement_for_its_parameters(stack: CommonSettings) -> None:
    """A generic plan of a prepared list query knows neither its range nor its app or user: it reads every
    day partition (seconds at volume). The API's connections plan each execution for its values."""
    from llmops_traces.api import create_app

    app = create_app(TracesSettings(**stack.model_dump()))
    async with app.router.lifespan_context(app), app.state.pool.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"


async def test_the_console_plans_them_for_their_parameters_too(stack: CommonSettings) -> None:
    """The console reads trace lists through the same functions, on a pool of its own."""
    from llmops_console.api import create_app
    from llmops_console.settings import ConsoleSettings

    app = create_app(ConsoleSettings(**stack.model_dump()))
    async with app.router.lifespan_context(app), app.state.pool.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
