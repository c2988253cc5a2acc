"""Billing's cost, summed per bucket and group for `/v1/metrics`, from the narrowest of billing's tables that is
exact for the series (hour or day buckets): `usage_hourly_totals` (per tenant and hour) with no grouping and
no filter; `usage_hourly_models` (per tenant, hour, environment and model as reported) when grouped or
filtered by those only; `usage_hourly` (by app, keyed by billing's normalised model key) when neither the
model nor an app filter is asked for (its index does not start with the app); else, and for minutes,
`usage_ledger`, whose `model` is the model as reported. Read only, one tenant."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import asyncpg

_COLUMNS = {"app": "app_id", "environment": "environment", "model": "model", "prompt_version": "prompt_version"}
_TRUNC = {"minute": "date_trunc('minute', {t} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
          "hour": "date_trunc('hour', {t} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
          "day": "date_trunc('day', {t} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"}


def source(granularity: str, group: str | None, filters: dict[str, str]) -> str:
    """The billing table a cost series reads (see the module's docstring)."""
    needed = set(filters) | ({group} if group else set())
    if granularity == "minute":
        return "usage_ledger"
    if not needed:
        return "usage_hourly_totals"
    if needed <= {"environment", "model"}:
        return "usage_hourly_models"
    if "model" not in needed and "app" not in filters:
        return "usage_hourly"
    return "usage_ledger"


async def cost_series(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, granularity: str, start: datetime,
                      end: datetime, group: str | None, filters: dict[str, str]) -> dict[tuple[datetime, str], Decimal]:
    # One app's series reads the ledger by its (tenant_id, app_id, occurred_at) index including the model,
    # environment and cost (billing/0012: an index-only scan): billing's hourly rollup has only (tenant_id,
    # bucket), which reads every app's rows of the range (at volume, 1,000 apps: most of the time of the
    # request; bench/traces_store.py).
    table, time = source(granularity, group, filters), "bucket"
    if table == "usage_ledger":
        time = "occurred_at"
    args: list[object] = [tenant_id, start, end]
    where = ["tenant_id = $1", f"{time} >= $2", f"{time} < $3"]
    for name, value in sorted(filters.items()):
        args.append(value)
        where.append(f"{_COLUMNS[name]} = ${len(args)}")
    group_sql = _COLUMNS[group] if group else "''"
    bucket = _TRUNC[granularity].format(t=time)
    rows = await db.fetch(f"""
        SELECT {bucket} AS bucket, {group_sql} AS grp, sum(cost_total) AS cost FROM {table}
        WHERE {" AND ".join(where)} GROUP BY 1, 2""", *args)  # noqa: S608  (constant names; values are parameters)
    return {(r["bucket"], r["grp"]): r["cost"] for r in rows if r["cost"] is not None}
