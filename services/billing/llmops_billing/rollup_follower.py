"""The follower: adds the pending share of committed batches to `usage_daily_users` and `usage_trace_costs`.

The worker's batch statement leaves those two per-event rollups a `billing_rollup_pending` row (one per
batch, in the batch's transaction: `store.pending_rollups`). Every billing worker process runs a
`RollupFollower` task: every `interval_s` (`LLMOPS_BILLING_ROLLUP_FOLLOW_INTERVAL_S`, 1 s) it applies what is
pending, up to `BATCHES` batches per transaction (keys that repeat across them are upserted once), until
nothing is left; rows another process's follower holds are skipped. Applying a row and deleting it commit
together, so each batch reaches the rollups exactly once, whatever crashes when; a row left by a crashed
process is applied by any other (or by the next process). So those two rollups lag the ledger by about
`interval_s` plus one apply; the ledger and every other rollup (the budgets' spend, the hourly and daily
usage, the usage queries' narrow rollups) are written with the batch, as before.

`flush` applies everything committed so far, waiting for rows another follower holds: for tests and tools
that compare the rollups with the ledger.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from llmops_billing.alerts import relay_rounds
from llmops_billing.store import pending_rollups

log = logging.getLogger(__name__)

BATCHES = 10
"""Pending batches applied per transaction (grouped together: in the benchmark's mix, ten batches of a
day's 4,242 user x app x model keys upsert 4,242 `usage_daily_users` rows instead of 20,000)."""


class RollupFollower:
    """Applies pending rollup rows every `interval_s`; see the module docstring."""

    def __init__(self, pool: asyncpg.Pool, *, interval_s: float, batches: int = BATCHES) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self.batches = batches

    async def run_once(self) -> int:
        """Apply pending rows, `batches` at a time, until none is left that no one else holds; returns how
        many were applied."""
        applied = 0
        while True:
            async with self.pool.acquire() as conn:
                taken = await pending_rollups.apply(conn, limit=self.batches)
            applied += taken
            if taken < self.batches:
                return applied

    async def run(self, stopping: asyncio.Event | None = None) -> None:
        """`run_once` every `interval_s` until `stopping` is set (a round that fails is logged and retried)."""
        await relay_rounds(lambda _first: self.run_once(), interval_s=self.interval_s, what="pending rollups",
                           stopping=stopping)


async def flush(pool: asyncpg.Pool, *, batches: int = BATCHES) -> int:
    """Apply every pending row committed so far, waiting for those another transaction holds; returns how
    many this call applied."""
    applied = 0
    while True:
        async with pool.acquire() as conn:
            taken = await pending_rollups.apply(conn, limit=batches, wait=True)
        applied += taken
        if taken == 0:
            return applied
