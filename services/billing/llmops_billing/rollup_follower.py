"""The follower: adds the pending share of committed batches to `usage_daily_users` and `usage_trace_costs`.

The worker's batch statement leaves those two per-event rollups a `billing_rollup_pending` row (one per
batch, in the batch's transaction: `store.pending_rollups`). Every billing worker process runs a
`RollupFollower` task: every `interval_s` (`LLMOPS_BILLING_ROLLUP_FOLLOW_INTERVAL_S`, 1 s) it applies what is
pending, up to `BATCHES` batches per transaction (keys that repeat across them are upserted once), until
nothing is left; rows another process's follower holds are skipped. The worker nudges it after its commits
(`committed`): it starts at once when `BATCHES` batches are pending, or after a batch that ends a backlog
(a short batch, or one whose poll reached the end of its partitions: `Resources.caught_up`, so also the
last of a burst of full batches), so after a burst the rollups catch up with the last apply rather than
the next interval. Applying a row and
deleting it commit together, so each batch reaches the rollups exactly once, whatever crashes when; a row
left by a crashed process is applied by any other (or by the next process). So those two rollups lag the
ledger by at most about `interval_s` plus one apply; the ledger and every other rollup (the budgets' spend,
the hourly and daily usage, the usage queries' narrow rollups) are written with the batch, as before.

`flush` applies everything committed so far, waiting for rows another follower holds: for tests and tools
that compare the rollups with the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from llmops_billing.store import pending_rollups

log = logging.getLogger(__name__)

BATCHES = 10
"""Pending batches applied per transaction (grouped together: in the benchmark's mix, ten batches of a
day's 4,242 user x app x model keys upsert 4,242 `usage_daily_users` rows instead of 20,000)."""


class RollupFollower:
    """Applies pending rollup rows every `interval_s`, or sooner when nudged; see the module docstring."""

    def __init__(self, pool: asyncpg.Pool, *, interval_s: float, batches: int = BATCHES) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self.batches = batches
        self._committed = 0  # batches this process committed since the last round
        self._wake = asyncio.Event()
        self.rounds = 0  # rounds run (`run`)

    @property
    def nudged(self) -> bool:
        """Whether the next round starts without waiting for the interval."""
        return self._wake.is_set()

    def committed(self, *, last_in_backlog: bool) -> None:
        """A batch of this process committed its pending row. The next round starts at once when `batches`
        have, or when this one was the last of a backlog (a batch shorter than the largest, or one that
        reached the end of its partitions: the stream is caught up, so the rollups need not wait for the
        interval), else at the interval."""
        self._committed += 1
        if last_in_backlog or self._committed >= self.batches:
            self._wake.set()

    async def run_once(self) -> int:
        """Apply pending rows, `batches` at a time, until none is left that no one else holds; returns how
        many were applied."""
        self._committed = 0
        self._wake.clear()
        applied = 0
        while True:
            async with self.pool.acquire() as conn:
                taken = await pending_rollups.apply(conn, limit=self.batches)
            applied += taken
            if taken < self.batches:
                return applied

    async def run(self, stopping: asyncio.Event | None = None) -> None:
        """`run_once` every `interval_s` or when nudged (`committed`), until `stopping` is set; a round that
        fails is logged and retried at the next."""
        while stopping is None or not stopping.is_set():
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("could not apply pending rollups; retrying", extra={
                    "error_type": type(exc).__name__, "error": str(exc)[:300]})
            self.rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)


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
