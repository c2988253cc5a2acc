"""One app's `/v1/metrics` series read from the per-app-and-day compaction of the hourly rollup
(`compaction`, traces/0012) answers exactly what the hourly rollup alone answers (the code before it), over
compacted and still-open days, for hour and day buckets, grouped or not, with the other filters; a late
event into a compacted day counts at once and after the next compaction; another tenant never counts; a
compaction waits for a writer of its day and includes what it wrote."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from llmops_shared.worker import Message
from llmops_traces import compaction, metrics
from llmops_traces.settings import TracesSettings
from llmops_traces.store import app_days as app_days_store
from llmops_traces.store import rollups
from llmops_traces.store import usage as usage_store
from llmops_traces.views import iso
from llmops_traces.worker import SpanWriter
from tests.integration.traces.test_metrics_rollups import MIDNIGHT, events_of
from tests.integration.traces.traces_support import NOW, bill, span_event, store_directly

pytestmark = pytest.mark.integration

AFTER = MIDNIGHT + timedelta(days=1, hours=3)
"""A compaction's "now": the first two days of `events_of` ended (MIDNIGHT - 1 d and MIDNIGHT), the third open."""


def query_of(tenant: str, start: datetime, end: datetime, granularity: str, group: str | None,
             **filters: str) -> metrics.MetricsQuery:
    params = {"from": [iso(start) or ""], "to": [iso(end) or ""], "granularity": [granularity],
              **({"group_by": [group]} if group else {}), **{k: [v] for k, v in filters.items()}}
    return metrics.parse_metrics_query(params, tenant_id=tenant, far_past=NOW - timedelta(days=90))


async def hourly_only(pool: asyncpg.Pool, query: metrics.MetricsQuery) -> dict[str, Any]:
    """The answer from the hourly rollup alone: `metrics.metrics` before the compaction."""
    rows = await rollups.series(pool, tenant_id=query.tenant_id, unit="hour", bucket_sql=metrics.BUCKET_SQL[
        query.granularity], start=query.start, end=query.end, group=query.group, filters=dict(query.filters),
        days=query.granularity == "day")
    costs = await usage_store.cost_series(pool, tenant_id=query.tenant_id, granularity=query.granularity,
                                          start=query.start, end=query.end, group=query.group,
                                          filters=dict(query.filters))
    return metrics.shape(query, rows, costs)


async def loaded(pool: asyncpg.Pool) -> tuple[str, str]:
    tenant, other = f"cmp-{uuid.uuid4().hex[:8]}", f"cmp-{uuid.uuid4().hex[:8]}"
    await store_directly(pool, events_of(tenant) + events_of(other))  # the same apps, models, hours
    await bill(pool, events_of(tenant) + events_of(other))
    return tenant, other


async def marked(pool: asyncpg.Pool, tenant: str) -> list[datetime]:
    return [r["day"] for r in await pool.fetch(
        "SELECT day FROM trace_metrics_compacted_days WHERE tenant_id = $1 ORDER BY day", tenant)]


@pytest.mark.parametrize(("granularity", "group", "filters"), [
    ("hour", None, {}),
    ("hour", "model", {}),
    ("hour", "prompt_version", {}),
    ("hour", "environment", {"model": "gpt-4o"}),
    ("day", None, {}),
    ("day", "model", {"environment": "staging"}),
    ("day", "app", {}),
])
@pytest.mark.parametrize("span", [
    (MIDNIGHT - timedelta(days=1), MIDNIGHT + timedelta(days=2)),  # two compacted days and an open one
    (MIDNIGHT - timedelta(hours=7), MIDNIGHT + timedelta(days=1, hours=5)),  # parts of days either side
])
async def test_one_apps_series_over_compacted_days_equals_the_hourly_rollup(
        pg_pool: asyncpg.Pool, granularity: str, group: str | None, filters: dict[str, str],
        span: tuple[datetime, datetime]) -> None:
    start, end = span
    tenant, other = await loaded(pg_pool)
    queries = [query_of(tenant, start, end, granularity, group, app=app, **filters) for app in ("app-1", "app-2")]
    before = [await hourly_only(pg_pool, q) for q in queries]
    assert before == [await metrics.metrics(pg_pool, q) for q in queries]  # nothing compacted yet
    done = await compaction.compact(pg_pool, now=AFTER, tenant_id=tenant)
    assert [(t, d) for t, d, _ in done] == [(tenant, MIDNIGHT - timedelta(days=1)), (tenant, MIDNIGHT)]
    assert await marked(pg_pool, tenant) == [MIDNIGHT - timedelta(days=1), MIDNIGHT]
    assert await marked(pg_pool, other) == []
    # the compacted answer is the hourly rollup's, and the other tenant's rows (same apps and hours) are not in it
    assert [await metrics.metrics(pg_pool, q) for q in queries] == before
    assert sum(p["requests"] for s in before[0]["series"] for p in s["points"]) > 0


