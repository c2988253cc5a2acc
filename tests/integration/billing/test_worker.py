"""The billing worker on real Kafka and Postgres: ledger, rollups, dead letters, alerts, budgets."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest

from llmops_billing import budgets
from llmops_billing.alerts import OutboxRelay, unpriced_model_alert
from llmops_billing.store import outbox
from llmops_shared.privacy import pseudonym
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import ALERTS
from tests.integration.billing.conftest import WORKER_NOW, RunningWorker, wait_for
from tests.support.events import collect, end_offsets, make_event

pytestmark = pytest.mark.integration

D = Decimal
# gpt-4o-mini in the built-in list: input 0.15 USD / M tokens, output 0.60 USD / M tokens
MINI_IN, MINI_OUT = D("0.00000015"), D("0.0000006")


def event(tenant: str, **overrides: Any) -> dict[str, Any]:
    return {**make_event(**overrides), "tenant_id": tenant}


def alerts_of(records: list[Any], tenant: str, rule: str) -> list[dict[str, Any]]:
    out = []
    for record in records:
        message = orjson.loads(record.value)
        if message.get("tenant_id") == tenant and message.get("rule") == rule:
            out.append(message)
    return out


async def ledger_count(pool: asyncpg.Pool, tenant: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant))


async def test_events_become_ledger_rows_and_rollups_bad_messages_dead_letters_and_unknown_models_alert(
        stack: CommonSettings, pg_pool: asyncpg.Pool, billing_worker: RunningWorker, tenant: str) -> None:
    since = await end_offsets(stack.kafka_bootstrap, ALERTS)
    priced = [event(tenant, occurred_at="2026-11-24T10:15:00Z", app_id=f"app-{i % 2}", user_id=f"u-{i}",
                    usage={"input_tokens": 1000 + i, "output_tokens": 10 * i}) for i in range(5)]
    mystery = event(tenant, occurred_at="2026-11-24T11:00:00Z", model="mystery-llm-9000", provider="acme-ai",
                    usage={"input_tokens": 7, "output_tokens": 3})
    chain = event(tenant, span_kind="chain")
    await billing_worker.send(*priced, mystery, chain, b"{not json", orjson.dumps({**priced[0], "usage": "lots"}),
                              priced[0], priced[1])

    async def done() -> bool:
        dead = await pg_pool.fetchval("SELECT count(*) FROM dead_letters WHERE consumer = $1",
                                      billing_worker.settings.group)
        return await ledger_count(pg_pool, tenant) == 6 and dead == 2

    await wait_for(done)
    rows = await pg_pool.fetch("SELECT * FROM usage_ledger WHERE tenant_id = $1 AND NOT unpriced ORDER BY input_tokens",
                               tenant)
    for i, row in enumerate(rows):
        assert row["cost_total"] == (1000 + i) * MINI_IN + 10 * i * MINI_OUT
        assert row["price_version"].endswith("/openai/gpt-4o-mini@1970-01-01T00:00:00Z")
        # the user as its pseudonym under the worker's own key
        assert row["user_id"] == pseudonym(tenant, f"u-{i}", billing_worker.settings.pseudonym_secret())
        assert row["app_id"] == f"app-{i % 2}"
    dead = await pg_pool.fetch("SELECT reason FROM dead_letters WHERE consumer = $1 ORDER BY \"offset\"",
                               billing_worker.settings.group)
    assert sorted(d["reason"] for d in dead) == ["bad_json", "schema_violation"]

    for table in ("usage_hourly", "usage_daily"):
        rollup = await pg_pool.fetchrow(
            f"SELECT sum(event_count) AS n, sum(unpriced_count) AS u, sum(input_tokens) AS i, "  # noqa: S608
            f"sum(cost_total) AS c FROM {table} WHERE tenant_id = $1", tenant)
        ledger = await pg_pool.fetchrow(
            "SELECT count(*) AS n, count(*) FILTER (WHERE unpriced) AS u, sum(input_tokens) AS i, "
            "sum(cost_total) AS c FROM usage_ledger WHERE tenant_id = $1", tenant)
        assert tuple(rollup) == tuple(ledger)

    records = await collect(stack.kafka_bootstrap, ALERTS, since,
                            until=lambda found: bool(alerts_of(found, tenant, "billing.unpriced_model")))
    [alert] = alerts_of(records, tenant, "billing.unpriced_model")
    assert alert["source"] == "billing" and alert["detector"] == "billing" and alert["severity"] == "warning"
    assert alert["details"]["model"] == "mystery-llm-9000" and alert["details"]["provider"] == "acme-ai"
    assert alert["fingerprint"] == f"billing/unpriced_model/{tenant}/acme-ai/mystery-llm-9000"

    # The same unknown model again (a new event): counted, not alerted twice.
    await billing_worker.send(event(tenant, occurred_at="2026-11-24T11:05:00Z", model="mystery-llm-9000",
                                    provider="acme-ai", usage={"input_tokens": 1, "output_tokens": 1}))
    await wait_for(lambda: _equals(ledger_count(pg_pool, tenant), 7))
    unpriced = await pg_pool.fetchrow("SELECT event_count, alerted_at FROM unpriced_models WHERE tenant_id = $1",
                                      tenant)
    assert unpriced["event_count"] == 2 and unpriced["alerted_at"] is not None
    outbox = await pg_pool.fetch("SELECT rule, published_at FROM billing_alert_outbox WHERE tenant_id = $1", tenant)
    assert [(o["rule"], o["published_at"] is not None) for o in outbox] == [("billing.unpriced_model", True)]


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_each_budget_threshold_alerts_once_per_period(
        stack: CommonSettings, pg_pool: asyncpg.Pool, billing_worker: RunningWorker, tenant: str) -> None:
    await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
    async with pg_pool.acquire() as conn:
        budget = await budgets.create_budget(conn, tenant_id=tenant, app_id="", period=budgets.Period.MONTH,
                                             amount=D("0.001"), thresholds=[50, 80, 100],
                                             enforcement=budgets.Enforcement.HARD, name="monthly cap")
        other_app = await budgets.create_budget(conn, tenant_id=tenant, app_id="other-app", period=budgets.Period.DAY,
                                                amount=D("0.001"), thresholds=[50],
                                                enforcement=budgets.Enforcement.SOFT, name="")
    since = await end_offsets(stack.kafka_bootstrap, ALERTS)
    now = WORKER_NOW  # the worker's clock: its current period, whatever today's date is
    # each event costs 1000 x 0.00000015 = 0.00015 USD: 15% of the budget
    sent: list[dict[str, Any]] = []

    async def spend(n: int) -> None:
        batch = [event(tenant, occurred_at=now.isoformat(), usage={"input_tokens": 1000, "output_tokens": 0})
                 for _ in range(n)]
        sent.extend(batch)
        await billing_worker.send(*batch)
        await wait_for(lambda: _equals(ledger_count(pg_pool, tenant), len(sent)))

    await spend(3)   # 45%
    await spend(1)   # 60%: 50
    await spend(2)   # 90%: 80
    await billing_worker.send(*sent)  # every event again: nothing new
    await spend(1)   # 105%: 100
    await spend(2)   # 135%: nothing new

    # Every alert leaves through the outbox: once each of its rows is published, the topic holds all there are.
    async def outbox_sent() -> bool:
        return bool(await pg_pool.fetchval("SELECT count(*) = count(published_at) FROM billing_alert_outbox "
                                           "WHERE tenant_id = $1", tenant))

    await wait_for(outbox_sent)
    assert await pg_pool.fetchval("SELECT count(*) FROM billing_alert_outbox WHERE tenant_id = $1 "
                                  "AND rule = 'budget.threshold'", tenant) == 3
    records = await collect(stack.kafka_bootstrap, ALERTS, since,
                            until=lambda found: len(alerts_of(found, tenant, "budget.threshold")) >= 3, timeout_s=10)
    alerts = {a["alert_id"]: a for a in alerts_of(records, tenant, "budget.threshold")}.values()
    by_threshold = sorted((a["details"]["threshold_percent"], a["severity"]) for a in alerts)
    assert by_threshold == [(50, "info"), (80, "critical"), (100, "critical")]  # hard budget: critical from 80
    assert all(a["app_id"] is None and a["details"]["budget_id"] == budget.id for a in alerts)
    hundred = next(a for a in alerts if a["details"]["threshold_percent"] == 100)
    assert D(hundred["details"]["spent"]) == D("0.00105")
    assert "monthly cap" in hundred["title"] and "prompt" not in hundred["summary"].lower()
    rows = await pg_pool.fetch("SELECT threshold FROM budget_alerts_sent WHERE budget_id = $1 ORDER BY threshold",
                               budget.id)
    assert [r["threshold"] for r in rows] == [50, 80, 100]
    assert await pg_pool.fetchval("SELECT count(*) FROM budget_alerts_sent WHERE budget_id = $1", other_app.id) == 0

    async with pg_pool.acquire() as conn:
        [status] = await budgets.budget_status(conn, [budget], now=WORKER_NOW)
    assert status["current_period"]["state"] == "exceeded" and status["current_period"]["blocked"] is True
    assert status["current_period"]["alerts_sent"] == [50, 80, 100]


async def test_alerts_left_in_the_outbox_are_sent_by_the_relay(
        stack: CommonSettings, pg_pool: asyncpg.Pool, billing_worker: RunningWorker, tenant: str) -> None:
    since = await end_offsets(stack.kafka_bootstrap, ALERTS)
    at = WORKER_NOW - timedelta(minutes=1)
    alert = unpriced_model_alert(tenant_id=tenant, provider="acme", model=f"m-{uuid.uuid4().hex[:6]}",
                                 model_key="m", reason="unknown_model", event_count=3, first_seen_at=at,
                                 alerted_at=at)
    async with pg_pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, alerts=[alert])  # as if the worker died after its commit, before the send
    relay = OutboxRelay(pg_pool, billing_worker.producer, topic=ALERTS, interval_s=1, min_age_s=0)
    assert await relay.run_once() >= 1
    assert await relay.run_once() == 0
    records = await collect(stack.kafka_bootstrap, ALERTS, since,
                            until=lambda found: bool(alerts_of(found, tenant, "billing.unpriced_model")))
    [message] = alerts_of(records, tenant, "billing.unpriced_model")
    assert message["alert_id"] == alert.alert_id and records[0].key is not None
    assert await pg_pool.fetchval("SELECT published_at IS NOT NULL FROM billing_alert_outbox WHERE alert_id = $1",
                                  uuid.UUID(alert.alert_id))
