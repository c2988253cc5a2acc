"""Alert grouping on real Postgres: fingerprints, the grouping window, idempotent counts, concurrent workers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from llmops_guardrails import alerts_service
from llmops_guardrails.alerts_service import record_occurrences
from llmops_guardrails.screening import Occurrence, fingerprint
from llmops_shared import problems
from llmops_shared.alerts import AlertMessage
from llmops_shared.kafka import KafkaUnavailable

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = 3600


def occ(tenant: str, at: datetime, *, rule: str = "secret-alert", detector: str = "secrets", app: str = "bot",
        severity: str = "critical", policy_severity: str = "high", kinds: tuple[str, ...] = ("github_token",),
        event_id: uuid.UUID | None = None) -> Occurrence:
    return Occurrence(fingerprint=fingerprint(tenant, app, rule, detector), tenant_id=tenant, app_id=app, rule_id=rule,
                      detector=detector, severity=severity, policy_severity=policy_severity, kinds=kinds, findings=1,
                      max_score=0.95, event_id=event_id or uuid.uuid4(), occurred_at=at)


async def record(pg_pool: asyncpg.Pool, found: list[Occurrence]) -> list[AlertMessage]:
    async with pg_pool.acquire() as conn, conn.transaction():
        return await record_occurrences(conn, found, window_s=WINDOW)


async def alerts_of(pg_pool: asyncpg.Pool, tenant: str) -> list[asyncpg.Record]:
    return await pg_pool.fetch("SELECT * FROM guardrail_alerts WHERE tenant_id = $1 ORDER BY created_at", tenant)


async def test_occurrences_group_within_the_window_and_a_quiet_spell_opens_a_new_alert(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    first = await record(pg_pool, [occ(tenant, T0), occ(tenant, T0 + timedelta(minutes=5))])
    assert [(m.status, m.count) for m in first] == [("open", 2)]
    later = await record(pg_pool, [occ(tenant, T0 + timedelta(minutes=50), kinds=("aws_access_key_id",))])
    assert [(m.alert_id, m.status, m.count) for m in later] == [(first[0].alert_id, "open", 3)]
    assert later[0].details["kinds"] == ["github_token", "aws_access_key_id"]

    quiet = await record(pg_pool, [occ(tenant, T0 + timedelta(hours=3))])  # > 1 h after the last one
    assert [(m.status, m.count) for m in quiet] == [("resolved", 3), ("open", 1)]
    assert quiet[0].alert_id == first[0].alert_id and quiet[1].alert_id != first[0].alert_id
    rows = await alerts_of(pg_pool, tenant)
    assert [(r["status"], r["count"], r["resolved_by"]) for r in rows] == [
        ("resolved", 3, "guardrails:window"), ("open", 1, None)]
    old = rows[0]
    assert (old["first_seen"], old["last_seen"]) == (T0, T0 + timedelta(minutes=50))
    assert old["title"] == "secret-alert: github_token, aws_access_key_id in app bot"
    assert old["summary"].startswith("3 event(s) between 2026-03-01T12:00:00+00:00 and 2026-03-01T12:50:00+00:00")


async def test_counts_are_idempotent_even_after_the_alert_was_resolved(pg_pool: asyncpg.Pool, tenant: str) -> None:
    batch = [occ(tenant, T0), occ(tenant, T0 + timedelta(seconds=1))]
    opened = await record(pg_pool, batch)
    again = await record(pg_pool, batch)  # redelivered: the current state is published again, unchanged
    assert [m.message_id for m in again] == [m.message_id for m in opened]

    published: list[AlertMessage] = []

    async def announce(message: AlertMessage) -> None:
        published.append(message)

    await alerts_service.resolve(pool=pg_pool, tenant_id=tenant, alert_id=opened[0].alert_id, by="k1",
                                 announce=announce)
    assert [(m.status, m.count) for m in published] == [("resolved", 2)]
    replayed = await record(pg_pool, batch)  # a replay after the resolution opens nothing, counts nothing
    assert [(m.alert_id, m.status) for m in replayed] == [(opened[0].alert_id, "resolved")]
    assert [(r["status"], r["count"]) for r in await alerts_of(pg_pool, tenant)] == [("resolved", 2)]

    fresh = await record(pg_pool, [occ(tenant, T0 + timedelta(minutes=1))])  # a new occurrence: a new alert
    assert fresh[0].alert_id != opened[0].alert_id and (fresh[0].status, fresh[0].count) == ("open", 1)


async def test_resolving_while_kafka_is_down_changes_nothing(pg_pool: asyncpg.Pool, tenant: str) -> None:
    [opened] = await record(pg_pool, [occ(tenant, T0)])

    async def unavailable(_message: AlertMessage) -> None:
        raise KafkaUnavailable("no broker")

    with pytest.raises(problems.Unavailable) as refused:
        await alerts_service.resolve(pg_pool, tenant_id=tenant, alert_id=opened.alert_id, by="k1",
                                     announce=unavailable)
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "5"}
    assert [r["status"] for r in await alerts_of(pg_pool, tenant)] == ["open"]
    with pytest.raises(problems.NotFound):
        await alerts_service.resolve(pg_pool, tenant_id=f"{tenant}-b", alert_id=opened.alert_id, by="k1",
                                     announce=unavailable)


async def test_fingerprints_separate_apps_rules_and_detectors_and_severity_only_escalates(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    event = uuid.uuid4()
    await record(pg_pool, [
        occ(tenant, T0, event_id=event),
        occ(tenant, T0, event_id=event, rule="prompt-injection", detector="injection", kinds=("prompt_injection",)),
        occ(tenant, T0, app="other"),
        occ(tenant, T0, rule="payment-data-alert", detector="pii", severity="warning", policy_severity="medium",
            kinds=("CREDIT_CARD",)),
    ])
    assert len(await alerts_of(pg_pool, tenant)) == 4
    await record(pg_pool, [occ(tenant, T0, rule="payment-data-alert", detector="pii", severity="critical",
                               policy_severity="critical", kinds=("CREDIT_CARD",)),
                           occ(tenant, T0, rule="payment-data-alert", detector="pii", severity="info",
                               policy_severity="low", kinds=("CREDIT_CARD",))])
    pay = await pg_pool.fetchrow("SELECT * FROM guardrail_alerts WHERE tenant_id = $1 AND rule_id = $2", tenant,
                                 "payment-data-alert")
    assert (pay["count"], pay["severity"], pay["policy_severity"]) == (3, "critical", "critical")


async def test_two_workers_counting_the_same_fingerprint_at_once_share_one_alert(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    batches = [[occ(tenant, T0 + timedelta(seconds=i)) for i in range(20)] for _ in range(4)]
    await asyncio.gather(*(record(pg_pool, b) for b in batches))
    rows = await alerts_of(pg_pool, tenant)
    assert [(r["status"], r["count"]) for r in rows] == [("open", 80)]
