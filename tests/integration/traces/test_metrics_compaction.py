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


def dense_hours(tenant: str) -> list[dict[str, Any]]:
    """Many spans an hour of one app over two compacted days and the open one: several models, environments
    and prompt versions in the same hour (so a group sums several entries, their histograms overlapping),
    latencies spread over many buckets, some without latency or TTFT, errors."""
    events = []
    for i in range(540):
        latency = None if i % 11 == 0 else 3.0 * (1 + (i * 7919) % 4000)
        events.append(span_event(
            tenant, at=MIDNIGHT - timedelta(days=1) + timedelta(minutes=7 * i + i % 5), app_id="app-d",
            model=("gpt-4o", "gpt-4o-mini", None, "gpt-4o")[i % 4],
            environment=("production", "staging", "production")[i % 3],
            prompt={"name": "support", "version": ("1", "2")[i % 2]} if i % 6 else None, latency_ms=latency,
            time_to_first_token_ms=None if latency is None or i % 3 == 0 else latency * (1 + i % 9) / 10,
            status="error" if i % 13 == 0 else "ok", error={"type": "t", "message": "m"} if i % 13 == 0 else None,
            usage={"input_tokens": 10 + i, "output_tokens": i % 17}))
    return events


@pytest.mark.parametrize(("granularity", "group", "filters"), [
    ("hour", None, {}),
    ("hour", "model", {}),
    ("hour", "environment", {}),
    ("hour", "prompt_version", {"environment": "production"}),
    ("day", "model", {}),
    ("day", None, {"model": "gpt-4o"}),
])
async def test_a_busy_apps_series_from_its_compacted_days_equals_the_hourly_rollup_also_after_a_late_event(
        pg_pool: asyncpg.Pool, granularity: str, group: str | None, filters: dict[str, str]) -> None:
    tenant = f"cmp-{uuid.uuid4().hex[:8]}"
    events = dense_hours(tenant)
    await store_directly(pg_pool, events)
    await bill(pg_pool, events)
    query = query_of(tenant, MIDNIGHT - timedelta(days=1, hours=-1), MIDNIGHT + timedelta(days=2), granularity,
                     group, app="app-d", **filters)
    before = await hourly_only(pg_pool, query)
    await compaction.compact(pg_pool, now=AFTER, tenant_id=tenant)
    assert await marked(pg_pool, tenant) == [MIDNIGHT - timedelta(days=1), MIDNIGHT]
    assert await metrics.metrics(pg_pool, query) == before
    points = [p for s in before["series"] for p in s["points"]]
    assert max(p["requests"] for p in points) >= 3
    assert len({p["latency_p95_ms"] for p in points}) > (10 if granularity == "hour" else 1)
    late = span_event(tenant, at=MIDNIGHT + timedelta(hours=5, minutes=1), app_id="app-d", model="gpt-4o",
                      environment="production", prompt={"name": "support", "version": "2"}, latency_ms=90_000.0,
                      time_to_first_token_ms=0.5)
    await store_directly(pg_pool, [late], now=AFTER)
    await bill(pg_pool, [late], now=AFTER)
    after = await hourly_only(pg_pool, query)
    assert after != before
    assert await metrics.metrics(pg_pool, query) == after  # the late day from the hourly rollup
    await compaction.compact(pg_pool, now=AFTER, tenant_id=tenant)
    assert await metrics.metrics(pg_pool, query) == after  # and from its new compaction
