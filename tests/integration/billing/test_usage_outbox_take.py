"""Taking rows from `billing_usage_outbox` (the relay's pending rows: since billing/0018 the worker's batch is
one row of `billing_usage_outbox_batches`, taken by its id) reads each row about once, whatever the table's
statistics.

An outbox is empty most of the time, so autovacuum usually last saw it empty: `reltuples` 0 over pages that
are not. With those statistics the former take (`DELETE ... USING (SELECT ... FOR UPDATE SKIP LOCKED) c`) was
planned as a nested loop that ran the locking subquery again for every outbox row: 2,000 rows read 2,000
times, 2 s for one batch and past the pool's 30 s command timeout under a backlog (the worker then left its
messages to the relay and stalled its batches: the stalls of the billing profile and of `billing4`).

The work is counted, not timed: the statement `take` runs is explained (`EXPLAIN ANALYZE`, same arguments,
rolled back) and the rows every plan node produced, times its loops, are summed. The table is a copy in a
schema of the test's own (same columns, keys and indexes), so neither the statistics nor the rows taken
depend on what other tests left in the real outbox.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from llmops_billing.ledger import UsageRecord
from llmops_billing.store import usage_outbox

pytestmark = pytest.mark.integration

N = 1_500


class Recorder:
    """A connection that records the statement it is asked to fetch, and runs it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        self.calls.append((sql, args))
        return await self.conn.fetch(sql, *args)


def rows_produced(node: dict[str, Any]) -> int:
    """Rows every node of the plan produced, times its loops (an InitPlan's and a subquery's included)."""
    return (int(node["Actual Rows"]) * int(node["Actual Loops"])
            + sum(rows_produced(child) for child in node.get("Plans", [])))


@pytest.mark.parametrize("which", ["take_pending"])  # the relay's (the worker takes its batch's row by id: 0018)
async def test_a_take_reads_each_row_about_once_when_the_statistics_say_the_outbox_is_empty(
        pg_pool: asyncpg.Pool, tenant: str, which: str) -> None:
    schema = f"outbox_take_{uuid.uuid4().hex}"
    async with pg_pool.acquire() as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"CREATE TABLE {schema}.billing_usage_outbox "
                           "(LIKE public.billing_usage_outbox INCLUDING ALL)")
        await conn.execute(f"SET search_path = {schema}, public")
        try:
            produced = await rows_produced_by_a_take(conn, tenant, which)
        finally:
            await conn.execute("RESET search_path")
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    assert produced <= 20 * N, produced  # the former plan: ~N * N


async def rows_produced_by_a_take(conn: asyncpg.Connection, tenant: str, which: str) -> int:
    """Fill the outbox, empty it, have autovacuum's statistics say it is empty, add N rows, take them."""
    await conn.execute(
        "INSERT INTO billing_usage_outbox (tenant_id, event_id, msg_key, payload) "
        "SELECT $1, gen_random_uuid(), 'k', repeat('x', 300) FROM generate_series(1, 5000)", tenant)
    await conn.execute("DELETE FROM billing_usage_outbox WHERE tenant_id = $1", tenant)
    await conn.execute("VACUUM (TRUNCATE false, ANALYZE) billing_usage_outbox")
    assert await conn.fetchval("SELECT reltuples FROM pg_class WHERE oid = 'billing_usage_outbox'::regclass") == 0

    messages = [UsageRecord(tenant, uuid.uuid4(), b"k", f"payload {i}".encode()) for i in range(N)]
    await conn.execute(
        "INSERT INTO billing_usage_outbox (tenant_id, event_id, msg_key, payload) "
        "SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[])",
        [m.tenant_id for m in messages], [m.event_id for m in messages], ["k"] * N,
        [m.value.decode() for m in messages])
    recorder = Recorder(conn)
    tx = conn.transaction()
    await tx.start()
    try:
        assert which == "take_pending"
        taken = await usage_outbox.take_pending(recorder, min_age_s=0.0, limit=N)  # type: ignore[arg-type]
    finally:
        await tx.rollback()
    assert sorted(r["payload"] for r in taken) == sorted(m.value.decode() for m in messages)
    [(sql, args)] = recorder.calls
    tx = conn.transaction()
    await tx.start()
    try:
        [plan] = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args))
    finally:
        await tx.rollback()
    return rows_produced(plan["Plan"])
