"""An event id is its tenant's own (issue 11, item 5), in billing, on real Kafka and Postgres.

Two tenants' events with the same `event_id` are two events: each is billed once to its own tenant (ledger
row, rollups), whether they come in one batch or in two, and neither tenant can make the other's event
count as a duplicate. A redelivered copy of one tenant's event (even with another `occurred_at`) still
counts once; re-pricing one tenant leaves the other's row of the same id alone.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest

from llmops_billing.builtin_prices import builtin_catalogue
from llmops_billing.catalogue import load_catalogue
from llmops_billing.prices import ModelPrice
from llmops_billing.reprice import reprice
from llmops_billing.rollup_follower import flush
from llmops_billing.settings import BillingSettings
from llmops_billing.store.prices import insert_prices
from llmops_billing.worker import UsageLedgerHandler
from llmops_shared.clock import fixed
from llmops_shared.contract import decode_interaction
from llmops_shared.settings import CommonSettings
from llmops_shared.worker import Message
from tests.integration.billing.conftest import WORKER_NOW, RunningWorker, wait_for
from tests.support.events import make_event

pytestmark = pytest.mark.integration

D = Decimal
MINI_IN = D("0.00000015")  # gpt-4o-mini's built-in input price per token


def event(tenant: str, event_id: uuid.UUID, input_tokens: int, **overrides: Any) -> dict[str, Any]:
    return {**make_event(event_id=str(event_id), occurred_at="2026-11-24T10:00:00Z",
                         usage={"input_tokens": input_tokens, "output_tokens": 0}, **overrides),
            "tenant_id": tenant}


async def billed(pool: asyncpg.Pool, tenant: str) -> dict[str, Any]:
    """What the tenant is billed for: its ledger rows' event ids and tokens, and its rollups' sums (the
    follower's pending batches applied first)."""
    await flush(pool)
    ledger = await pool.fetch("SELECT event_id, input_tokens, cost_total FROM usage_ledger WHERE tenant_id = $1 "
                              "ORDER BY input_tokens", tenant)
    out: dict[str, Any] = {"ledger": [(r["event_id"], r["input_tokens"], r["cost_total"]) for r in ledger]}
    for table in ("usage_hourly", "usage_daily", "usage_daily_users", "usage_daily_tags"):
        sums = await pool.fetchrow(f"SELECT sum(event_count) AS n, sum(input_tokens) AS tokens "  # noqa: S608
                                   f"FROM {table} WHERE tenant_id = $1", tenant)
        out[table] = (sums["n"], sums["tokens"])
    return out


def billed_once(event_id: uuid.UUID, *tokens: int) -> dict[str, Any]:
    rollup = (len(tokens), sum(tokens))
    return {"ledger": [(event_id, t, t * MINI_IN) for t in sorted(tokens)],
            **dict.fromkeys(("usage_hourly", "usage_daily", "usage_daily_users", "usage_daily_tags"), rollup)}


async def test_two_tenants_events_with_one_id_are_each_billed_once_and_redelivery_counts_once(
        pg_pool: asyncpg.Pool, billing_worker: RunningWorker, tenant: str) -> None:
    """Through the worker: tenant A's event first; then tenant B's with the same id, A's again (a redelivery)
    and B's again with another time. All on one partition, in this order; a last event says they were read."""
    other = f"{tenant}-b"
    shared = uuid.uuid4()
    a, b = event(tenant, shared, 1000), event(other, shared, 3000)
    await billing_worker.send(a)
    await wait_for(lambda: _has_rows(pg_pool, tenant, 1))
    later = (datetime.fromisoformat(b["occurred_at"]) + timedelta(hours=2)).isoformat()
    last = event(other, uuid.uuid4(), 5)
    await billing_worker.send(b, a, {**b, "occurred_at": later}, last)
    await wait_for(lambda: _has_rows(pg_pool, other, 2), timeout_s=30)

    assert await billed(pg_pool, tenant) == billed_once(shared, 1000)
    own = await billed(pg_pool, other)
    assert own["ledger"][1:] == [(shared, 3000, 3000 * MINI_IN)]  # after the 5 tokens of `last`
    assert own["usage_daily"] == (2, 3005)
    seen = await pg_pool.fetch("SELECT tenant_id FROM usage_ledger WHERE event_id = $1 ORDER BY 1", shared)
    assert [r["tenant_id"] for r in seen] == [tenant, other]  # the ledger is the dedupe: one row each


async def _has_rows(pool: asyncpg.Pool, tenant: str, n: int) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant) == n)


async def test_in_one_batch_each_tenants_copy_is_billed_once_and_a_redelivered_batch_changes_nothing(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    """One batch holding A's event, B's event with the same id and A's again; then the same batch again."""
    other = f"{tenant}-b"
    shared = uuid.uuid4()
    batch = [event(tenant, shared, 1000), event(other, shared, 3000), event(tenant, shared, 1000)]
    items = [(Message("raw", 0, n, None, orjson.dumps(e), 0), decode_interaction(orjson.dumps(e)))
             for n, e in enumerate(batch)]
    handler = UsageLedgerHandler(BillingSettings(**stack.model_dump()), clock=fixed(WORKER_NOW))
    for _ in range(2):  # the second time: a redelivery
        async with pg_pool.acquire() as conn, conn.transaction():
            await handler.write(conn, items)
        assert await billed(pg_pool, tenant) == billed_once(shared, 1000)
        assert await billed(pg_pool, other) == billed_once(shared, 3000)


async def test_repricing_one_tenant_leaves_the_other_tenants_row_of_the_same_id_alone(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    other = f"{tenant}-b"
    shared = uuid.uuid4()
    items = [(Message("raw", 0, n, None, orjson.dumps(e), 0), decode_interaction(orjson.dumps(e)))
             for n, e in enumerate([event(tenant, shared, 1000), event(other, shared, 1000)])]
    async with pg_pool.acquire() as conn, conn.transaction():
        await UsageLedgerHandler(BillingSettings(**stack.model_dump()), clock=fixed(WORKER_NOW)).write(conn, items)
    await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
    corrected = ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=datetime(2026, 11, 1, tzinfo=UTC),
                           tenant_id=tenant, input_per_token=D("0.0000002"), output_per_token=D("0.0000008"),
                           source="correction")
    async with pg_pool.acquire() as conn, conn.transaction():
        await insert_prices(conn, prices=[corrected])
    report = await reprice(pg_pool, await load_catalogue(pg_pool, builtin_catalogue()),
                           start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 12, 1, tzinfo=UTC),
                           tenant_id=tenant, clock=fixed(WORKER_NOW))
    assert report.rows_changed == 1
    assert (await billed(pg_pool, tenant))["ledger"] == [(shared, 1000, 1000 * D("0.0000002"))]
    assert await billed(pg_pool, other) == billed_once(shared, 1000)  # still the list price
