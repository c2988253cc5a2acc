"""`write_batch` on the real Postgres: a batch written twice changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest

from llmops_billing.builtin_prices import builtin_catalogue
from llmops_billing.ledger import LedgerRow, ledger_row, usage_record
from llmops_billing.store.ledger import DEDUPE_DAYS, WriteResult, stage, write_batch
from llmops_shared.contract import Interaction
from tests.support.billing_rollups import rollups_equal_ledger
from tests.support.events import make_event

pytestmark = pytest.mark.integration

PRICED_AT = datetime(2026, 11, 24, tzinfo=UTC)


def rows_for(tenant: str, *events: dict[str, Any]) -> list[LedgerRow]:
    out = []
    for raw in events:
        row = ledger_row(Interaction.model_validate({**raw, "tenant_id": tenant}), builtin_catalogue(),
                         priced_at=PRICED_AT)
        assert row is not None
        out.append(row)
    return out


async def snapshot(conn: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    return {
        "ledger": await conn.fetch("SELECT event_id, cost_total FROM usage_ledger WHERE tenant_id = $1 "
                                   "ORDER BY event_id", tenant),
        "hourly": await conn.fetch("SELECT * FROM usage_hourly WHERE tenant_id = $1 ORDER BY bucket, model_key",
                                   tenant),
        "daily": await conn.fetch("SELECT * FROM usage_daily WHERE tenant_id = $1 ORDER BY bucket, model_key",
                                  tenant),
        "hourly_totals": await conn.fetch("SELECT * FROM usage_hourly_totals WHERE tenant_id = $1 ORDER BY bucket",
                                          tenant),
        "monthly_users": await conn.fetch("SELECT * FROM usage_monthly_users WHERE tenant_id = $1 "
                                          "ORDER BY bucket, user_id", tenant),
        "unpriced": await conn.fetch("SELECT * FROM unpriced_models WHERE tenant_id = $1", tenant),
    }


async def outbox_batch(pool: asyncpg.Pool, batch_id: int) -> list[tuple[str, str]]:
    """The (key, payload) pairs of one `billing_usage_outbox_batches` row, sorted."""
    row = await pool.fetchrow("SELECT msg_keys, payloads FROM billing_usage_outbox_batches WHERE id = $1", batch_id)
    return sorted(zip(row["msg_keys"], row["payloads"], strict=True))


async def write(pool: asyncpg.Pool, rows: list[LedgerRow]) -> WriteResult:
    async with pool.acquire() as conn, conn.transaction():
        return await write_batch(conn, rows=rows)


async def test_writing_the_same_batch_twice_changes_nothing(pg_pool: asyncpg.Pool, tenant: str) -> None:
    rows = rows_for(
        tenant,
        make_event(occurred_at="2026-11-24T10:05:00Z", model="gpt-4o-mini",
                   usage={"input_tokens": 1000, "cache_read_input_tokens": 200, "output_tokens": 50}),
        make_event(occurred_at="2026-11-24T10:45:00Z", model="gpt-4o-mini",
                   usage={"input_tokens": 2000, "output_tokens": 100}),
        make_event(occurred_at="2026-10-31T23:59:59Z", model="claude-3-7-sonnet-20250219", provider="anthropic",
                   usage={"input_tokens": 3000, "cache_write_input_tokens": 1000, "output_tokens": 10},
                   prompt={"name": "triage", "version": "2", "variant": "b"}),
        make_event(occurred_at="2026-11-24T10:50:00Z", model="mystery-model", provider="acme-ai",
                   usage={"input_tokens": 5, "output_tokens": 5}),
    )
    first = await write(pg_pool, rows)
    assert len(first.inserted) == 4
    assert [(u.provider, u.model, u.event_count) for u in first.unalerted_unpriced] == [
        ("acme-ai", "mystery-model", 1)]
    async with pg_pool.acquire() as conn:
        before = await snapshot(conn, tenant)

    second = await write(pg_pool, rows)
    assert second.inserted == () and second.unalerted_unpriced == ()
    async with pg_pool.acquire() as conn:
        after = await snapshot(conn, tenant)
    assert after == before
    await rollups_equal_ledger(pg_pool, tenant)  # every rollup, the narrow ones included

    assert len(before["ledger"]) == 4
    ten = [r for r in before["hourly"] if r["model_key"] == "gpt-4o-mini"]
    assert len(ten) == 1 and ten[0]["event_count"] == 2 and ten[0]["input_tokens"] == 3000
    # 800 * 1.5e-7 + 200 * 7.5e-8 + 50 * 6e-7  +  2000 * 1.5e-7 + 100 * 6e-7
    assert ten[0]["cost_total"] == Decimal("0.000165") + Decimal("0.00036")
    assert ten[0]["bucket"] == datetime(2026, 11, 24, 10, tzinfo=UTC)
    october = [r for r in before["daily"] if r["prompt_name"] == "triage"]
    assert [(r["bucket"].isoformat(), r["prompt_version"], r["prompt_variant"]) for r in october] == [
        ("2026-10-31", "2", "b")]
    mystery = [r for r in before["daily"] if r["model_key"] == "mystery-model"]
    assert mystery[0]["unpriced_count"] == 1 and mystery[0]["cost_total"] == 0 and mystery[0]["input_tokens"] == 5
    assert before["unpriced"][0]["event_count"] == 1


async def test_only_the_new_events_of_a_partly_seen_batch_are_added(pg_pool: asyncpg.Pool, tenant: str) -> None:
    old, new = rows_for(
        tenant,
        make_event(occurred_at="2026-11-24T12:00:00Z", usage={"input_tokens": 100, "output_tokens": 10}),
        make_event(occurred_at="2026-11-24T12:30:00Z", usage={"input_tokens": 200, "output_tokens": 20}),
    )
    await write(pg_pool, [old])
    result = await write(pg_pool, [old, new, new])  # redelivered, new, and a duplicate within the batch
    assert [r.event_id for r in result.inserted] == [new.event_id]
    async with pg_pool.acquire() as conn:
        hourly = await conn.fetchrow("SELECT event_count, input_tokens, cost_total FROM usage_hourly "
                                     "WHERE tenant_id = $1", tenant)
    assert (hourly["event_count"], hourly["input_tokens"]) == (2, 300)
    assert hourly["cost_total"] == (old.cost_total or 0) + (new.cost_total or 0)
    await rollups_equal_ledger(pg_pool, tenant)


async def test_the_ledger_alone_recognises_an_event_sent_again_in_another_month(pg_pool: asyncpg.Pool,
                                                                                 tenant: str) -> None:
    """The ledger is its own dedupe (no `usage_events_seen` row is written, and none is needed): an event it
    holds, sent again with another time in another month partition, before or after, adds nothing."""
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    (first,) = rows_for(tenant, make_event(occurred_at="2026-11-24T10:00:00Z",
                                           usage={"input_tokens": 100, "output_tokens": 10}))
    async with pg_pool.acquire() as conn, conn.transaction():
        assert len((await write_batch(conn, rows=[first], now=now)).inserted) == 1
    # a row written by an older build has its seen row: gone here (as after its month's retention), so only
    # the ledger can recognise the copies below
    await pg_pool.execute("DELETE FROM usage_events_seen WHERE tenant_id = $1", tenant)
    for when in ("2026-10-20T08:00:00Z", "2026-12-02T09:00:00Z", "2026-08-01T00:00:00Z"):
        (again,) = rows_for(tenant, make_event(occurred_at=when, event_id=str(first.event_id),
                                               usage={"input_tokens": 100, "output_tokens": 10}))
        async with pg_pool.acquire() as conn, conn.transaction():
            assert (await write_batch(conn, rows=[again], now=now)).inserted == ()
    assert await pg_pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant) == 1
    assert await pg_pool.fetchval("SELECT sum(event_count) FROM usage_hourly WHERE tenant_id = $1", tenant) == 1
    await rollups_equal_ledger(pg_pool, tenant)


async def test_an_earlier_copy_is_found_up_to_dedupe_days_before_the_event(pg_pool: asyncpg.Pool,
                                                                          tenant: str) -> None:
    """The search for an earlier copy with another time reaches `DEDUPE_DAYS` back (the month partitions
    before that are pruned), in month partitions and in the default partition alike."""
    late = now = datetime(2031, 6, 20, 12, tzinfo=UTC)  # months no other test writes
    earliest = late - timedelta(days=DEDUPE_DAYS)  # 2031-02-20: out of the writer's window, the default partition
    for first_at in (earliest, datetime(2031, 5, 31, 23, 59, tzinfo=UTC)):
        event_id = str(uuid.uuid4())
        (first,) = rows_for(tenant, make_event(occurred_at=first_at.isoformat(), event_id=event_id))
        (again,) = rows_for(tenant, make_event(occurred_at=late.isoformat(), event_id=event_id))
        async with pg_pool.acquire() as conn, conn.transaction():
            assert len((await write_batch(conn, rows=[first], now=now)).inserted) == 1
        async with pg_pool.acquire() as conn, conn.transaction():
            assert (await write_batch(conn, rows=[again], now=now)).inserted == ()
    where = await pg_pool.fetch("SELECT tableoid::regclass::text AS part FROM usage_ledger WHERE tenant_id = $1 "
                                "ORDER BY occurred_at", tenant)
    assert [r["part"] for r in where] == ["usage_ledger_default", "usage_ledger_2031_05"]
    assert await pg_pool.fetchval("SELECT count(*) FROM usage_events_seen WHERE tenant_id = $1", tenant) == 0
    await rollups_equal_ledger(pg_pool, tenant)


async def test_the_daily_and_hourly_totals_regrouped_from_the_hourly_groups_equal_the_ledgers_sums(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    """`usage_daily` and `usage_hourly_totals` are summed from the statement's hourly groups: over many hours
    of two UTC days (one event a second before midnight), two apps, a priced and an unpriced model, and a
    second batch adding to the same rows, each equals the ledger's `GROUP BY` and the day is the UTC day."""
    events = [make_event(occurred_at=f"2026-11-2{3 + i % 2}T{(i * 5) % 24:02d}:{i % 60:02d}:00Z", app_id=f"app-{i % 2}",
                         model="gpt-4o-mini" if i % 3 else "mystery-model", provider="openai" if i % 3 else "acme-ai",
                         usage={"input_tokens": 100 + i, "output_tokens": 10 + i % 7})
              for i in range(40)]
    events.append(make_event(occurred_at="2026-11-23T23:59:59Z", usage={"input_tokens": 9, "output_tokens": 1}))
    rows = rows_for(tenant, *events)
    assert len((await write(pg_pool, rows[:25])).inserted) == 25
    assert len((await write(pg_pool, rows)).inserted) == len(rows) - 25
    await rollups_equal_ledger(pg_pool, tenant)
    days = await pg_pool.fetch("SELECT bucket, sum(event_count) AS n, sum(input_tokens) AS tokens FROM usage_daily "
                               "WHERE tenant_id = $1 GROUP BY bucket ORDER BY bucket", tenant)
    on_23 = [r for r in rows if r.occurred_at.day == 23]
    assert [(r["bucket"].isoformat(), r["n"]) for r in days] == [("2026-11-23", len(on_23)),
                                                                   ("2026-11-24", len(rows) - len(on_23))]
    assert days[0]["tokens"] == sum(r.input_tokens for r in on_23)
    totals = await pg_pool.fetchrow("SELECT count(*) AS hours, sum(event_count) AS n, sum(cost_total) AS cost "
                                    "FROM usage_hourly_totals WHERE tenant_id = $1", tenant)
    assert totals["n"] == len(rows) and totals["hours"] == len({r.occurred_at.replace(minute=0, second=0)
                                                                 for r in rows})
    assert totals["cost"] == sum((r.cost_total or Decimal(0)) for r in rows)


