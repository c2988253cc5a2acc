"""`billing_reprice_runs`: one row per re-pricing run, its parameters and, once finished, its report."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import asyncpg


async def start_run(conn: asyncpg.Connection | asyncpg.Pool, *, start: datetime, end: datetime,
                    tenant_id: str | None, model_key: str | None, dry_run: bool) -> int:
    """Record a run's parameters; returns its id."""
    run_id: int = await conn.fetchval(
        "INSERT INTO billing_reprice_runs (from_ts, to_ts, tenant_id, model_key, dry_run) VALUES ($1, $2, $3, $4, $5) "
        "RETURNING id", start, end, tenant_id, model_key, dry_run)
    return run_id


async def finish_run(conn: asyncpg.Connection | asyncpg.Pool, *, run_id: int, rows_examined: int, rows_changed: int,
                     cost_before: Decimal, cost_after: Decimal) -> None:
    await conn.execute(
        """UPDATE billing_reprice_runs SET rows_examined = $2, rows_changed = $3, cost_before = $4, cost_after = $5,
                  finished_at = now() WHERE id = $1""", run_id, rows_examined, rows_changed, cost_before, cost_after)
