"""Billing publishes each usage-ledger row it inserted to `billing.usage`, after the commit, and nothing for
an event it had already billed (a redelivery) or does not bill (a chain span)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest

from llmops_shared.settings import CommonSettings
from llmops_shared.usage_events import UsageMessage
from tests.integration.billing.conftest import RunningWorker, wait_for
from tests.support.events import collect, end_offsets, make_event

pytestmark = pytest.mark.integration


def event(tenant: str, **overrides: Any) -> dict[str, Any]:
    return {**make_event(**overrides), "tenant_id": tenant}


async def test_each_inserted_ledger_row_is_published_once_with_its_cost(
        stack: CommonSettings, pg_pool: asyncpg.Pool, billing_worker: RunningWorker, tenant: str) -> None:
    topic = billing_worker.settings.usage_topic
    since = await end_offsets(stack.kafka_bootstrap, topic)
    priced = [event(tenant, occurred_at="2026-11-24T10:15:00Z", app_id="bot", environment="staging",
                    prompt={"name": "greet", "version": "v3"}, usage={"input_tokens": 1000, "output_tokens": 10 * i})
              for i in range(3)]
    chain = event(tenant, span_kind="chain")
    await billing_worker.send(*priced, chain, priced[0])  # priced[0] again: a redelivery bills nothing

    async def billed() -> bool:
        n = await pg_pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant)
        return int(n) == 3

    await wait_for(billed)
    await billing_worker.send(priced[1])  # after its commit: inserts nothing, publishes nothing
    await asyncio.sleep(0.5)

    def mine(record: Any) -> bool:
        return bool(orjson.loads(record.value).get("tenant_id") == tenant)

    records = await collect(stack.kafka_bootstrap, topic, since, until=lambda found: len(found) >= 4, timeout_s=3,
                            keep=mine)
    messages = [UsageMessage.model_validate_json(r.value) for r in records]
    assert sorted(str(m.event_id) for m in messages) == sorted(e["event_id"] for e in priced)
    ledger = {str(r["event_id"]): r["cost_total"] for r in await pg_pool.fetch(
        "SELECT event_id, cost_total FROM usage_ledger WHERE tenant_id = $1", tenant)}
    for message, record in zip(messages, records, strict=True):
        assert record.key == f"{tenant}/bot".encode()
        assert (message.app_id, message.environment, message.model) == ("bot", "staging", "gpt-4o-mini")
        assert (message.prompt_name, message.prompt_version) == ("greet", "v3")
        assert message.input_tokens == 1000 and not message.unpriced
        assert Decimal(message.cost_total or "x") == ledger[str(message.event_id)]
