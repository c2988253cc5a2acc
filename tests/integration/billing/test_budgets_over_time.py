"""Budgets over their life, on real Kafka and Postgres (issue 19): a new period alerts again, a backfill
past the alert window stays silent, a budget created or lowered through the API below what is already
spent alerts, two workers writing the same tenant's events at once miss no crossing and send none twice,
and re-pricing evaluates the budgets its corrections touch.

Every figure is derived here from the built-in price of gpt-4o-mini (0.15 USD per million input tokens):
an event of 1,000 input tokens costs 0.00015 USD.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from llmops_billing import budgets
from llmops_billing.alerts import Alert, OutboxRelay
from llmops_billing.api import create_app
from llmops_billing.builtin_prices import builtin_catalogue
from llmops_billing.catalogue import load_catalogue
from llmops_billing.ledger import ledger_row
from llmops_billing.prices import ModelPrice
from llmops_billing.reprice import reprice
from llmops_billing.settings import BillingSettings
from llmops_billing.store.ledger import write_batch
from llmops_billing.store.prices import insert_prices
from llmops_billing.worker import UsageLedgerHandler
from llmops_shared.clock import fixed
from llmops_shared.contract import Interaction
from llmops_shared.kafka import durable_producer
from llmops_shared.partitions import ensure_month_partitions
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import ALERTS
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.worker import Message
from tests.integration.billing.conftest import WORKER_NOW, RunningWorker, wait_for
from tests.support.events import collect, end_offsets, make_event
from tests.support.servers import serve

pytestmark = pytest.mark.integration

D = Decimal
EVENT_COST = D("0.00015")  # 1,000 input tokens at 0.00000015 USD


def event(tenant: str, at: str, app: str = "app") -> dict[str, Any]:
    return {**make_event(occurred_at=at, app_id=app, usage={"input_tokens": 1000, "output_tokens": 0}),
            "tenant_id": tenant}


async def add_tenant(pool: asyncpg.Pool, tenant: str) -> None:
    await pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", tenant)


async def new_budget(pool: asyncpg.Pool, tenant: str, *, period: budgets.Period, amount: Decimal,
                     thresholds: list[int], app: str = "") -> budgets.Budget:
    async with pool.acquire() as conn:
        return await budgets.create_budget(conn, tenant_id=tenant, app_id=app, period=period, amount=amount,
                                           thresholds=thresholds, enforcement=budgets.Enforcement.SOFT, name="cap")


async def crossings(pool: asyncpg.Pool, budget_id: int) -> list[tuple[str, int]]:
    rows = await pool.fetch("SELECT period_start, threshold FROM budget_alerts_sent WHERE budget_id = $1 "
                            "ORDER BY period_start, threshold", budget_id)
    return [(r["period_start"].astimezone(UTC).strftime("%Y-%m-%d"), r["threshold"]) for r in rows]


async def outbox_fingerprints(pool: asyncpg.Pool, tenant: str) -> list[str]:
    rows = await pool.fetch("SELECT fingerprint FROM billing_alert_outbox WHERE tenant_id = $1 AND rule = "
                            "'budget.threshold' ORDER BY fingerprint", tenant)
    return [r["fingerprint"] for r in rows]


def budget_alerts(records: list[Any], tenant: str) -> list[dict[str, Any]]:
    out = [orjson.loads(r.value) for r in records]
    return [a for a in out if a.get("tenant_id") == tenant and a.get("rule") == "budget.threshold"]


async def test_a_new_period_alerts_again_and_events_older_than_the_alert_window_stay_silent(
        stack: CommonSettings, pg_pool: asyncpg.Pool, billing_worker: RunningWorker, tenant: str) -> None:
    """The worker's now is 2026-11-24 12:00 and the window 48 hours: a period that ended at or after
    2026-11-22 12:00 is still alerted on, one that ended before is not."""
    assert billing_worker.settings.budget_alert_max_age_h == 48
    await add_tenant(pg_pool, tenant)
    daily = await new_budget(pg_pool, tenant, period=budgets.Period.DAY, amount=2 * EVENT_COST, thresholds=[100])
    monthly = await new_budget(pg_pool, tenant, period=budgets.Period.MONTH, amount=2 * EVENT_COST,
                               thresholds=[100], app="backfill-app")
    since = await end_offsets(stack.kafka_bootstrap, ALERTS)
    days = ("2026-11-20", "2026-11-22", "2026-11-23", "2026-11-24")  # the 20th ended 2.5 days before now
    sent = [event(tenant, f"{day}T10:00:00Z") for day in days for _ in range(2)]  # 100% of each day's budget
    sent += [event(tenant, "2026-10-15T10:00:00Z", app="backfill-app") for _ in range(4)]  # 200% of October's
    await billing_worker.send(*sent)

    async def all_written_and_sent() -> bool:
        n = await pg_pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant)
        pending = await pg_pool.fetchval("SELECT count(*) FROM billing_alert_outbox WHERE tenant_id = $1 "
                                         "AND published_at IS NULL", tenant)
        return bool(n == len(sent) and pending == 0)

    await wait_for(all_written_and_sent)
    # Each day still inside the window alerted, each on its own (a new period alerts again); the 20th and
    # October, past the window, are recorded nowhere and alerted to nobody.
    assert await crossings(pg_pool, daily.id) == [("2026-11-22", 100), ("2026-11-23", 100), ("2026-11-24", 100)]
    assert await crossings(pg_pool, monthly.id) == []
    expected = [f"billing/budget/{daily.id}/{day}/100" for day in days[1:]]
    assert await outbox_fingerprints(pg_pool, tenant) == expected  # the outbox is the only way out
    records = await collect(stack.kafka_bootstrap, ALERTS, since,
                            until=lambda found: len(budget_alerts(found, tenant)) >= len(expected))
    alerts = budget_alerts(records, tenant)
    assert sorted(a["fingerprint"] for a in alerts) == expected
    assert sorted(a["details"]["period_start"] for a in alerts) == [f"{day}T00:00:00Z" for day in days[1:]]
    assert all(D(a["details"]["spent"]) == 2 * EVENT_COST for a in alerts)


async def test_a_budget_created_or_lowered_through_the_api_below_current_spend_alerts(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, make_key) -> None:
    await add_tenant(pg_pool, tenant)
    rows = [ledger_row(Interaction.model_validate(event(tenant, "2026-11-24T09:00:00Z")), builtin_catalogue(),
                       priced_at=WORKER_NOW) for _ in range(4)]  # 0.0006 USD spent today (and this month)
    async with pg_pool.acquire() as conn, conn.transaction():
        await write_batch(conn, rows=[r for r in rows if r is not None], now=WORKER_NOW)
    admin = await make_key(tenant, ["admin"])
    settings = BillingSettings(**stack.model_dump())
    with serve(create_app(settings, clock=fixed(WORKER_NOW))) as url:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=30) as api:
            # 0.0006 of 0.0005: 120%, so 50 and 100 are reached the moment the budget exists.
            created = await api.post("/v1/budgets", json={"period": "month", "amount": "0.0005",
                                                          "thresholds": [50, 100, 200]})
            assert created.status_code == 201, created.text
            # 0.0006 of 0.01 is 6%: nothing; lowered to 0.001 it is 60%: 50 is reached then.
            daily = await api.post("/v1/budgets", json={"period": "day", "amount": "0.01", "thresholds": [50]})
            assert daily.status_code == 201, daily.text
            assert daily.json()["current_period"]["alerts_sent"] == []
            lowered = await api.put(f"/v1/budgets/{daily.json()['id']}", json={"amount": "0.001"})
            assert lowered.status_code == 200, lowered.text
    month_id, day_id = created.json()["id"], daily.json()["id"]
    assert created.json()["current_period"]["alerts_sent"] == [50, 100]
    assert created.json()["current_period"]["state"] == "exceeded"
    assert lowered.json()["current_period"]["alerts_sent"] == [50]
    expected = sorted([f"billing/budget/{month_id}/2026-11/50", f"billing/budget/{month_id}/2026-11/100",
                       f"billing/budget/{day_id}/2026-11-24/50"])
    assert await outbox_fingerprints(pg_pool, tenant) == expected

    # The API has no producer: the worker's relay sends what it decided.
    since = await end_offsets(stack.kafka_bootstrap, ALERTS)
    producer = durable_producer(stack.kafka_bootstrap, client_id="billing-test-relay")
    await producer.start()
    try:
        relay = OutboxRelay(pg_pool, producer, topic=ALERTS, interval_s=1, min_age_s=0)
        while await relay.run_once():
            pass
    finally:
        await producer.stop()
    records = await collect(stack.kafka_bootstrap, ALERTS, since,
                            until=lambda found: len(budget_alerts(found, tenant)) >= len(expected))
    alerts = budget_alerts(records, tenant)
    assert sorted(a["fingerprint"] for a in alerts) == expected
    assert {a["details"]["spent"] for a in alerts} == {"0.0006"}


async def test_two_workers_writing_one_tenant_at_once_alert_each_crossing_once_and_miss_none(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> None:
    """Worker A's batch brings the budget to 60%, worker B's (another app, so no rollup row in common)
    to 120%. B evaluates while A's transaction is still open; it must wait for A's commit and then see
    both batches' spend: A alerts 50, B alerts 80 and 100, and no threshold twice. Evaluated on B's own
    snapshot instead, B would see 60% and alert nothing, and 80 and 100 would never be sent."""
    await add_tenant(pg_pool, tenant)
    # The month's partitions exist before the race (two writers creating the same new month at once is
    # another race, not this test's: see the report of issue 19).
    async with pg_pool.acquire() as conn, conn.transaction():
        for table in ("usage_ledger", "usage_events_seen"):
            await ensure_month_partitions(conn, table, [WORKER_NOW], now=WORKER_NOW)
    budget = await new_budget(pg_pool, tenant, period=budgets.Period.MONTH, amount=5 * EVENT_COST,
                              thresholds=[50, 80, 100])
    settings = BillingSettings(**stack.model_dump(), topic=f"{TOPIC_PREFIX}billing.{uuid.uuid4().hex[:8]}")
    handlers = [UsageLedgerHandler(settings, clock=fixed(WORKER_NOW)) for _ in range(2)]

    def batch(app: str) -> list[tuple[Message, Interaction]]:
        return [(Message(settings.topic, 0, i, b"k", b"", 0),
                 Interaction.model_validate(event(tenant, "2026-11-24T10:00:00Z", app=app))) for i in range(3)]

    async with pg_pool.acquire() as conn_a, pg_pool.acquire() as conn_b:
        tx_a, tx_b = conn_a.transaction(), conn_b.transaction()
        await tx_a.start()
        alerts_a = await handlers[0].write(conn_a, batch("app-a"))
        await tx_b.start()
        b_writes = asyncio.create_task(handlers[1].write(conn_b, batch("app-b")))
        b_pid = conn_b.get_server_pid()

        async def b_waits_for_a_lock() -> bool:
            waiting = await pg_pool.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", b_pid)
            return bool(waiting == "Lock")

        await wait_for(b_waits_for_a_lock)
        assert not b_writes.done()
        await tx_a.commit()
        alerts_b = await asyncio.wait_for(b_writes, 20)
        await tx_b.commit()
    thresholds = [[orjson.loads(a.payload)["details"]["threshold_percent"] for a in results if isinstance(a, Alert)]
                  for results in (alerts_a, alerts_b)]  # `write` returns the usage messages too
    assert thresholds == [[50], [80, 100]]
    assert await crossings(pg_pool, budget.id) == [("2026-11-01", 50), ("2026-11-01", 80), ("2026-11-01", 100)]


async def test_repricing_evaluates_the_budgets_its_corrections_touch(pg_pool: asyncpg.Pool, tenant: str) -> None:
    await add_tenant(pg_pool, tenant)
    rows = [ledger_row(Interaction.model_validate(event(tenant, "2026-11-24T09:00:00Z")), builtin_catalogue(),
                       priced_at=WORKER_NOW) for _ in range(4)]  # 0.0006 USD
    async with pg_pool.acquire() as conn, conn.transaction():
        await write_batch(conn, rows=[r for r in rows if r is not None], now=WORKER_NOW)
    budget = await new_budget(pg_pool, tenant, period=budgets.Period.MONTH, amount=D("0.0015"),
                              thresholds=[50, 80, 100])  # 40%: nothing yet
    async with pg_pool.acquire() as conn:
        [status] = await budgets.budget_status(conn, [budget], now=WORKER_NOW)
    assert status["current_period"]["thresholds_reached"] == []

    # The correction: this tenant's gpt-4o-mini input was 0.45 USD per million tokens from 1 November,
    # three times the list price: 4 x 1,000 x 0.00000045 = 0.0018 USD, 120% of the budget.
    corrected = ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=datetime(2026, 11, 1, tzinfo=UTC),
                           tenant_id=tenant, input_per_token=D("0.00000045"), output_per_token=D("0.0000006"),
                           source="correction")
    async with pg_pool.acquire() as conn, conn.transaction():
        await insert_prices(conn, prices=[corrected])
    catalogue = await load_catalogue(pg_pool, builtin_catalogue())
    report = await reprice(pg_pool, catalogue, start=datetime(2026, 11, 1, tzinfo=UTC),
                           end=datetime(2026, 12, 1, tzinfo=UTC), tenant_id=tenant, clock=fixed(WORKER_NOW),
                           budget_alert_max_age=timedelta(hours=48))
    assert (report.rows_changed, report.cost_after, report.alerts) == (4, D("0.0018"), 3)
    assert await crossings(pg_pool, budget.id) == [("2026-11-01", 50), ("2026-11-01", 80), ("2026-11-01", 100)]
    assert await outbox_fingerprints(pg_pool, tenant) == sorted(
        f"billing/budget/{budget.id}/2026-11/{t}" for t in (50, 80, 100))
    spent = await pg_pool.fetch("SELECT spent FROM budget_alerts_sent WHERE budget_id = $1", budget.id)
    assert {r["spent"] for r in spent} == {D("0.0018")}
