"""The request-metrics rollups (minute, hour by app; hour, day and hour totals by tenant) always equal the
same sums computed by brute force over the stored spans: after batches that touch the same rows again, a
redelivered batch, and two writers adding to a row neither had seen (the `ON CONFLICT` path of the sparse
upsert)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from llmops_traces import histogram
from llmops_traces.spans import rollups, span_row
from llmops_traces.store import rollups as rollup_store
from tests.integration.traces.traces_support import NOW, span_event, store_directly

pytestmark = pytest.mark.integration

MEASURES = ("requests", "errors", "input_tokens", "output_tokens", "latency_count", "latency_sum_ms", "latency_hist",
            "ttft_count", "ttft_hist")


def _truncate(at: datetime, unit: str) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=0, second=0, microsecond=0) if unit == "hour" else at.replace(second=0, microsecond=0)


async def brute_force(pool: asyncpg.Pool, tenant: str) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Each rollup table's rows as summed here from the tenant's spans, one span at a time."""
    spans = await pool.fetch("SELECT * FROM trace_spans WHERE tenant_id = $1", tenant)
    out: dict[str, dict[tuple[Any, ...], Any]] = {}
    keys: dict[str, Callable[[asyncpg.Record], tuple[Any, ...]]] = {
        "trace_metrics_minute": lambda s: (tenant, _truncate(s["occurred_at"], "minute"), s["app_id"],
                                           s["environment"], s["model"] or "", s["prompt_name"] or "",
                                           s["prompt_version"] or ""),
        "trace_metrics_hourly": lambda s: (tenant, _truncate(s["occurred_at"], "hour"), s["app_id"],
                                           s["environment"], s["model"] or "", s["prompt_name"] or "",
                                           s["prompt_version"] or ""),
        "trace_metrics_tenant_hourly": lambda s: (tenant, _truncate(s["occurred_at"], "hour"), s["environment"],
                                                  s["model"] or ""),
        "trace_metrics_tenant_daily": lambda s: (tenant, _truncate(s["occurred_at"], "hour").replace(hour=0),
                                                 s["environment"], s["model"] or ""),
        "trace_metrics_tenant_hour_totals": lambda s: (tenant, _truncate(s["occurred_at"], "hour")),
    }
    for table, key_of in keys.items():
        sums: dict[tuple[Any, ...], list[Any]] = defaultdict(
            lambda: [0, 0, 0, 0, 0, 0.0, [0] * histogram.BUCKETS, 0, [0] * histogram.BUCKETS])
        for s in spans:
            key = key_of(s)
            row = sums[key]
            row[0] += 1
            row[1] += s["status"] == "error"
            row[2] += s["input_tokens"]
            row[3] += s["output_tokens"]
            if s["latency_ms"] is not None:
                row[4] += 1
                row[5] += s["latency_ms"]
                row[6][histogram.bucket_of(s["latency_ms"])] += 1
            if s["ttft_ms"] is not None:
                row[7] += 1
                row[8][histogram.bucket_of(s["ttft_ms"])] += 1
        out[table] = {k: tuple(v) for k, v in sums.items()}
    return out


async def stored(pool: asyncpg.Pool, tenant: str) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    out = {}
    for table, keys in rollup_store.KEYS.items():
        rows = await pool.fetch(f"SELECT * FROM {table} WHERE tenant_id = $1", tenant)  # noqa: S608
        out[table] = {tuple(r[k] for k in keys): tuple(r[m] for m in MEASURES) for r in rows}
    return out


def events(tenant: str, n: int, *, start: datetime) -> list[dict[str, Any]]:
    """Spans over a few minutes and two hours, several apps, models and prompts; latencies in halves of a
    millisecond (their sums are exact in any order), some without latency or TTFT, some errors."""
    out = []
    for i in range(n):
        llm = i % 4 != 0
        out.append(span_event(
            tenant, at=start + timedelta(seconds=37 * i), trace_id=f"tr-{i // 4}", span_id=f"sp-{i}",
            app_id=f"app-{i % 3}", environment=("production", "staging")[i % 5 == 0],
            model=("gpt-4o", "gpt-4o-mini")[i % 2] if llm else None, provider="openai" if llm else None,
            prompt={"name": f"p-{i % 2}", "version": str(i % 3)} if llm else None,
            latency_ms=None if i % 7 == 0 else 0.5 * ((i * 7919) % 20_000),
            time_to_first_token_ms=0.5 * (i % 40) if llm and i % 7 else None,
            usage={"input_tokens": 10 + i, "output_tokens": i % 9} if llm else None,
            status="error" if i % 11 == 0 else "ok", error={"type": "t", "message": "m"} if i % 11 == 0 else None))
    return out


async def test_rollups_equal_the_spans_summed_whatever_the_batches(pg_pool: asyncpg.Pool) -> None:
    tenant = f"roll-{uuid.uuid4().hex[:8]}"
    sent = events(tenant, 300, start=NOW - timedelta(hours=2, minutes=3))
    await store_directly(pg_pool, sent[:120])
    await store_directly(pg_pool, sent[100:220])  # overlaps: 20 redelivered, the rest add to existing rows
    await store_directly(pg_pool, sent[:50] + sent[220:])  # the first 50 again, with the last ones
    await store_directly(pg_pool, sent[::-1])  # everything again, backwards: nothing added
    assert await pg_pool.fetchval("SELECT count(*) FROM trace_spans WHERE tenant_id = $1", tenant) == 300
    kept, expected = await stored(pg_pool, tenant), await brute_force(pg_pool, tenant)
    assert kept == expected
    assert sum(r[0] for r in kept["trace_metrics_hourly"].values()) == 300
    assert len(kept["trace_metrics_minute"]) > len(kept["trace_metrics_hourly"]) > len(
        kept["trace_metrics_tenant_hourly"]) > 2


async def test_two_writers_adding_to_a_new_row_both_count(pg_pool: asyncpg.Pool) -> None:
    """The second writer's statement does not see the row the first inserted (not committed yet when it
    started): its insert waits on the first's, then adds on conflict."""
    from llmops_shared.contract import Interaction

    tenant = f"roll-{uuid.uuid4().hex[:8]}"
    sent = events(tenant, 40, start=NOW - timedelta(minutes=30))
    rows = [span_row(Interaction.model_validate(e), metadata_only=False) for e in sent]
    first, second = rollups(rows[:25], timedelta(hours=1)), rollups(rows[25:], timedelta(hours=1))
    async with pg_pool.acquire() as a, pg_pool.acquire() as b:
        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await tb.start()
        await rollup_store.add(a, unit="hour", rollups=first)
        blocked = asyncio.create_task(rollup_store.add(b, unit="hour", rollups=second))
        await asyncio.sleep(0.3)
        assert not blocked.done()  # waiting for the first writer's rows
        await ta.commit()
        await blocked
        await tb.commit()
    kept = (await stored(pg_pool, tenant))["trace_metrics_hourly"]
    expected = {r.key: r for r in rollups(rows, timedelta(hours=1))}
    assert kept.keys() == expected.keys()
    for key, r in expected.items():
        assert kept[key] == (r.requests, r.errors, r.input_tokens, r.output_tokens, r.latency_count,
                             r.latency_sum_ms, _dense(r.latency_hist), r.ttft_count, _dense(r.ttft_hist)), key


def _dense(sparse: dict[int, int]) -> list[int]:
    counts = [0] * histogram.BUCKETS
    for bucket, count in sparse.items():
        counts[bucket] = count
    return counts
