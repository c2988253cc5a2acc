"""The billing migration on the real Postgres: tables, constraints, partitions, the history guard."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

pytestmark = pytest.mark.integration

TABLES = ("model_prices", "model_price_tiers", "tenant_price_discounts", "usage_events_seen", "usage_ledger",
          "unpriced_models", "usage_hourly", "usage_daily", "budgets", "budget_alerts_sent")

INSERT_ONE = """
    WITH fresh AS (
        INSERT INTO usage_events_seen (tenant_id, event_id, occurred_at) SELECT $3, $1, $2
        WHERE NOT EXISTS (SELECT 1 FROM usage_events_seen WHERE tenant_id = $3 AND event_id = $1)
        ON CONFLICT (tenant_id, event_id, occurred_at) DO NOTHING RETURNING event_id, occurred_at
    )
    INSERT INTO usage_ledger (event_id, occurred_at, tenant_id, app_id, environment, trace_id, span_id,
                              span_kind, status, model, model_key, input_tokens, output_tokens,
                              cost_input, cost_output, cost_total, unpriced, price_version, priced_at)
    SELECT event_id, occurred_at, $3, 'app', 'production', 'tr', 'sp', 'llm', 'ok', 'gpt-4o-mini',
           'gpt-4o-mini', 1, 1, 0.00000015, 0.0000006, 0.00000075, false, 'v1', now()
    FROM fresh
    ON CONFLICT DO NOTHING
    RETURNING event_id
