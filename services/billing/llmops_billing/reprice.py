"""Re-pricing: recompute the cost of ledger rows after a price correction, rollups staying equal to the ledger.

    llmops billing reprice --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z [--tenant T] [--model M]

Rows of `usage_ledger` with `occurred_at` in `[from, to)` (optionally of one tenant, one model key) are
read tenant by tenant, in chunks in `(occurred_at, event_id)` order along the `(tenant_id, occurred_at)`
index. Each chunk is one transaction (retried on a deadlock with a worker):

1. its rows are locked (`FOR UPDATE`) and priced again with the current catalogue (`ledger.repriced`:
   the same look-up the worker does, as of each row's own `occurred_at`);
2. rows whose pricing changed get their new cost columns, `price_version`, `price_tier`, `model_key`
   and `priced_at`;
3. the DIFFERENCE goes to every rollup (`usage_hourly`, `usage_daily`, `usage_daily_users`,
   `usage_daily_tags`, `usage_hourly_totals`, `usage_monthly_users`, `usage_hourly_models`,
   `usage_trace_costs`): the old row is taken out of its rollup key(s), the new one added to its (possibly
   new) key(s), so every rollup stays equal to the sum over the ledger;
4. budgets the changed rows touch are evaluated again (a correction upwards can cross a threshold);
   their alerts go to the outbox, and the worker's relay sends them.

Re-pricing twice changes nothing the second time. A row the worker writes while a run is under way was
priced with the worker's catalogue, which follows the database from its next batch (within
`price_refresh_s` if its configuration listener is down): run re-pricing after that (or again) when the
corrected period is still receiving events. `clock` is what "now" is (the rows' new `priced_at`, which
budget periods are still alerted on).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from llmops_billing.budgets import evaluate_touched
from llmops_billing.ledger import (
    LedgerRow,
    dimension_deltas,
    model_deltas,
    narrow_deltas,
    pricing_changed,
    repriced,
    rollup_deltas,
    trace_deltas,
)
from llmops_billing.money import EXACT, ZERO
from llmops_billing.prices import PriceCatalogue
from llmops_billing.store import ledger as ledger_store
from llmops_billing.store import outbox, reprice_runs, rollups, unpriced
from llmops_shared.clock import Clock, utc_now
from llmops_shared.worker import is_transient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RepriceReport:
    run_id: int
    rows_examined: int
    rows_changed: int
    cost_before: Decimal  # cost_total of the changed rows before (unpriced rows count 0)
    cost_after: Decimal
    alerts: int
    dry_run: bool

    @property
    def delta(self) -> Decimal:
        return EXACT.subtract(self.cost_after, self.cost_before)


async def reprice(pool: asyncpg.Pool, catalogue: PriceCatalogue, *, start: datetime, end: datetime,
                  tenant_id: str | None = None, model_key: str | None = None, chunk_size: int = 2_000,
                  dry_run: bool = False, budget_alert_max_age: timedelta = timedelta(hours=48),
                  clock: Clock = utc_now, on_chunk: Callable[[int], None] | None = None) -> RepriceReport:
    """Re-price `[start, end)`; see the module docstring. `dry_run` computes the same report and rolls
    every chunk back. `on_chunk(rows)` after each chunk (a progress bar's tick)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("from and to must be timezone-aware")
    if end <= start:
        raise ValueError("to must be after from")
    run_id = await reprice_runs.start_run(pool, start=start, end=end, tenant_id=tenant_id, model_key=model_key,
                                          dry_run=dry_run)
    examined = changed = alerts = 0
    before = after = ZERO
    if tenant_id is not None:
        tenants = [tenant_id]
    else:
        tenants = await rollups.tenants_with_usage(pool, first_day=start.astimezone(UTC).date(),
                                                   last_day=end.astimezone(UTC).date())
    for tenant in tenants:
        # Keyset: the first chunk must include rows at exactly `start`, so it starts just before it.
        cursor: tuple[datetime, uuid.UUID] = (start - timedelta(microseconds=1), uuid.UUID(int=(1 << 128) - 1))
        while True:
            chunk = await _chunk_with_retries(pool, catalogue, tenant_id=tenant, end=end, cursor=cursor,
                                              model_key=model_key, chunk_size=chunk_size, dry_run=dry_run,
                                              max_age=budget_alert_max_age, clock=clock)
            if chunk is None:
                break
            rows, result = chunk
            examined += len(rows)
            if on_chunk is not None:
                on_chunk(len(rows))
            changed += result.changed
            before = EXACT.add(before, result.before)
            after = EXACT.add(after, result.after)
            alerts += result.alerts
            last = rows[-1]
            cursor = (last.occurred_at, last.event_id)
            if len(rows) < chunk_size:
                break
    await reprice_runs.finish_run(pool, run_id=run_id, rows_examined=examined, rows_changed=changed,
                                  cost_before=before, cost_after=after)
    report = RepriceReport(run_id, examined, changed, before, after, alerts, dry_run)
    log.info("re-pricing done", extra={"run_id": run_id, "rows_examined": examined, "rows_changed": changed,
                                       "delta": str(report.delta), "dry_run": dry_run})
    return report


class _DryRun(Exception):  # not an error: how a dry run leaves its transaction (rolled back)
    def __init__(self, rows: list[LedgerRow], result: _ChunkResult) -> None:
        super().__init__("dry run")
        self.rows = rows
        self.result = result


async def _chunk_with_retries(pool: asyncpg.Pool, catalogue: PriceCatalogue, *, tenant_id: str, end: datetime,
                              cursor: tuple[datetime, uuid.UUID], model_key: str | None,
                              chunk_size: int, dry_run: bool, max_age: timedelta, clock: Clock,
                              attempts: int = 5) -> tuple[list[LedgerRow], _ChunkResult] | None:
    """One chunk in one transaction; a deadlock with a worker (or a lost connection) retries it."""
    for attempt in range(1, attempts + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                rows = await ledger_store.lock_chunk(conn, tenant_id=tenant_id, end=end, after=cursor,
                                                     model_key=model_key, limit=chunk_size)
                if not rows:
                    return None
                result = await _reprice_chunk(conn, rows, catalogue, now=clock(), max_age=max_age)
                if dry_run:
                    raise _DryRun(rows, result)  # rolls the transaction back
                return rows, result
        except _DryRun as dry:
            return dry.rows, dry.result
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            log.warning("re-pricing chunk failed; retrying it", extra={
                "error_type": type(exc).__name__, "attempt": attempt})
            await asyncio.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class _ChunkResult:
    changed: int
    before: Decimal
    after: Decimal
    alerts: int


async def _reprice_chunk(conn: asyncpg.Connection, rows: Sequence[LedgerRow], catalogue: PriceCatalogue, *,
                         now: datetime, max_age: timedelta) -> _ChunkResult:
    old_rows: list[LedgerRow] = []
    new_rows: list[LedgerRow] = []
    for row in rows:
        new = repriced(row, catalogue, priced_at=now)
        if pricing_changed(row, new):
            old_rows.append(row)
            new_rows.append(new)
    if not new_rows:
        return _ChunkResult(0, ZERO, ZERO, 0)
    await ledger_store.update_pricing(conn, rows=new_rows)
    hourly, daily = rollup_deltas(new_rows, removed=old_rows)
    users, tags = dimension_deltas(new_rows, removed=old_rows)
    totals, monthly_users = narrow_deltas(new_rows, removed=old_rows)
    await rollups.apply_rollup_deltas(conn, hourly=hourly, daily=daily, users=users, tags=tags, totals=totals,
                                      monthly_users=monthly_users, models=model_deltas(new_rows, removed=old_rows),
                                      traces=trace_deltas(new_rows, removed=old_rows))
    # Models whose last unpriced rows got a price are marked resolved; should they come back unpriced,
    # the worker alerts again.
    await unpriced.mark_resolved(conn, models={(o.tenant_id, o.provider, o.response_model or o.model)
                                               for o, n in zip(old_rows, new_rows, strict=True)
                                               if o.unpriced and not n.unpriced})
    touched = {(r.tenant_id, r.app_id, r.occurred_at) for r in new_rows if not r.unpriced}
    alerts = await evaluate_touched(conn, touched, now=now, max_age=max_age)
    await outbox.add(conn, alerts=alerts)
    return _ChunkResult(len(new_rows), _sum(old_rows), _sum(new_rows), len(alerts))


def _sum(rows: Sequence[LedgerRow]) -> Decimal:
    total = ZERO
    for row in rows:
        if row.cost_total is not None:
            total = EXACT.add(total, row.cost_total)
    return total
