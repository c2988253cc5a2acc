"""`llmops retention` on a database of its own (it drops partitions: never the session's shared one).

Rows are put in months around a fixed "now", in each partitioned table and in the small tables; a dry
run changes nothing and says what a run would do; a run drops whole expired months (never a month a
tenant keeps longer still has rows in), deletes expired rows of the default partitions and of the small
tables, and leaves everything else. The command line says what it dropped.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from llmops_shared import cli, db, migrations
from llmops_shared.clock import utc_now
from llmops_shared.retention import RetentionSettings, run_retention
from llmops_shared.settings import CommonSettings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
MONTHS = [datetime(2026, m, 10, tzinfo=UTC) for m in (3, 5, 6, 7, 8, 9, 10, 11)]  # each gets its partition
ANCIENT = datetime(2001, 1, 1, tzinfo=UTC)  # no partition: the default partition holds it


@pytest_asyncio.fixture
async def scratch(stack: CommonSettings) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    url = db.with_database(stack.database_url, f"llmops_test_retention_{uuid.uuid4().hex[:8]}")
    await db.ensure_database(url)
    await migrations.migrate(url)
    pool = await db.create_pool(url, max_size=3)
    try:
        yield url, pool
    finally:
        await pool.close()
        await db.drop_database(url)


async def fill(pool: asyncpg.Pool, instants: list[datetime]) -> None:
    """One row per instant and tenant (acme, other) in every partitioned table; months get partitions."""
    await pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ('acme', 'a'), ('other', 'o') "
                       "ON CONFLICT DO NOTHING")
    await pool.execute("INSERT INTO evaluators (evaluator_id, tenant_id, config) "
                       "VALUES ('ev', 'acme', '{}'), ('ev', 'other', '{}') ON CONFLICT DO NOTHING")
    alert = uuid.uuid4()
    await pool.execute("""INSERT INTO guardrail_alerts (alert_id, fingerprint, tenant_id, app_id, rule_id, detector,
                              severity, title, first_seen, last_seen)
                          VALUES ($1, $2, 'acme', 'bot', 'r', 'pii', 'warning', 't', $3, $3)""",
                       alert, f"fp-{alert}", NOW)
    for table in ("usage_events_seen", "guardrail_findings", "guardrail_alert_events", "evaluation_results",
                  "usage_ledger"):
        await pool.execute("SELECT llmops_ensure_month_partitions($1, $2::timestamptz[], '2026-01-01Z', '2027-01-01Z')",
                           table, instants)
    for at in instants:
        for tenant in ("acme", "other"):
            event_id = uuid.uuid4()
            await pool.execute("INSERT INTO usage_events_seen (tenant_id, event_id, occurred_at) VALUES ($1, $2, $3)",
                               tenant, event_id, at)
            await pool.execute(
                """INSERT INTO guardrail_findings (event_id, finding_no, tenant_id, app_id, occurred_at, part, detector,
                       entity_type, start_offset, end_offset, score, value_hash)
                   VALUES ($1, 0, $2, 'bot', $3, 'input', 'pii', 'EMAIL', 0, 5, 0.9, 'h')""", event_id, tenant, at)
            await pool.execute("INSERT INTO guardrail_alert_events (alert_id, event_id, fingerprint, occurred_at) "
                               "VALUES ($1, $2, $3, $4)", alert, event_id, f"fp-{alert}", at)
            await pool.execute(
                """INSERT INTO evaluation_results (event_id, evaluator_id, rubric, rubric_version, tenant_id, app_id,
                       occurred_at, status, score, judge_model)
                   VALUES ($1, 'ev', 'relevance', 1, $2, 'bot', $3, 'ok', 0.5, 'j')""", event_id, tenant, at)
    await pool.execute("ANALYZE")  # so that a dropped partition's row estimate is real


async def months_of(pool: asyncpg.Pool, table: str) -> dict[str, int]:
    rows = await pool.fetch(f"SELECT tableoid::regclass::text AS part, count(*) AS n FROM {table} GROUP BY 1")  # noqa: S608
    return {r["part"].removeprefix(f"{table}_"): r["n"] for r in rows}


async def test_a_run_drops_whole_expired_months_keeps_what_a_tenant_keeps_longer_and_says_so(
        scratch: tuple[str, asyncpg.Pool]) -> None:
    _url, pool = scratch
    await fill(pool, [*MONTHS, ANCIENT])
    # the small tables: one expired row and one recent of each
    for at in (NOW - timedelta(days=45), NOW - timedelta(days=2)):
        await pool.execute("""INSERT INTO dead_letters (consumer, topic, partition, "offset", reason, error, created_at)
                              VALUES ('c', 't', 0, $1, 'bad_json', 'x', $2)""", int(at.timestamp()), at)
        for status in ("delivered", "failed"):
            await pool.execute("""INSERT INTO notification_deliveries (message_id, alert_id, fingerprint, tenant_id,
                                      action, status, attempts, created_at)
                                  VALUES ($1, 'a', 'f', 'acme', 'trigger', $2, 1, $3)""", str(uuid.uuid4()), status, at)
    settings = RetentionSettings(usage_events_seen_days=60, guardrail_findings_days=90, guardrail_alert_events_days=90,
                                 evaluation_results_days=120, dead_letters_days=30, notification_deliveries_days=30,
                                 tenant_days={"acme": {"guardrail_findings": 200}})
    before = {t: await months_of(pool, t) for t in ("usage_events_seen", "guardrail_findings",
                                                     "guardrail_alert_events", "evaluation_results", "usage_ledger")}

    dry = await run_retention(pool, settings, now=NOW, dry_run=True)
    assert {t: await months_of(pool, t) for t in before} == before  # a dry run changes nothing
    assert await pool.fetchval("SELECT count(*) FROM dead_letters") == 2

    report = await run_retention(pool, settings, now=NOW)
    assert [(o.table, o.action, o.target) for o in dry.outcomes] == [
        (o.table, o.action, o.target) for o in report.outcomes]
    assert [o.rows for o in dry.outcomes if o.action == "deleted"] == [
        o.rows for o in report.outcomes if o.action == "deleted"]

    # usage_events_seen, 60 days: months that ended before 2026-09-25 go (up to August), the default's 2001 row too
    assert await months_of(pool, "usage_events_seen") == {"2026_09": 2, "2026_10": 2, "2026_11": 2}
    # findings, 90 days (cutoff 2026-08-26): March to July expire, but acme keeps 200 days (cutoff 2026-05-08)
    # and has rows in May, June and July: those months are kept whole; March goes. In the default partition,
    # 2001 is past every retention.
    assert await months_of(pool, "guardrail_findings") == {
        "2026_05": 2, "2026_06": 2, "2026_07": 2, "2026_08": 2, "2026_09": 2, "2026_10": 2, "2026_11": 2}
    assert await months_of(pool, "guardrail_alert_events") == {
        "2026_08": 2, "2026_09": 2, "2026_10": 2, "2026_11": 2}
    assert await months_of(pool, "evaluation_results") == {
        "2026_07": 2, "2026_08": 2, "2026_09": 2, "2026_10": 2, "2026_11": 2}
    assert await pool.fetchval("SELECT count(*) FROM pg_class WHERE relname = 'usage_ledger_2026_03'") == 1  # kept
    assert await pool.fetchval("SELECT count(*) FROM dead_letters") == 1
    statuses = [r["status"] for r in await pool.fetch("SELECT status FROM notification_deliveries ORDER BY 1")]
    assert statuses == ["delivered", "failed", "failed"]  # an old failed delivery is still to be acted on

    lines = [o.line(dry_run=False) for o in report.outcomes]
    assert "usage_events_seen: dropped usage_events_seen_2026_03 (~2 row(s)): [2026-03-01, 2026-04-01) is older " \
           "than 60 days" in lines
    assert any(line.startswith("guardrail_findings: kept guardrail_findings_2026_06: tenant(s) acme keep it longer")
               for line in lines)
    assert "usage_events_seen: deleted usage_events_seen_default (2 row(s)): rows older than 60 days" in lines
    assert "dead_letters: deleted rows older than 30 days (1 row(s))" in lines
    assert "notification_deliveries: deleted rows older than 30 days (1 row(s))" in lines
    # the default partitions are still there, and the tables still take rows of dropped months
    await pool.execute("INSERT INTO usage_events_seen (tenant_id, event_id, occurred_at) "
                       "VALUES ('acme', $1, '2026-03-03Z')", uuid.uuid4())
    assert (await months_of(pool, "usage_events_seen"))["default"] == 1

    again = await run_retention(pool, settings, now=NOW)  # nothing more to do
    assert again.dropped == [] and again.rows_deleted == 1  # the row just put in an expired month


async def test_the_command_says_what_it_dropped(scratch: tuple[str, asyncpg.Pool],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url, pool = scratch
    old = utc_now() - timedelta(days=200)  # the command's clock is the wall clock: rows relative to it
    await pool.execute("SELECT llmops_ensure_month_partitions('usage_events_seen', $1::timestamptz[], "
                       "'-infinity', 'infinity')", [old])
    await pool.execute("INSERT INTO usage_events_seen (tenant_id, event_id, occurred_at) VALUES ('acme', $1, $2)",
                       uuid.uuid4(), old)
    name = f"usage_events_seen_{old:%Y_%m}"
    monkeypatch.setenv("LLMOPS_DATABASE_URL", url)

    def run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        with redirect_stdout(out):
            code = cli.main(["retention", *argv])
        return code, out.getvalue()

    code, text = await asyncio.to_thread(run, "--dry-run")
    assert code == 0 and f"usage_events_seen: would drop {name}" in text
    assert "would drop 1 partition(s)" in text
    assert await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
    code, text = await asyncio.to_thread(run)
    assert code == 0 and f"usage_events_seen: dropped {name}" in text and "dropped 1 partition(s)" in text
    assert not await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
