"""Retention of the trace store: whole day partitions dropped at the longest retention in force, never a
DELETE in them; shorter tenants hidden at read time; hooked into `llmops retention`. The clock is injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from llmops_shared import db, migrations
from llmops_shared.retention import RetentionSettings, run_retention
from llmops_shared.settings import CommonSettings
from llmops_traces import retention
from llmops_traces.settings import TracesSettings
from llmops_traces.spans import span_row
from llmops_traces.store import partitions, spans, tenant_settings
from llmops_traces.store.tenant_settings import TenantSettings
from tests.integration.traces.traces_support import span_event

pytestmark = pytest.mark.integration

WRITER_NOW = datetime(2026, 10, 1, tzinfo=UTC)
"""When the spans were written: their days got partitions of their own."""


@pytest.fixture
async def own_db(stack: CommonSettings) -> asyncpg.Pool:
    """A database of this test's own: retention drops partitions every tenant shares."""
    import uuid

    url = db.with_database(stack.database_url, f"llmops_traces_ret_{uuid.uuid4().hex[:8]}")
    await db.ensure_database(url)
    await migrations.migrate(url)
    pool = await db.create_pool(url, max_size=3)
    yield pool
    await pool.close()
    await db.drop_database(url)


async def _write(pool: asyncpg.Pool, tenant: str, days_ago: int) -> None:
    from llmops_shared.contract import Interaction

    row = span_row(Interaction.model_validate(span_event(tenant, at=WRITER_NOW - timedelta(days=days_ago, hours=-1))),
                   metadata_only=False)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", tenant)
        await partitions.ensure_day_partitions(conn, "trace_spans", [row.occurred_at], now=WRITER_NOW)
        await spans.insert(conn, rows=[row])


async def test_day_partitions_older_than_the_longest_retention_are_dropped(own_db: asyncpg.Pool,
                                                                           stack: CommonSettings) -> None:
    settings = TracesSettings(**stack.model_dump(), retention_days=30, retention_max_days=60)
    for days_ago in (1, 20, 31, 40):
        await _write(own_db, "short", days_ago)
    now = WRITER_NOW
    # 40 days ago is outside the writer's window (32 days): that row went to the default partition.
    assert await own_db.fetchval("SELECT count(*) FROM trace_spans_default") == 1
    dry = await retention.run(own_db, settings, now=now, dry_run=True)
    assert [(o.action, o.target, o.rows) for o in dry if o.table == "trace_spans"] == [
        ("dropped", "trace_spans_2026_08_31", 0), ("deleted", "trace_spans_default", 1)]
    assert await own_db.fetchval("SELECT count(*) FROM trace_spans") == 4  # a dry run changes nothing

    # A tenant that keeps 45 days holds the partitions of 31 and 40 days ago; the default tenant does not see them.
    await _write(own_db, "long", 2)
    await tenant_settings.put(own_db, tenant_id="long", settings=TenantSettings(retention_days=45))
    kept = await retention.run(own_db, settings, now=now)
    assert [o for o in kept if o.action == "dropped" or o.rows] == []
    assert retention.visible_from(settings, None, now) == now - timedelta(days=30)
    assert retention.visible_from(settings, 45, now) == now - timedelta(days=45)
    assert retention.visible_from(settings, 400, now) == now - timedelta(days=60)  # capped at the maximum

    await tenant_settings.put(own_db, tenant_id="long", settings=TenantSettings(retention_days=None))
    outcomes = await retention.run(own_db, settings, now=now)
    assert [o.target for o in outcomes if o.action == "dropped"] == ["trace_spans_2026_08_31"]
    assert await own_db.fetchval("SELECT count(*) FROM trace_spans") == 3
    assert await own_db.fetchval("SELECT to_regclass('trace_spans_2026_08_31')") is None
    assert await own_db.fetchval("SELECT to_regclass('trace_spans_2026_09_11')") is not None


async def test_llmops_retention_runs_the_trace_store_s_retention(own_db: asyncpg.Pool) -> None:
    await _write(own_db, "acme", 31)
    report = await run_retention(own_db, RetentionSettings(), now=WRITER_NOW)
    assert [(o.table, o.action, o.target) for o in report.outcomes if o.table == "trace_spans"] == [
        ("trace_spans", "dropped", "trace_spans_2026_08_31"), ("trace_spans", "deleted", "trace_spans_default")]
    assert await own_db.fetchval("SELECT count(*) FROM trace_spans") == 0
