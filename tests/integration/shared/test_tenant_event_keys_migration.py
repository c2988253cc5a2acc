"""Migrations billing/0006 and guardrails/0012 on a database that already holds rows (issue 11, item 5).

A database migrated up to just before them, with rows in month partitions and in the default partitions,
then migrated again: `usage_events_seen` rows take their tenant from their ledger rows (a row without one
names no tenant and goes), every row is kept where it was, and the keys of `usage_events_seen`,
`usage_ledger` and `guardrail_findings` (on every partition) include the tenant: another tenant's row with
the same event id now fits, the same tenant's still conflicts.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from llmops_shared import db, migrations
from llmops_shared.settings import CommonSettings

pytestmark = pytest.mark.integration

OURS = ("billing/0006_tenant_event_keys.sql", "guardrails/0012_tenant_event_keys.sql")
RECENT, OLD = datetime(2026, 11, 24, 12, tzinfo=UTC), datetime(2019, 5, 5, tzinfo=UTC)  # a month partition; default

LEDGER = """INSERT INTO usage_ledger (event_id, occurred_at, tenant_id, app_id, environment, trace_id, span_id,
                                      span_kind, status, unpriced, unpriced_reason, priced_at)
            VALUES ($1, $2, $3, 'bot', 'test', 'tr', 'sp', 'llm', 'ok', true, 'no_usage', $2)"""
FINDING = """INSERT INTO guardrail_findings (event_id, finding_no, tenant_id, app_id, occurred_at, part, detector,
                                             entity_type, start_offset, end_offset, score, value_hash)
             VALUES ($1, 0, $2, 'bot', $3, 'input', 'pii', 'EMAIL', 0, 5, 0.9, 'h')"""


async def test_the_migrations_scope_existing_rows_by_tenant_on_every_partition(
        stack: CommonSettings, tmp_path: Path) -> None:
    source = migrations.default_migrations_dir()
    shutil.copytree(source, tmp_path / "migrations")
    held_back = [(component, path.name) for component, name in (o.split("/") for o in OURS)
                 for path in (source / component).glob("*.sql") if path.name >= name]
    for component, file in held_back:
        (tmp_path / "migrations" / component / file).unlink()
    url = db.with_database(stack.database_url, f"llmops_test_keys_{uuid.uuid4().hex[:8]}")
    await db.ensure_database(url)
    try:
        await migrations.migrate(url, tmp_path / "migrations")
        acme, globex, orphan = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        conn = await asyncpg.connect(url)
        try:
            for table in ("usage_ledger", "usage_events_seen", "guardrail_findings"):
                await conn.execute("SELECT llmops_ensure_month_partitions($1, $2::timestamptz[], '-infinity', "
                                   "'infinity')", table, [RECENT])
            for event_id, tenant, at in ((acme, "acme", RECENT), (globex, "globex", OLD)):
                await conn.execute(LEDGER, event_id, at, tenant)
                await conn.execute("INSERT INTO usage_events_seen (event_id, occurred_at) VALUES ($1, $2)",
                                   event_id, at)
                await conn.execute(FINDING, event_id, tenant, at)
            # a seen event whose ledger row is gone (its month dropped by a ledger retention): no tenant to give it
            await conn.execute("INSERT INTO usage_events_seen (event_id, occurred_at) VALUES ($1, $2)", orphan, OLD)
            ledger_before = [dict(r) for r in await conn.fetch("SELECT * FROM usage_ledger ORDER BY event_id")]
            findings_before = [dict(r) for r in await conn.fetch("SELECT * FROM guardrail_findings ORDER BY event_id")]
        finally:
            await conn.close()

        for name in OURS:
            shutil.copy(source / name, tmp_path / "migrations" / name)
        applied = await migrations.migrate(url, tmp_path / "migrations")
        assert sorted(f"{m.component}/{m.version}_{m.name}.sql" for m in applied) == sorted(OURS)

        conn = await asyncpg.connect(url)
        try:
            seen = await conn.fetch("SELECT tenant_id, event_id, occurred_at, tableoid::regclass::text AS part "
                                    "FROM usage_events_seen ORDER BY tenant_id")
            assert [tuple(r) for r in seen] == [("acme", acme, RECENT, "usage_events_seen_2026_11"),
                                                ("globex", globex, OLD, "usage_events_seen_default")]
            assert [dict(r) for r in await conn.fetch("SELECT * FROM usage_ledger ORDER BY event_id")] == ledger_before
            assert [dict(r) for r in await conn.fetch(
                "SELECT * FROM guardrail_findings ORDER BY event_id")] == findings_before

            keys = {table: await conn.fetchval(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'",
                table) for table in ("usage_events_seen", "usage_ledger", "guardrail_findings")}
            assert keys == {"usage_events_seen": "PRIMARY KEY (tenant_id, event_id, occurred_at)",
                            "usage_ledger": "PRIMARY KEY (tenant_id, event_id, occurred_at)",
                            "guardrail_findings": "PRIMARY KEY (tenant_id, event_id, finding_no, occurred_at)"}
            # On every partition: another tenant's row with the same id fits, the same tenant's conflicts.
            for event_id, tenant, at in ((acme, "acme", RECENT), (globex, "globex", OLD)):
                await conn.execute(LEDGER, event_id, at, "initech")
                await conn.execute("INSERT INTO usage_events_seen (tenant_id, event_id, occurred_at) "
                                   "VALUES ('initech', $1, $2)", event_id, at)
                await conn.execute(FINDING, event_id, "initech", at)
                with pytest.raises(asyncpg.UniqueViolationError):
                    await conn.execute(LEDGER, event_id, at, tenant)
                with pytest.raises(asyncpg.UniqueViolationError):
                    await conn.execute("INSERT INTO usage_events_seen (tenant_id, event_id, occurred_at) "
                                       "VALUES ($1, $2, $3)", tenant, event_id, at)
                with pytest.raises(asyncpg.UniqueViolationError):
                    await conn.execute(FINDING, event_id, tenant, at)
        finally:
            await conn.close()
    finally:
        await db.drop_database(url)
