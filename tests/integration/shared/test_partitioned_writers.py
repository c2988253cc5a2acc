"""The writers of the partitioned tables are still idempotent (issue 10, item 9).

A partitioned table's unique keys must include its partition key, so `occurred_at` joined the keys of
`usage_events_seen` (since billing10 the ledger's own key is billing's dedupe), `guardrail_findings`,
`guardrail_alert_events` and `evaluation_results`, and the writers' ON CONFLICT targets with it. Each writer
is run twice on the same rows here, in a month with a partition of its own and in one that lands in the
default partition: the second run writes nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from llmops_billing.builtin_prices import builtin_catalogue
from llmops_billing.ledger import LedgerRow, ledger_row
from llmops_billing.store.ledger import write_batch
from llmops_evaluator.evaluations import Evaluation
from llmops_evaluator.judge_client import JudgeResult, JudgeStatus
from llmops_evaluator.result_store import result_row, upsert_results
from llmops_evaluator.rubrics import BUILTIN
from llmops_guardrails.store import alerts as alert_store
from llmops_guardrails.store.findings import insert_findings
from llmops_shared.clock import utc_now
from llmops_shared.contract import Interaction
from tests.support.events import make_event

pytestmark = pytest.mark.integration

RELEVANCE = BUILTIN["relevance@1"]


def instants() -> tuple[datetime, datetime]:
    """One instant in a month with a partition of its own (near the clock), one in the default partition."""
    return utc_now() - timedelta(days=1), datetime(2019, 5, 5, tzinfo=UTC)


async def parts(pool: asyncpg.Pool, table: str, column: str, values: list[Any]) -> list[str]:
    rows = await pool.fetch(f"SELECT tableoid::regclass::text AS part FROM {table} "  # noqa: S608
                            f"WHERE {column} = ANY($1) ORDER BY occurred_at DESC", values)
    return [r["part"] for r in rows]


async def test_findings_are_written_once(pg_pool: asyncpg.Pool, tenant: str) -> None:
    recent, old = instants()
    rows = [(uuid.uuid4(), n, tenant, "bot", at, None, "input", "user", "pii", "EMAIL_ADDRESS", None, 0, 5, 0.9,
             "hash", "1") for at in (recent, old) for n in range(2)]
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await insert_findings(conn, rows=rows) == 4
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await insert_findings(conn, rows=rows) == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM guardrail_findings WHERE tenant_id = $1", tenant) == 4
    assert await parts(pg_pool, "guardrail_findings", "tenant_id", [tenant]) == [
        f"guardrail_findings_{recent:%Y_%m}"] * 2 + ["guardrail_findings_default"] * 2


async def test_alert_events_are_counted_once(pg_pool: asyncpg.Pool, tenant: str) -> None:
    recent, old = instants()
    alert_id, fingerprint = uuid.uuid4(), f"{tenant}/bot/rule/pii"
    events = [uuid.uuid4(), uuid.uuid4()]
    async with pg_pool.acquire() as conn, conn.transaction():
        await alert_store.open_alert(conn, alert_id=alert_id, fingerprint=fingerprint, tenant_id=tenant, app_id="bot",
                                     rule_id="rule", detector="pii", severity="warning", policy_severity="medium",
                                     kinds=["EMAIL_ADDRESS"], title="t", first_seen=old, last_seen=recent)
        new = await alert_store.count_events(conn, alert_id=alert_id, fingerprint=fingerprint, event_ids=events,
                                             occurred_at=[recent, old])
    assert new == set(events)
    async with pg_pool.acquire() as conn, conn.transaction():
        again = await alert_store.count_events(conn, alert_id=alert_id, fingerprint=fingerprint, event_ids=events,
                                               occurred_at=[recent, old])
        counted = await alert_store.counted_events(conn, fingerprints=[fingerprint] * 2, event_ids=events)
    assert again == set() and {r["event_id"] for r in counted} == set(events)
    assert await parts(pg_pool, "guardrail_alert_events", "event_id", events) == [
        f"guardrail_alert_events_{recent:%Y_%m}", "guardrail_alert_events_default"]


async def test_judgments_are_upserted_once_and_an_ok_row_is_never_replaced(pg_pool: asyncpg.Pool, tenant: str) -> None:
    recent, old = instants()
    evaluator_id = f"ev-{uuid.uuid4().hex[:8]}"
    await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
    await pg_pool.execute("INSERT INTO evaluators (evaluator_id, tenant_id, config) VALUES ($1, $2, '{}')",
                          evaluator_id, tenant)

    def rows(status: JudgeStatus) -> list[Any]:
        out = []
        for event_id, at in ((ids[0], recent), (ids[1], old)):
            event = Interaction.model_validate({**make_event(event_id=str(event_id), occurred_at=at.isoformat()),
                                                "tenant_id": tenant})
            fields: dict[str, Any] = ({"score": 1.0, "raw_score": 5, "label": "relevant", "reasoning": "fine"}
                                      if status is JudgeStatus.OK else {"error_type": "http_500", "error": "down"})
            result = JudgeResult(status=status, rubric=RELEVANCE.ref, judge_model="gpt-4o-mini", **fields)
            out.append(result_row(Evaluation(event, evaluator_id, RELEVANCE, result)))
        return out

    ids = [uuid.uuid4(), uuid.uuid4()]
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await upsert_results(conn, rows(JudgeStatus.ERROR)) == 2
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await upsert_results(conn, rows(JudgeStatus.OK)) == 2  # a retry fixes error rows
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await upsert_results(conn, rows(JudgeStatus.OK)) == 0  # a redelivery changes nothing
        assert await upsert_results(conn, rows(JudgeStatus.ERROR)) == 0  # an ok row is never replaced
    stored = await pg_pool.fetch("SELECT status FROM evaluation_results WHERE evaluator_id = $1", evaluator_id)
    assert [r["status"] for r in stored] == ["ok", "ok"]
    assert await parts(pg_pool, "evaluation_results", "event_id", ids) == [
        f"evaluation_results_{recent:%Y_%m}", "evaluation_results_default"]


def ledger_rows(tenant: str, *events: dict[str, Any]) -> list[LedgerRow]:
    out = []
    for raw in events:
        row = ledger_row(Interaction.model_validate({**raw, "tenant_id": tenant}), builtin_catalogue(),
                         priced_at=datetime(2026, 11, 24, tzinfo=UTC))
        assert row is not None
        out.append(row)
    return out


async def test_the_ledger_counts_an_event_once_whatever_its_month_and_even_sent_again_with_another_time(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    recent, old = instants()
    events = [make_event(occurred_at=at.isoformat()) for at in (recent, old)]
    retimed = [{**e, "occurred_at": (datetime.fromisoformat(e["occurred_at"]) + timedelta(days=40)).isoformat()}
               for e in events]  # the same event ids, another month: still the same events
    for batch, expected in ((events, 2), (events, 0), (retimed, 0)):
        async with pg_pool.acquire() as conn, conn.transaction():
            result = await write_batch(conn, rows=ledger_rows(tenant, *batch))
        assert len(result.inserted) == expected
    ids = [uuid.UUID(e["event_id"]) for e in events]
    assert await pg_pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant) == 2
    assert await pg_pool.fetchval("SELECT sum(event_count) FROM usage_daily WHERE tenant_id = $1", tenant) == 2
    assert await parts(pg_pool, "usage_ledger", "event_id", ids) == [f"usage_ledger_{recent:%Y_%m}",
                                                                     "usage_ledger_default"]
    # the ledger is its own dedupe (billing10): `usage_events_seen` is no longer written
    assert await parts(pg_pool, "usage_events_seen", "event_id", ids) == []

