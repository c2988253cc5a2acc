"""A price change is in force in every running billing process within a second (issue 10, item 1).

The worker and the API reload their catalogue when their `ConfigWatcher` says a price table changed;
their periodic refresh is set to an hour here, so only the notification can make these pass.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from llmops_billing.api import create_app
from llmops_billing.prices import ModelPrice
from llmops_billing.settings import BillingSettings
from llmops_billing.store.prices import insert_prices
from llmops_shared import apikeys
from llmops_shared.clock import fixed
from llmops_shared.settings import CommonSettings
from tests.integration.billing.conftest import WORKER_NOW, RunningWorker, wait_for
from tests.support.events import make_event
from tests.support.servers import serve

pytestmark = pytest.mark.integration

D = Decimal
IN_FORCE_WITHIN_S = 1.0


@pytest.fixture
def billing_api(stack: CommonSettings) -> Iterator[str]:
    settings = BillingSettings(**stack.model_dump(), price_refresh_s=3600)
    with serve(create_app(settings, clock=fixed(WORKER_NOW))) as url:
        yield url


async def test_a_price_added_through_the_api_prices_the_worker_s_next_events_within_a_second(
        pg_pool: asyncpg.Pool, billing_worker: RunningWorker, billing_api: str, tenant: str) -> None:
    await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
    admin = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["admin"])).secret
    model = f"house-model-{uuid.uuid4().hex[:8]}"

    def event() -> dict[str, Any]:
        return {**make_event(occurred_at=WORKER_NOW.isoformat(), model=model, provider="acme-ai",
                             usage={"input_tokens": 1000, "output_tokens": 100}), "tenant_id": tenant}

    # Before: the model has no price, and the worker (its catalogue loaded) says so.
    before = event()
    await billing_worker.send(before)
    await wait_for(lambda: _row_exists(pg_pool, before["event_id"]))
    assert (await _row(pg_pool, before["event_id"]))["unpriced"]

    async with httpx.AsyncClient(base_url=billing_api, headers={"Authorization": f"Bearer {admin}"}) as client:
        resp = await client.post("/v1/prices", json={
            "model": model, "provider": "acme-ai", "effective_from": "2026-01-01T00:00:00Z",
            "input_per_token": "0.000001", "output_per_token": "0.000002"})
    assert resp.status_code == 201, resp.text
    added_at = asyncio.get_running_loop().time()

    # Events sent from then on, every 50 ms, until one has been sent a second after the change; every
    # event sent at least a second after it must be priced at the new price.
    sent: list[tuple[float, str]] = []
    while not sent or sent[-1][0] - added_at < IN_FORCE_WITHIN_S:
        e = event()
        await billing_worker.send(e)
        sent.append((asyncio.get_running_loop().time(), e["event_id"]))
        await asyncio.sleep(0.05)
    for _at, event_id in sent:
        await wait_for(lambda event_id=event_id: _row_exists(pg_pool, event_id))
    late = [event_id for at, event_id in sent if at - added_at >= IN_FORCE_WITHIN_S]
    assert late
    for event_id in late:
        row = await _row(pg_pool, event_id)
        assert not row["unpriced"], "an event sent a second after the price was added is still unpriced"
        assert row["cost_total"] == 1000 * D("0.000001") + 100 * D("0.000002")
        assert row["price_version"] == f"api/{tenant}/acme-ai/{model}@2026-01-01T00:00:00Z"


async def test_a_price_added_elsewhere_is_quoted_by_a_running_api_within_a_second(
        pg_pool: asyncpg.Pool, billing_api: str, tenant: str) -> None:
    await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
    reader = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["billing:read"])).secret
    model = f"cli-model-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=billing_api, headers={"Authorization": f"Bearer {reader}"}) as client:
        quote = await client.get("/v1/prices/quote", params={"model": model, "provider": "acme-ai"})
        assert quote.status_code == 404, quote.text  # the API has loaded its catalogue: no price yet

        # As `llmops billing prices import` or plain SQL would: another connection, another process.
        async with pg_pool.acquire() as conn, conn.transaction():
            await insert_prices(conn, prices=[ModelPrice(
                model=model, provider="acme-ai", effective_from=datetime(2026, 1, 1, tzinfo=UTC), tenant_id=tenant,
                input_per_token=D("0.000003"), output_per_token=D("0.000004"), source="test")])
        committed = asyncio.get_running_loop().time()
        while True:  # every quote asked for a second after the commit must see the price
            asked = asyncio.get_running_loop().time()
            quote = await client.get("/v1/prices/quote", params={"model": model, "provider": "acme-ai"})
            if quote.status_code == 200:
                break
            assert quote.status_code == 404, quote.text
            assert asked - committed < IN_FORCE_WITHIN_S, "the API still quotes no price a second after the change"
            await asyncio.sleep(0.05)
    assert quote.json()["price"]["input_per_token"] == "0.000003"


async def _row(pool: asyncpg.Pool, event_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT unpriced, cost_total, price_version FROM usage_ledger WHERE event_id = $1",
                              uuid.UUID(event_id))
    assert row is not None
    return row


async def _row_exists(pool: asyncpg.Pool, event_id: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM usage_ledger WHERE event_id = $1", uuid.UUID(event_id)))
