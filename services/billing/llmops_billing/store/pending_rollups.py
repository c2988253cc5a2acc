"""`billing_rollup_pending`: the per-event rollups' share of committed batches, until the follower adds it.

`usage_daily_users` and `usage_trace_costs` get about one row per billed event (a day's user x app x model,
a trace), so upserting them in the batch statement was ~40% of it. The worker's batch statement
(`store.ledger.write_batch(..., pending_rollups=True)`) instead puts the fields those two rollups need of
every row it inserted into ONE pending row (`PENDING_FROM_INSERTED`), in the batch's transaction. `apply`
takes pending rows (the oldest first, skipping rows another transaction holds), adds them to the two
rollups (grouped over all the rows taken: keys that repeat across batches are upserted once) and deletes
them, in ONE statement and so in one transaction: a pending row is added exactly once, whatever crashes
when. Rollup rows are upserted in key order, one table after the other, as the batch statement and
re-pricing do; re-pricing's differences are additive, so they commute with rows still pending.
"""

from __future__ import annotations

import asyncpg

from llmops_billing.ledger import COST_COLUMNS, TOKEN_COLUMNS
from llmops_billing.store.rollups import TRACES_KEY, USER_KEY, rollup_from_inserted

ITEM_FIELDS = ("tenant_id", "occurred_at", "trace_id", "user_id", "app_id", "environment", "provider", "model_key",
               "unpriced", *TOKEN_COLUMNS, *COST_COLUMNS)  # the fields of `billing_rollup_item` (billing/0017)
ROLLUPS = ("usage_daily_users", "usage_trace_costs")  # the rollups the follower keeps

_DAY_OF = "(occurred_at AT TIME ZONE 'UTC')::date"

# A CTE body for the batch statement, over its `inserted` rows: nothing when none was inserted.
PENDING_FROM_INSERTED = f"""INSERT INTO billing_rollup_pending (items)
            SELECT array_agg(ROW({", ".join(ITEM_FIELDS)})::billing_rollup_item) FROM inserted
            HAVING count(*) > 0"""  # noqa: S608  (constant names)


def _apply_sql(lock: str) -> str:
    # The pending rows are taken by primary key (an InitPlan, run once), never through a join that could be
    # planned as a nested loop over the locking subquery (store.usage_outbox explains that trap).
    return f"""
        WITH taken AS (
            DELETE FROM billing_rollup_pending
            WHERE id = ANY (ARRAY(SELECT id FROM billing_rollup_pending ORDER BY id LIMIT $1 {lock}))
            RETURNING items
        ), items AS (
            SELECT i.* FROM taken CROSS JOIN LATERAL unnest(taken.items) AS i
        ), daily_users AS (
            {rollup_from_inserted("usage_daily_users", _DAY_OF, key=USER_KEY, source="items",
                                  user_of="coalesce(user_id, '')")}
        ), trace_costs AS (
            {rollup_from_inserted("usage_trace_costs", _DAY_OF, key=TRACES_KEY, source="items")}
        )
        SELECT count(*) FROM taken
    """  # noqa: S608  (constant names)


_APPLY = _apply_sql("FOR UPDATE SKIP LOCKED")
_APPLY_WAITING = _apply_sql("FOR UPDATE")


async def apply(conn: asyncpg.Connection, *, limit: int, wait: bool = False) -> int:
    """Add up to `limit` pending rows (the oldest first) to the rollups and delete them, in one statement of
    the caller's transaction (or one of its own); returns how many were applied. Rows another transaction
    holds are skipped, or, with `wait`, waited for (then they are gone: that transaction applied them)."""
    async with conn.transaction():
        # Ten batches' rows grouped at once: enough memory for the grouping not to spill to disk.
        await conn.execute("SET LOCAL work_mem = '64MB'")
        applied: int = await conn.fetchval(_APPLY_WAITING if wait else _APPLY, limit)
    return applied


async def pending(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """How many batches wait for the follower."""
    count: int = await conn.fetchval("SELECT count(*) FROM billing_rollup_pending")
    return count
