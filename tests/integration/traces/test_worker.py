"""The span writer on the real Kafka and Postgres: rows, idempotence, metadata only, rollups, partitions,
dead letters."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from llmops_traces import histogram
from llmops_traces.store import tenant_settings
from tests.integration.traces.traces_support import NOW, RunningWriter, span_count, span_event, wait_for

pytestmark = pytest.mark.integration


async def test_every_event_becomes_one_span_row_with_its_trace_attributes(
        span_writer: RunningWriter, pg_pool: asyncpg.Pool, tenant: str) -> None:
    events = [span_event(tenant, user_id="u-1", session_id="s-1", tags=["a", "b"], latency_ms=100.0 + i,
                         time_to_first_token_ms=20.0, metadata={"guardrails": {"findings": 2,
                                                                               "by_type": {"EMAIL": 2}}})
              for i in range(10)]
    await span_writer.send(*events)
    await wait_for(lambda: _has(pg_pool, tenant, 10), what="ten spans")
    await span_writer.send(*events[:5])  # redelivered: nothing changes
    marker = span_event(tenant)
    await span_writer.send(marker)
    await wait_for(lambda: _has(pg_pool, tenant, 11), what="the marker span")
    assert await span_count(pg_pool, tenant) == 11
    row = await pg_pool.fetchrow("SELECT * FROM trace_spans WHERE tenant_id = $1 AND event_id = $2::uuid",
                                 tenant, events[0]["event_id"])
    assert row["user_id"] == "u-1" and row["session_id"] == "s-1" and row["tags"] == ["a", "b"]
    assert row["finding_count"] == 2 and row["finding_types"] == ["EMAIL"]
    assert row["text_stored"] and row["input"] is not None
    assert "guardrails" not in (row["metadata"] or "")
    hourly = await pg_pool.fetchrow("SELECT sum(requests) AS n, traces_hist_sum(latency_hist) AS h "
                                    "FROM trace_metrics_hourly WHERE tenant_id = $1", tenant)
    assert hourly["n"] == 11  # counted once each, redeliveries included
    assert sum(hourly["h"]) == 11 and len(hourly["h"]) == histogram.BUCKETS
    minute = await pg_pool.fetchval("SELECT sum(requests) FROM trace_metrics_minute WHERE tenant_id = $1", tenant)
    assert minute == 11
    day = (NOW - timedelta(minutes=10)).strftime("%Y_%m_%d")
    assert await pg_pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"trace_spans_{day}")


async def test_a_metadata_only_tenant_has_no_text_stored(span_writer: RunningWriter, pg_pool: asyncpg.Pool,
                                                         make_key: object, tenant: str) -> None:
    await make_key(tenant, ["traces:read"])  # type: ignore[operator]
    await tenant_settings.put(pg_pool, tenant_id=tenant, settings=tenant_settings.TenantSettings(metadata_only=True))
    await span_writer.send(span_event(tenant, status="error", error={"type": "timeout", "message": "user said x"}))
    await wait_for(lambda: _has(pg_pool, tenant, 1), what="the span")
    row = await pg_pool.fetchrow("SELECT * FROM trace_spans WHERE tenant_id = $1", tenant)
    assert not row["text_stored"]
    assert (row["input"], row["output"], row["metadata"], row["error_message"]) == (None, None, None, None)
    assert row["error_type"] == "timeout" and row["input_tokens"] == 20


async def test_a_bad_message_is_dead_lettered_and_the_rest_stored(span_writer: RunningWriter, pg_pool: asyncpg.Pool,
                                                                  tenant: str) -> None:
    await span_writer.send(b"{not json", span_event(tenant))
    await wait_for(lambda: _has(pg_pool, tenant, 1), what="the good span")
    dead = await pg_pool.fetchval("SELECT count(*) FROM dead_letters WHERE consumer = $1",
                                  span_writer.settings.group)
    assert dead == 1


async def test_a_row_far_from_the_clock_goes_to_the_default_partition(
        span_writer: RunningWriter, pg_pool: asyncpg.Pool, tenant: str) -> None:
    await span_writer.send(span_event(tenant, at=NOW - timedelta(days=200)))
    await wait_for(lambda: _has(pg_pool, tenant, 1), what="the old span")
    assert await pg_pool.fetchval("SELECT count(*) FROM trace_spans_default WHERE tenant_id = $1", tenant) == 1


async def _has(pool: asyncpg.Pool, tenant: str, n: int) -> bool:
    return await span_count(pool, tenant) >= n
