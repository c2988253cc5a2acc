"""An event id is its tenant's own (issue 11, item 5), in guardrails, on real Kafka and Postgres.

Two tenants' events with the same `event_id` are two events: each is scanned, its findings stored and its
alert counted once, for its own tenant, whether they come in one batch or in two; neither tenant can make
the other's event count as already seen. A redelivered copy of one tenant's event still counts once.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson
import pytest

from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.worker import GuardrailsWorker
from llmops_shared.contract import decode_interaction
from llmops_shared.settings import CommonSettings
from llmops_shared.worker import Message
from tests.integration.guardrails.conftest import Pipeline, pipeline_settings, wait_until
from tests.integration.guardrails.guardrails_support import luhn_card
from tests.support.events import collect, end_offsets, make_event

pytestmark = pytest.mark.integration


def card_event(tenant: str, event_id: uuid.UUID) -> dict[str, Any]:
    """An event with one card number: one finding, counted into the tenant's payment-data alert."""
    return {**make_event(event_id=str(event_id), input=[{"role": "user", "content": f"my card is {luhn_card()}"}]),
            "tenant_id": tenant}


async def stored(pool: asyncpg.Pool, tenant: str) -> tuple[list[uuid.UUID], dict[str, int]]:
    """The event ids of the tenant's findings (one per finding), and its alerts' counts by rule."""
    findings = await pool.fetch("SELECT event_id FROM guardrail_findings WHERE tenant_id = $1 ORDER BY 1", tenant)
    alerts = await pool.fetch("SELECT rule_id, count FROM guardrail_alerts WHERE tenant_id = $1", tenant)
    return [r["event_id"] for r in findings], {r["rule_id"]: r["count"] for r in alerts}


async def test_two_tenants_events_with_one_id_are_each_stored_and_counted_once_through_the_worker(
        guardrails_pipeline: Pipeline, pg_pool: asyncpg.Pool, tenant: str) -> None:
    """Tenant A's event, tenant B's with the same id, A's again (a redelivery), then a last event of B's;
    all on one partition, in this order, so when the last one is counted the others were read."""
    p = guardrails_pipeline
    other = f"{tenant}-b"
    shared, last = uuid.uuid4(), uuid.uuid4()
    a, b = card_event(tenant, shared), card_event(other, shared)
    clean_since = await end_offsets(p.settings.kafka_bootstrap, p.settings.clean_topic)
    await p.send(a, b, a, card_event(other, last), key=b"one-partition")

    async def last_counted() -> bool:
        return bool(await pg_pool.fetchval("SELECT count(*) FROM guardrail_alert_events e JOIN guardrail_alerts a "
                                           "USING (alert_id) WHERE a.tenant_id = $1 AND e.event_id = $2", other, last))

    await wait_until(last_counted, what="the last event counted")
    p.check_alive()
    assert await stored(pg_pool, tenant) == ([shared], {"payment-data-alert": 1})
    assert await stored(pg_pool, other) == (sorted([shared, last]), {"payment-data-alert": 2})

    # Each tenant's copy reaches the clean topic, redacted for its own tenant.
    records = await collect(p.settings.kafka_bootstrap, p.settings.clean_topic, clean_since,
                            keep=lambda r: orjson.loads(r.value)["event_id"] == str(shared),
                            until=lambda found: {orjson.loads(r.value)["tenant_id"] for r in found} >= {tenant, other})
    assert {orjson.loads(r.value)["tenant_id"] for r in records} == {tenant, other}


async def test_in_one_batch_each_tenants_copy_is_scanned_stored_and_counted_once_and_redelivery_changes_nothing(
        stack: CommonSettings, pg_pool: asyncpg.Pool, guardrails_engine: PolicyEngine, tenant: str) -> None:
    """One batch holding A's event, B's with the same id and A's again; then the same batch again."""
    settings = pipeline_settings(stack, uuid.uuid4().hex[:8])
    handler = GuardrailsWorker(settings, engine=guardrails_engine)
    other = f"{tenant}-b"
    shared = uuid.uuid4()
    a, b = card_event(tenant, shared), card_event(other, shared)
    items = [(Message(settings.raw_topic, 0, n, None, orjson.dumps(e), 0), decode_interaction(orjson.dumps(e)))
             for n, e in enumerate([a, b, a])]
    for _ in range(2):  # the second time: a redelivery
        async with pg_pool.acquire() as conn, conn.transaction():
            out = await handler.write(conn, items)
        clean = [orjson.loads(o.value) for o in out if o.topic == settings.clean_topic]
        assert sorted((c["tenant_id"], c["event_id"]) for c in clean) == sorted([(tenant, str(shared)),
                                                                                 (other, str(shared))])
        alerts = [orjson.loads(o.value) for o in out if o.topic == settings.alerts_topic]
        assert sorted((m["tenant_id"], m["count"]) for m in alerts) == sorted([(tenant, 1), (other, 1)])
        assert await stored(pg_pool, tenant) == ([shared], {"payment-data-alert": 1})
        assert await stored(pg_pool, other) == ([shared], {"payment-data-alert": 1})