async def test_a_month_partition_the_batch_creates_is_analyzed_with_it(pg_pool: asyncpg.Pool, tenant: str) -> None:
    """The batch that creates a month's partition analyzes it (empty, in its transaction), so the statement's
    probe for earlier copies is planned by the ledger's key there, not by another index of `tenant_id` (which
    an unanalyzed empty partition, taken for ten pages, gets: a scan of the tenant's rows per event)."""
    now = datetime(2032, 9, 15, 12, tzinfo=UTC)  # a month no other test writes
    async with pg_pool.acquire() as conn, conn.transaction():
        assert len((await write_batch(conn, rows=rows_for(tenant, make_event(occurred_at=now.isoformat())),
                                      now=now)).inserted) == 1
    analyzed = await pg_pool.fetchval("SELECT reltuples >= 0 FROM pg_class WHERE relname = 'usage_ledger_2032_09'")
    assert analyzed is True
    unanalyzed = await pg_pool.fetchval(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'usage_ledger'::regclass AND c.relkind = 'r' AND c.reltuples < 0")
    assert unanalyzed == 0


async def test_a_batch_rolls_back_with_the_callers_transaction(pg_pool: asyncpg.Pool, tenant: str) -> None:
    rows = rows_for(tenant, make_event(occurred_at="2026-11-24T13:00:00Z"))

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with pg_pool.acquire() as conn, conn.transaction():
            await write_batch(conn, rows=rows)
            raise Boom
    assert len((await write(pg_pool, rows)).inserted) == 1  # nothing was kept by the failed attempt


async def test_write_batch_refuses_to_run_outside_a_transaction(pg_pool: asyncpg.Pool, tenant: str) -> None:
    async with pg_pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="transaction"):
            await write_batch(conn, rows=rows_for(tenant, make_event()))


