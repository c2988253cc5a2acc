"""Billing's cost, summed per bucket and group for `/v1/metrics`: from `usage_hourly` when that is exact
(hour or day buckets, no model grouping or filter: billing keys its rollup by a normalised model key; no app
filter: its index does not start with the app), else from `usage_ledger`, whose `model` is the model as
reported. Read only, one tenant."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import asyncpg

_COLUMNS = {"app": "app_id", "environment": "environment", "model": "model", "prompt_version": "prompt_version"}
_TRUNC = {"minute": "date_trunc('minute', {t} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
          "hour": "date_trunc('hour', {t} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
          "day": "date_trunc('day', {t} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"}


async def cost_series(db: asyncpg.Pool | asyncpg.Connection, *, tenant_id: str, granularity: str, start: datetime,
                      end: datetime, group: str | None, filters: dict[str, str]) -> dict[tuple[datetime, str], Decimal]:
    # One app's series reads the ledger by its (tenant_id, app_id, occurred_at) index: billing's hourly rollup
    # has only (tenant_id, bucket), which reads every app's rows of the range (at volume, 1,000 apps: most of
    # the time of the request; bench/traces_store.py).
    hourly = granularity != "minute" and group != "model" and "model" not in filters and "app" not in filters
    table, time = ("usage_hourly", "bucket") if hourly else ("usage_ledger", "occurred_at")
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