"""


async def test_the_billing_tables_exist(pg_pool: asyncpg.Pool) -> None:
    for table in TABLES:
        assert await pg_pool.fetchval("SELECT to_regclass($1)::text", table) == table
    kind = await pg_pool.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'usage_ledger'")
    assert kind == "p"  # partitioned


async def test_a_ledger_insert_is_idempotent(pg_pool: asyncpg.Pool, tenant: str) -> None:
    event_id, occurred_at = uuid.uuid4(), datetime(2026, 3, 15, 12, tzinfo=UTC)
    async with pg_pool.acquire() as conn:
        await conn.execute("SELECT billing_ensure_ledger_partitions($1::timestamptz[])", [occurred_at])
        first = await conn.fetch(INSERT_ONE, event_id, occurred_at, tenant)
        again = await conn.fetch(INSERT_ONE, event_id, occurred_at, tenant)
        # the same event id at another instant is still the same event: no second row in another month
        await conn.execute("SELECT billing_ensure_ledger_partitions($1::timestamptz[])",
                           [occurred_at + timedelta(days=40)])
        moved = await conn.fetch(INSERT_ONE, event_id, occurred_at + timedelta(days=40), tenant)
        rows = await conn.fetch("SELECT cost_total, tableoid::regclass::text AS part FROM usage_ledger "
                                "WHERE event_id = $1", event_id)
    assert [r["event_id"] for r in first] == [event_id]
    assert again == [] and moved == []
    assert len(rows) == 1 and rows[0]["cost_total"] == Decimal("0.00000075")
    assert rows[0]["part"] == "usage_ledger_2026_03"


async def test_partitions_are_utc_months_created_once(pg_pool: asyncpg.Pool) -> None:
    instants = [datetime(2031, 1, 31, 23, 30, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC),
                datetime(2031, 2, 1, tzinfo=UTC) - timedelta(microseconds=1)]
    assert await pg_pool.fetchval("SELECT billing_ensure_ledger_partitions($1::timestamptz[])", instants) == 1
    assert await pg_pool.fetchval("SELECT billing_ensure_ledger_partitions($1::timestamptz[])", instants) == 0
    bound = await pg_pool.fetchval("SELECT pg_get_expr(relpartbound, oid) FROM pg_class "
                                   "WHERE relname = 'usage_ledger_2031_01'")
    assert "2031-01-01 00:00:00+00" in bound and "2031-02-01 00:00:00+00" in bound


async def test_money_round_trips_exactly(pg_pool: asyncpg.Pool) -> None:
    value = Decimal("0.00000000000000000075")  # 20 places
    assert await pg_pool.fetchval("SELECT $1::numeric(38,20)", value) == value


async def test_price_history_cannot_be_rewritten(pg_pool: asyncpg.Pool) -> None:
    key = f"model-{uuid.uuid4().hex[:8]}"
    insert = ("INSERT INTO model_prices (provider, model, model_key, effective_from, input_per_token, "
              "output_per_token, source, price_version) VALUES ('openai', $1, $1, $2, 0.000001, 0.000002, "
              "'test', $3) RETURNING id")
    past = await pg_pool.fetchval(insert, key, datetime(2025, 1, 1, tzinfo=UTC), f"{key}@past")
    future = await pg_pool.fetchval(insert, key, datetime(2099, 1, 1, tzinfo=UTC), f"{key}@future")
    with pytest.raises(asyncpg.UniqueViolationError):  # one list row per model, provider and instant
        await pg_pool.fetchval(insert, key, datetime(2025, 1, 1, tzinfo=UTC), f"{key}@again")
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="cannot be edited"):
        await pg_pool.execute("UPDATE model_prices SET input_per_token = 0 WHERE id = $1", past)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="already in force"):
        await pg_pool.execute("DELETE FROM model_prices WHERE id = $1", past)
    await pg_pool.execute("UPDATE model_prices SET effective_until = '2026-01-01Z' WHERE id = $1", past)
    await pg_pool.execute("DELETE FROM model_prices WHERE id = $1", future)
    assert await pg_pool.fetchval("SELECT count(*) FROM model_prices WHERE model_key = $1", key) == 1


async def test_each_budget_threshold_alerts_once_per_period(pg_pool: asyncpg.Pool, tenant: str) -> None:
    await pg_pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1)", tenant)
    budget = await pg_pool.fetchval(
        "INSERT INTO budgets (tenant_id, period, amount) VALUES ($1, 'month', 100) RETURNING id", tenant)
    assert await pg_pool.fetchval("SELECT thresholds FROM budgets WHERE id = $1", budget) == [50, 80, 100]
    send = ("INSERT INTO budget_alerts_sent (budget_id, period_start, threshold, spent, amount) "
            "VALUES ($1, '2026-11-01Z', 80, 81.5, 100) ON CONFLICT DO NOTHING RETURNING threshold")
    assert await pg_pool.fetchval(send, budget) == 80
    assert await pg_pool.fetchval(send, budget) is None
    with pytest.raises(asyncpg.CheckViolationError):
        await pg_pool.execute("INSERT INTO budgets (tenant_id, app_id, period, amount, thresholds) "
                              "VALUES ($1, 'x', 'week', 1, '{50}')", tenant)
    with pytest.raises(asyncpg.CheckViolationError):
        await pg_pool.execute("INSERT INTO budgets (tenant_id, app_id, period, amount, thresholds) "
                              "VALUES ($1, 'y', 'day', 1, '{0}')", tenant)



@pytest.mark.parametrize("table", ["usage_ledger", "usage_events_seen", "usage_hourly", "usage_daily",
                                   "usage_daily_users", "usage_daily_tags", "usage_hourly_totals",
                                   "usage_monthly_users", "usage_hourly_models", "usage_trace_costs",
                                   "billing_usage_outbox", "billing_rollup_pending",
                                   "billing_usage_outbox_batches"])
async def test_no_two_indexes_of_a_table_the_worker_writes_share_a_key(pg_pool: asyncpg.Pool, table: str) -> None:
    """Each index of these tables is written for every billed event (or rollup key): two with the same key
    (and predicate) cost the worker twice for what one serves. billing/0015 dropped
    `usage_ledger_tenant_app_time` (the key of `usage_ledger_tenant_app_costs`), billing/0016 folded
    `usage_trace_costs_cost_by_trace` into that table's primary key."""
    rows = await pg_pool.fetch(
        """SELECT c.relname AS name, (i.indkey::int2[])[0:i.indnkeyatts - 1] AS key,
                  pg_get_expr(i.indpred, i.indrelid) AS predicate
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = $1::regclass""", table)
    assert rows
    keys: dict[tuple[tuple[int, ...], str | None], str] = {}
    for row in rows:
        shape = (tuple(row["key"]), row["predicate"])
        assert shape not in keys, f"{row['name']} has the key of {keys[shape]}"
        keys[shape] = row["name"]


async def test_a_traces_cost_is_read_from_the_trace_costs_key_alone(pg_pool: asyncpg.Pool) -> None:
    """What the trace list reads of `usage_trace_costs` (tenant, trace, a range of days: counts and cost) is
    in its primary key's entries, as it was in the covering index billing/0016 replaced."""
    [definition] = await pg_pool.fetch(
        """SELECT pg_get_indexdef(i.indexrelid) AS sql FROM pg_index i
           WHERE i.indrelid = 'usage_trace_costs'::regclass AND i.indisprimary""")
    assert definition["sql"].endswith("(tenant_id, trace_id, bucket) INCLUDE (event_count, unpriced_count, cost_total)")