async def test_two_batches_in_one_transaction_write_each_row_once(pg_pool: asyncpg.Pool, tenant: str) -> None:
    first, second = rows_for(
        tenant,
        make_event(occurred_at="2026-11-24T14:00:00Z", usage={"input_tokens": 100, "output_tokens": 10}),
        make_event(occurred_at="2026-12-01T00:00:00Z", usage={"input_tokens": 200, "output_tokens": 20}),
    )
    async with pg_pool.acquire() as conn, conn.transaction():
        assert [r.event_id for r in (await write_batch(conn, rows=[first])).inserted] == [first.event_id]
        # the staging rows of the first batch are not written again with the second
        assert [r.event_id for r in (await write_batch(conn, rows=[second, first])).inserted] == [second.event_id]
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant) == 2
        assert await conn.fetchval("SELECT sum(event_count) FROM usage_daily WHERE tenant_id = $1", tenant) == 2


async def test_a_connection_writes_again_after_the_batch_that_prepared_it_rolled_back(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    rows = rows_for(tenant, make_event(occurred_at="2026-11-24T15:00:00Z"))
    async with pg_pool.acquire() as conn:  # one connection throughout
        await conn.execute("DROP TABLE IF EXISTS pg_temp.billing_ledger_staging")  # as on a new connection
        with pytest.raises(ZeroDivisionError):
            async with conn.transaction():
                await write_batch(conn, rows=rows)  # creates the staging table, then loses it with the rollback
                _ = 1 / 0
        async with conn.transaction():
            assert len((await write_batch(conn, rows=rows)).inserted) == 1


async def test_money_is_stored_exactly(pg_pool: asyncpg.Pool, tenant: str) -> None:
    (row,) = rows_for(tenant, make_event(occurred_at="2026-11-24T16:00:00Z", model="gpt-4o-mini",
                                         usage={"input_tokens": 7, "cache_read_input_tokens": 3, "output_tokens": 1}))
    await write(pg_pool, [row])
    async with pg_pool.acquire() as conn:
        stored = await conn.fetchrow("SELECT cost_input, cost_cache_read, cost_output, cost_total FROM usage_ledger "
                                     "WHERE event_id = $1", row.event_id)
    assert (stored["cost_input"], stored["cost_cache_read"], stored["cost_output"], stored["cost_total"]) == (
        row.cost_input, row.cost_cache_read, row.cost_output, row.cost_total)
    assert row.cost_total == Decimal("0.000000600") + Decimal("0.000000225") + Decimal("0.0000006")


async def test_a_batch_spanning_200_months_makes_partitions_only_near_the_clock(pg_pool: asyncpg.Pool,
                                                                               tenant: str) -> None:
    """Item 7 of issue 10: 200 events over 200 months made 200 ledger partitions; now the months away from
    the writer's clock go to the default partition, and every event is still in the ledger and its rollups."""
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    months = [datetime(2010 + m // 12, 1 + m % 12, 10, tzinfo=UTC) for m in range(200)]  # 2010-01 .. 2026-08
    months += [datetime(2026, 11, 24, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)]
    before = set(await pg_pool.fetchval("SELECT array_agg(relname::text) FROM pg_class WHERE relname ~ "
                                        "'^usage_ledger_[0-9]{4}_[0-9]{2}$'") or [])
    async with pg_pool.acquire() as conn, conn.transaction():
        rows = rows_for(tenant, *(make_event(occurred_at=m.isoformat()) for m in months))
        result = await write_batch(conn, rows=rows, now=now)
    assert len(result.inserted) == len(months)
    after = set(await pg_pool.fetchval("SELECT array_agg(relname::text) FROM pg_class WHERE relname ~ "
                                       "'^usage_ledger_[0-9]{4}_[0-9]{2}$'"))
    assert after - before <= {"usage_ledger_2026_08", "usage_ledger_2026_11"}  # the months near `now`
    where = dict(await pg_pool.fetch("SELECT tableoid::regclass::text, count(*) FROM usage_ledger WHERE tenant_id = $1 "
                                     "GROUP BY 1", tenant))
    assert where == {"usage_ledger_2026_08": 1, "usage_ledger_2026_11": 1, "usage_ledger_default": 201}
    assert await pg_pool.fetchval("SELECT sum(event_count) FROM usage_daily WHERE tenant_id = $1", tenant) == 203


async def test_the_partition_function_still_creates_a_month_the_default_partition_holds_rows_of(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    far = datetime(2041, 3, 3, tzinfo=UTC)  # no partition near any clock of these tests: the default holds it
    async with pg_pool.acquire() as conn, conn.transaction():
        await write_batch(conn, rows=rows_for(tenant, make_event(occurred_at=far.isoformat())),
                          now=datetime(2026, 11, 24, tzinfo=UTC))
    assert await pg_pool.fetchval("SELECT tableoid::regclass::text FROM usage_ledger WHERE tenant_id = $1",
                                  tenant) == "usage_ledger_default"
    assert await pg_pool.fetchval("SELECT billing_ensure_ledger_partitions($1::timestamptz[])", [far]) == 1
    assert await pg_pool.fetchval("SELECT tableoid::regclass::text FROM usage_ledger WHERE tenant_id = $1",
                                  tenant) == "usage_ledger_2041_03"
    async with pg_pool.acquire() as conn, conn.transaction():  # another event of that month goes there too
        again = await write_batch(conn, rows=rows_for(tenant, make_event(occurred_at=far.isoformat())), now=far)
    assert len(again.inserted) == 1
    assert await pg_pool.fetchval("SELECT count(*) FROM usage_ledger_2041_03 WHERE tenant_id = $1", tenant) == 2



async def test_the_batch_statement_puts_each_inserted_rows_usage_message_in_the_outbox(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    """`usage_outbox=True` (the worker's call): the outbox holds exactly `usage_record(row)` of each inserted
    row, as the worker's separate insert wrote it before; a redelivered row adds nothing; the ledger and the
    rollups are what the same rows give without the outbox (another tenant, same events)."""
    other = f"{tenant}-plain"
    events = [make_event(occurred_at=f"2026-11-24T10:{i:02d}:00Z", app_id=f"app-{i % 2}", user_id=f"user-{i % 3}",
                         tags=["team-a", "alice@example.com"][: i % 3],
                         usage={"input_tokens": 1000 + i, "output_tokens": 10 * i}) for i in range(5)]
    events.append(make_event(occurred_at="2026-11-24T10:50:00Z", model="mystery-model", provider="acme-ai",
                             usage={"input_tokens": 5, "output_tokens": 5}))
    late = make_event(occurred_at="2026-11-24T11:55:00Z", usage={"input_tokens": 7, "output_tokens": 3})
    rows = rows_for(tenant, *events)
    async with pg_pool.acquire() as conn, conn.transaction():
        result = await write_batch(conn, rows=rows, usage_outbox=True)
    assert result.usage == tuple(usage_record(row) for row in rows)
    async with pg_pool.acquire() as conn, conn.transaction():  # redelivered, with one new row
        again = await write_batch(conn, rows=[*rows, *rows_for(tenant, late)], usage_outbox=True)
    assert [row.event_id for row in again.inserted] == [uuid.UUID(late["event_id"])]
    assert again.usage == tuple(usage_record(row) for row in again.inserted)

    # One outbox row per batch (billing/0018): its keys and payloads are the inserted rows' messages.
    assert result.usage_batch is not None and again.usage_batch is not None
    assert await outbox_batch(pg_pool, result.usage_batch) == sorted(
        (usage_record(row).key.decode(), usage_record(row).value.decode()) for row in rows)
    assert await outbox_batch(pg_pool, again.usage_batch) == [
        (usage_record(row).key.decode(), usage_record(row).value.decode()) for row in again.inserted]
    async with pg_pool.acquire() as conn, conn.transaction():  # a batch inserting nothing writes no outbox row
        nothing = await write_batch(conn, rows=rows, usage_outbox=True)
    assert nothing.usage == () and nothing.usage_batch is None
    await pg_pool.execute("DELETE FROM billing_usage_outbox_batches WHERE id = ANY($1::bigint[])",
                          [result.usage_batch, again.usage_batch])

    async with pg_pool.acquire() as conn, conn.transaction():
        plain = await write_batch(conn, rows=rows_for(other, *events, late))
    assert plain.usage == () and plain.usage_batch is None and len(plain.inserted) == 7

    def comparable(snap: dict[str, Any]) -> dict[str, Any]:
        skip = {"tenant_id", "user_id", "updated_at", "first_seen_at", "last_seen_at", "alerted_at"}
        return {name: sorted(tuple((k, v) for k, v in dict(r).items() if k not in skip) for r in records)
                for name, records in snap.items()}

    async with pg_pool.acquire() as conn:
        assert comparable(await snapshot(conn, tenant)) == comparable(await snapshot(conn, other))


async def test_rows_staged_ahead_of_the_transaction_write_what_the_same_rows_write_unstaged(
        pg_pool: asyncpg.Pool, tenant: str) -> None:
    """The worker stages rows in `prepare` (`stage`: the COPY record and usage message); the ledger, the
    rollups, the outbox and the result are what the same events give unstaged (another tenant), a duplicate
    in the batch still counts once, and rows staged for another `usage_outbox` are refused."""
    other = f"{tenant}-unstaged"
    events = [make_event(occurred_at=f"2026-11-24T10:{i:02d}:00Z", app_id=f"app-{i % 2}", user_id=f"user-{i % 3}",
                         tags=["team-a"][: i % 2], usage={"input_tokens": 900 + i, "output_tokens": 7 * i})
              for i in range(6)]
    staged_rows = [stage(row, usage_outbox=True) for row in rows_for(tenant, *events)]
    plain_rows = rows_for(other, *events)
    async with pg_pool.acquire() as conn, conn.transaction():
        staged = await write_batch(conn, rows=[*staged_rows, staged_rows[0]], usage_outbox=True)
    async with pg_pool.acquire() as conn, conn.transaction():
        plain = await write_batch(conn, rows=[*plain_rows, plain_rows[0]], usage_outbox=True)
    assert sorted(r.event_id for r in staged.inserted) == sorted(s.row.event_id for s in staged_rows)
    assert staged.usage == tuple(usage_record(row) for row in staged.inserted)
    assert len(plain.inserted) == len(plain.usage) == 6

    async def outbox(result: WriteResult) -> list[tuple[Any, ...]]:
        assert result.usage_batch is not None
        return sorted((orjson.loads(payload)["event_id"], key.split("/", 1)[1], orjson.loads(payload)["cost_total"])
                      for key, payload in await outbox_batch(pg_pool, result.usage_batch))

    assert await outbox(staged) == await outbox(plain) and len(await outbox(staged)) == 6

    def comparable(snap: dict[str, Any]) -> dict[str, Any]:
        skip = {"tenant_id", "user_id", "updated_at", "first_seen_at", "last_seen_at", "alerted_at"}
        return {name: sorted(tuple((k, v) for k, v in dict(r).items() if k not in skip) for r in records)
                for name, records in snap.items()}

    async with pg_pool.acquire() as conn:
        assert comparable(await snapshot(conn, tenant)) == comparable(await snapshot(conn, other))
        async with conn.transaction():
            with pytest.raises(ValueError, match="usage_outbox"):
                await write_batch(conn, rows=staged_rows, usage_outbox=False)