async def test_a_late_event_into_a_compacted_day_counts_at_once_and_after_the_next_compaction(
        pg_pool: asyncpg.Pool) -> None:
    tenant, _ = await loaded(pg_pool)
    query = query_of(tenant, MIDNIGHT - timedelta(days=1), MIDNIGHT + timedelta(days=2), "hour", "model",
                     app="app-1")
    await compaction.compact(pg_pool, now=AFTER, tenant_id=tenant)
    late = span_event(tenant, at=MIDNIGHT - timedelta(hours=20, minutes=5), app_id="app-1", model="gpt-4o",
                      latency_ms=777.0, usage={"input_tokens": 5, "output_tokens": 6})
    await store_directly(pg_pool, [late], now=AFTER)
    await bill(pg_pool, [late], now=AFTER)
    assert await marked(pg_pool, tenant) == [MIDNIGHT]  # its day is read from the hourly rollup again
    expected = await hourly_only(pg_pool, query)
    hour = iso(MIDNIGHT - timedelta(hours=21))
    points = {p["bucket"]: p for s in expected["series"] if s["group"] == "gpt-4o" for p in s["points"]}
    assert points[hour]["requests"] >= 1 and points[hour]["input_tokens"] >= 5
    assert await metrics.metrics(pg_pool, query) == expected
    assert [d for _, d, _ in await compaction.compact(pg_pool, now=AFTER, tenant_id=tenant)] == [
        MIDNIGHT - timedelta(days=1)]
    assert await marked(pg_pool, tenant) == [MIDNIGHT - timedelta(days=1), MIDNIGHT]
    assert await metrics.metrics(pg_pool, query) == expected


async def test_a_compaction_waits_for_a_writer_of_its_day_and_includes_what_it_wrote(pg_pool: asyncpg.Pool) -> None:
    tenant, _ = await loaded(pg_pool)
    day = MIDNIGHT - timedelta(days=1)
    query = query_of(tenant, day, MIDNIGHT + timedelta(days=2), "hour", None, app="app-3")
    late = span_event(tenant, at=day + timedelta(hours=2, minutes=1), app_id="app-3", latency_ms=5.0)
    writer = SpanWriter(TracesSettings(), clock=lambda: AFTER)
    message = Message("t", 0, 0, None, orjson.dumps(late), 0)
    async with pg_pool.acquire() as writing, pg_pool.acquire() as compacting:
        async with writing.transaction():
            await writer.write(writing, [(message, writer.decode(message))])
            pid = compacting.get_server_pid()
            task = asyncio.create_task(app_days_store.compact_day(compacting, tenant_id=tenant, day=day))
            for _ in range(200):  # until the compaction waits for the writer's lock
                if await pg_pool.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                                          pid):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the compaction did not wait for the writer")
            assert not task.done()
        await task
    assert await marked(pg_pool, tenant) == [day]
    answer = await metrics.metrics(pg_pool, query)
    assert answer == await hourly_only(pg_pool, query)
    hour = {p["bucket"]: p for s in answer["series"] for p in s["points"]}[iso(day + timedelta(hours=2))]
    assert hour["requests"] == 1 + sum(1 for e in events_of(tenant) if e["app_id"] == "app-3"
                                      and e["occurred_at"].startswith(iso(day + timedelta(hours=2))[:13]))
