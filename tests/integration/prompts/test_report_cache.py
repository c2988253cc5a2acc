"""The report's cache of closed hours (`prompt_report_hours`): the report over cached hours is the report over
the raw rows, before and after rows arrive late in a cached hour (a late event billed and stored by billing's
and the trace writer's own code, a late judge score, a late finding, an erasure of spans), it is read when its
stamps match (and only then), re-aggregating replaces an hour and never adds to it, and each tenant's hours
are its own."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import numpy as np
import pytest

from llmops_prompts.report import VariantData, build
from llmops_prompts.rollup import Sums, stretches
from llmops_prompts.stats import Moments
from llmops_prompts.store import calls
from llmops_shared.settings import CommonSettings
from llmops_traces.store import spans as span_store
from tests.integration.traces.traces_support import NOW, add_finding, add_score, bill, span_event, store_directly

pytestmark = pytest.mark.integration

START = NOW - timedelta(hours=5, minutes=40)  # a partial first hour, four whole hours, then the hour under way
END = NOW + timedelta(minutes=30)
CLOCK = NOW + timedelta(minutes=30)
VARIANTS = ["long", "short", "holdout"]


def _events(tenant: str, n: int, *, seed: int, offset: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(offset, offset + n):
        variant = VARIANTS[i % 3]
        at = START - timedelta(minutes=10) + timedelta(seconds=(6 * 3600 + 1800) * (i - offset) / n)
        out.append(span_event(tenant, at=at, model="gpt-4o-mini", user_id=f"u-{rng.randint(0, 40)}",
                              trace_id=f"t-{i}", span_id=f"s-{i}", parent_span_id=None,
                              session_id=f"sess-{rng.randint(0, 30)}", latency_ms=float(rng.randint(200, 900)),
                              usage={"input_tokens": 400, "output_tokens": rng.randint(100, 600)},
                              prompt={"name": "answer", "version": "1", "variant": variant},
                              status="error" if i % 13 == 0 else "ok",
                              **({"error": {"type": "timeout"}} if i % 13 == 0 else {})))
    return out


async def _store(pool: asyncpg.Pool, events: list[dict[str, Any]], *, seed: int) -> None:
    rng = random.Random(seed)
    await store_directly(pool, events)
    await bill(pool, events)
    for i, event in enumerate(events):
        if i % 3:
            await add_score(pool, event, round(rng.uniform(0.2, 1.0), 3))
        if i % 17 == 0:
            await add_finding(pool, event)


def _scores_by_hand(events: list[dict[str, Any]], *, seed: int) -> dict[str, dict[str, Moments]]:
    """Per variant, the judge's scores `_store(events, seed=seed)` wrote for the window's events, summed in Python."""
    rng, sums = random.Random(seed), dict[str, Sums]()
    for i, event in enumerate(events):
        if i % 3:
            score = Decimal(str(round(rng.uniform(0.2, 1.0), 3)))
            if START <= _at(event) < END:
                variant = event["prompt"]["variant"]
                sums[variant] = sums.get(variant, Sums()) + Sums(1, score, score * score)
    return {variant: {"relevance": s.moments()} for variant, s in sums.items()}


async def _data(pool: asyncpg.Pool, tenant: str, unit: str, *, cache: bool) -> dict[str, VariantData]:
    return await calls.variant_data(pool, tenant_id=tenant, prompt="answer", variants=VARIANTS, unit=unit,
                                    start=START, end=END, now=CLOCK, cache=cache)


def _same(got: dict[str, VariantData], want: dict[str, VariantData]) -> None:
    assert set(got) == set(want)
    for variant, g in got.items():
        w = want[variant]
        assert (g.calls, g.units, g.errors, g.findings, g.cost, g.scores) == (
            w.calls, w.units, w.errors, w.findings, w.cost, w.scores), variant
        assert np.array_equal(g.latencies, w.latencies)
        assert (g.costs is None and w.costs is None) or (
            g.costs is not None and w.costs is not None and np.array_equal(g.costs, w.costs))


def _report(data: dict[str, VariantData]) -> dict[str, Any]:
    return build([("long", 1.0), ("short", 1.0)], data, holdout=0.1, rng=np.random.default_rng(7), resamples=300)


async def _cached_hours(pool: asyncpg.Pool, tenant: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM prompt_report_hours WHERE tenant_id = $1", tenant)


@pytest.mark.parametrize("unit", ["user", "session"])
async def test_the_report_over_cached_hours_is_the_report_over_the_raw_rows(pg_pool: asyncpg.Pool, unit: str) -> None:
    tenant = f"rc-{uuid.uuid4().hex[:8]}"
    events = _events(tenant, 150, seed=1)
    await _store(pg_pool, events, seed=2)

    raw = await _data(pg_pool, tenant, unit, cache=False)
    assert {v: d.scores for v, d in raw.items() if d.scores} == _scores_by_hand(events, seed=2)
    assert await _cached_hours(pg_pool, tenant) == 0
    cold = await _data(pg_pool, tenant, unit, cache=True)  # aggregates the closed hours and keeps them
    # 06:20-07:00 (the window's first part of an hour), 07:00 .. 11:00; 12:00-12:30 is under way at CLOCK
    assert await _cached_hours(pg_pool, tenant) == 6
    warm = await _data(pg_pool, tenant, unit, cache=True)
    _same(cold, raw)
    _same(warm, raw)
    assert _report(warm) == _report(raw)
    assert sum(d.calls for d in raw.values()) == sum(START <= _at(e) < END for e in events)

    # The cache is what is read while the stamps match: a tampered cached hour shows...
    await pg_pool.execute("UPDATE prompt_report_hour_variants SET calls = calls + 1000 "
                          "WHERE tenant_id = $1 AND since = $2 AND variant = 'long'", tenant, NOW - timedelta(hours=3))
    assert (await _data(pg_pool, tenant, unit, cache=True))["long"].calls == raw["long"].calls + 1000
    # ... until that hour's sources change: a late event of that hour, billed and stored by their own writers
    late = _events(tenant, 3, seed=3, offset=1000)
    for i, event in enumerate(late):
        event["occurred_at"] = (NOW - timedelta(hours=3) + timedelta(minutes=7 + i)).isoformat()
    await _store(pg_pool, late, seed=4)
    raw = await _data(pg_pool, tenant, unit, cache=False)
    _same(await _data(pg_pool, tenant, unit, cache=True), raw)
    assert sum(d.calls for d in raw.values()) == sum(START <= _at(e) < END for e in [*events, *late])

    # a late score and a late finding of an event of a cached hour, each alone
    old = next(e for i, e in enumerate(events) if i % 3 == 0 and _at(e) >= NOW - timedelta(hours=4))
    await add_score(pg_pool, old, 0.123)
    raw = await _data(pg_pool, tenant, unit, cache=False)
    _same(await _data(pg_pool, tenant, unit, cache=True), raw)
    await add_finding(pg_pool, old, finding_no=1)
    raw = await _data(pg_pool, tenant, unit, cache=False)
    _same(await _data(pg_pool, tenant, unit, cache=True), raw)

    # an erasure deletes a user's spans (their latencies leave the report)
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await span_store.erase(conn, tenant_id=tenant, kind="user", subject=events[4]["user_id"],
                                      erased_before=NOW) > 0
    raw = await _data(pg_pool, tenant, unit, cache=False)
    _same(await _data(pg_pool, tenant, unit, cache=True), raw)
    assert _report(await _data(pg_pool, tenant, unit, cache=True)) == _report(raw)

    # aggregating an hour again replaces it: as many rows as variants seen, however often it is redone
    rows = await pg_pool.fetchval("SELECT count(*) FROM prompt_report_hour_variants WHERE tenant_id = $1", tenant)
    await pg_pool.execute("UPDATE prompt_report_hours SET stamp = 'stale' WHERE tenant_id = $1", tenant)
    for _ in range(2):
        _same(await _data(pg_pool, tenant, unit, cache=True), raw)
    assert await pg_pool.fetchval("SELECT count(*) FROM prompt_report_hour_variants WHERE tenant_id = $1",
                                  tenant) == rows == 6 * 3


async def test_each_tenants_cached_hours_are_its_own(pg_pool: asyncpg.Pool) -> None:
    """Two tenants with the same prompt and variant names in the same hours: each report is its own raw rows."""
    first, second = f"ra-{uuid.uuid4().hex[:8]}", f"rb-{uuid.uuid4().hex[:8]}"
    await _store(pg_pool, _events(first, 90, seed=5), seed=6)
    await _store(pg_pool, _events(second, 45, seed=7), seed=8)
    for tenant in (first, second, first, second):
        _same(await _data(pg_pool, tenant, "user", cache=True), await _data(pg_pool, tenant, "user", cache=False))
    a, b = [await _data(pg_pool, t, "user", cache=True) for t in (first, second)]
    assert sum(d.calls for d in a.values()) > sum(d.calls for d in b.values()) > 0
    assert await _cached_hours(pg_pool, first) == await _cached_hours(pg_pool, second) == 6


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


async def test_a_span_billing_has_not_written_yet_counts_as_in_one_pass(pg_pool: asyncpg.Pool) -> None:
    """A span whose ledger row is not there (billing behind, an event it does not bill), alone in its hour for
    its variant: its latency counts for a variant with calls elsewhere in the window, cached or not."""
    tenant = f"rs-{uuid.uuid4().hex[:8]}"
    events = _events(tenant, 60, seed=9)
    await _store(pg_pool, events, seed=10)
    lone = _events(tenant, 1, seed=11, offset=2002)[0]  # variant "short" (2002 % 3 == 1)
    lone["occurred_at"] = (NOW - timedelta(hours=1, minutes=1)).isoformat()  # 10:59, in the 10:00 hour
    for table in ("trace_spans", "usage_ledger"):  # no other call of "short" in that hour, before any report
        await pg_pool.execute(f"DELETE FROM {table} WHERE tenant_id = $1 AND prompt_variant = 'short' "  # noqa: S608
                              "AND occurred_at >= $2 AND occurred_at < $3", tenant, NOW - timedelta(hours=2),
                              NOW - timedelta(hours=1))
    await store_directly(pg_pool, [lone])
    raw = await _data(pg_pool, tenant, "user", cache=False)
    assert float(lone["latency_ms"]) in raw["short"].latencies
    for _ in range(2):  # cold, then warm
        _same(await _data(pg_pool, tenant, "user", cache=True), raw)


async def test_hours_aggregated_on_several_connections_are_those_of_one(pg_pool: asyncpg.Pool,
                                                                        stack: CommonSettings) -> None:
    """`parallel` connections aggregate the hours not cached in one snapshot (exported): the same numbers as one
    connection, cold and warm; a pool with no connection to spare does it all on the report's own."""
    tenant = f"rp-{uuid.uuid4().hex[:8]}"
    await _store(pg_pool, _events(tenant, 120, seed=12), seed=13)
    raw = await _data(pg_pool, tenant, "user", cache=False)
    async with pg_pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        cut = [(s.start, s.end) for s in stretches(START, END, CLOCK)]
        one = await calls.parts(conn, tenant_id=tenant, prompt="answer", unit="user", ranges=cut)
        three = await calls.parts(conn, tenant_id=tenant, prompt="answer", unit="user", ranges=cut, pool=pg_pool,
                                  parallel=3)
    assert one.keys() == three.keys() and len(one) == len(cut)
    for i, by_variant in one.items():
        assert by_variant.keys() == three[i].keys()
        for variant, part in by_variant.items():
            other = three[i][variant]
            assert (part.calls, part.errors, part.findings, part.cost, part.scores) == (
                other.calls, other.errors, other.findings, other.cost, other.scores)
            assert np.array_equal(part.units, other.units) and np.array_equal(part.latencies, other.latencies)
    for _ in range(2):  # cold, then warm
        _same(await calls.variant_data(pg_pool, tenant_id=tenant, prompt="answer", variants=VARIANTS, unit="user",
                                       start=START, end=END, now=CLOCK, parallel=3), raw)
    await pg_pool.execute("DELETE FROM prompt_report_hours WHERE tenant_id = $1", tenant)
    lone = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=1)
    try:
        _same(await calls.variant_data(lone, tenant_id=tenant, prompt="answer", variants=VARIANTS, unit="user",
                                       start=START, end=END, now=CLOCK, parallel=4), raw)
        assert await _cached_hours(pg_pool, tenant) == 6
    finally:
        await lone.close()
