"""`store.findings.insert_findings` stores exactly the rows it is given, every column, whatever the order and mix of
events (it sends each run of one event's rows with the event's columns once: `split_rows`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from llmops_guardrails.screening import FindingRow
from llmops_guardrails.store.findings import insert_findings
from llmops_shared.clock import utc_now

pytestmark = pytest.mark.integration

COLUMNS = ("event_id, finding_no, tenant_id, app_id, occurred_at, message_index, part, role, detector, entity_type, "
           "rule_id, start_offset, end_offset, score, value_hash, policy_version")


def rows_of(tenant: str) -> list[FindingRow]:
    recent, old = utc_now() - timedelta(days=1), datetime(2019, 5, 5, 12, 30, 1, 123456, tzinfo=UTC)
    shared_id, other = uuid.uuid4(), uuid.uuid4()
    rows: list[FindingRow] = []
    # the same event id under two tenants, two months, an event whose rows come in two runs, None columns
    for event_id, ten, app, at, version, numbers in (
            (shared_id, tenant, "bot", recent, "t1", range(3)),
            (shared_id, f"{tenant}-b", "bot/eu", recent, "t2", range(2)),
            (other, tenant, "bot", old, "default", range(1)),
            (shared_id, tenant, "bot", recent, "t1", range(3, 5))):
        for n in numbers:
            rows.append((event_id, n, ten, app, at, None if n % 2 else n, "input" if n % 3 else "output",
                         None if n == 4 else "user", "pii", f"KIND_{n}", None if n == 1 else f"rule-{n}", n, n + 7,
                         0.5 + n / 10, f"hash-{n}-{ten}", version))
    return rows


async def test_every_row_is_stored_as_given_and_only_once(pg_pool: asyncpg.Pool, tenant: str) -> None:
    rows = rows_of(tenant)
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await insert_findings(conn, rows=rows) == len(rows)
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await insert_findings(conn, rows=rows) == 0
        assert await insert_findings(conn, rows=rows[2:5]) == 0
    stored = await pg_pool.fetch(f"SELECT {COLUMNS} FROM guardrail_findings WHERE tenant_id = ANY($1)",  # noqa: S608
                                 [tenant, f"{tenant}-b"])
    assert sorted(tuple(r) for r in stored) == sorted(rows)
