"""The rollups: `usage_hourly`, `usage_daily`, `usage_daily_users`, `usage_daily_tags`,
`usage_hourly_totals`, `usage_monthly_users`, `usage_hourly_models` and `usage_trace_costs`.

Each is a sum over the ledger per key: the hourly and daily ones per tenant, bucket, app, environment,
provider, model key and prompt; the by-user and by-tag ones per tenant, day, user (or tag), app, environment,
provider and model key; the narrow ones per tenant and hour (`usage_hourly_totals`) and per tenant, month and
user (`usage_monthly_users`), and per tenant, hour, environment and model as reported (`usage_hourly_models`),
and per tenant, UTC day and trace (`usage_trace_costs`). The worker adds the rows it inserted in the same
statement as the ledger insert (`rollup_from_inserted`, used by `store.ledger`); re-pricing moves differences
with `apply_rollup_deltas`. Rows are always written in key order, so concurrent writers lock them in one
order.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from llmops_billing.ledger import (
    COST_COLUMNS,
    TOKEN_COLUMNS,
    DimensionKey,
    ModelKey,
    MonthlyUserKey,
    RollupKey,
    RollupTotals,
    TotalsKey,
    TraceKey,
)

ROLLUP_KEY = ("tenant_id", "bucket", "app_id", "environment", "provider", "model_key", "prompt_name",
              "prompt_version", "prompt_variant")
USER_KEY = ("tenant_id", "bucket", "user_id", "app_id", "environment", "provider", "model_key")
TAG_KEY = ("tenant_id", "bucket", "tag", "app_id", "environment", "provider", "model_key")
TOTALS_KEY = ("tenant_id", "bucket")
MONTHLY_USERS_KEY = ("tenant_id", "bucket", "user_id")
MODELS_KEY = ("tenant_id", "bucket", "environment", "model")
TRACES_KEY = ("tenant_id", "bucket", "trace_id")
_COUNTS = ("event_count", "unpriced_count", *TOKEN_COLUMNS)


def rollup_from_inserted(table: str, bucket: str, *, key: tuple[str, ...] = ROLLUP_KEY, source: str = "inserted",
                         user_of: str = "user_id") -> str:
    """The rollup upsert of the rows the same statement inserted (in key order: one lock order for
    concurrent writers). Sums are exact NUMERIC; costs of unpriced rows (NULL) count as nothing."""
    expressions = {"bucket": bucket, "user_id": user_of, "tag": "t.tag"}
    selected = ", ".join((*(expressions.get(k, k) for k in key),
                          "count(*)", "count(*) FILTER (WHERE unpriced)",
                          *(f"sum({t})::bigint" for t in TOKEN_COLUMNS),
                          *(f"coalesce(sum({c}), 0)" for c in COST_COLUMNS)))
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in (*_COUNTS, *COST_COLUMNS))
    groups = ", ".join(str(i) for i in range(1, len(key) + 1))
    # Byte order (COLLATE "C") is code-point order: the order Python sorts the same keys in when
    # re-pricing, so a worker and a re-pricing run lock shared rollup rows in one order.
    order = ", ".join(f"{i}" if k == "bucket" else f'{expressions.get(k, k)} COLLATE "C"'
                      for i, k in enumerate(key, start=1))
    return f"""INSERT INTO {table} ({", ".join((*key, *_COUNTS, *COST_COLUMNS))})
            SELECT {selected} FROM {source} GROUP BY {groups} ORDER BY {order}
            ON CONFLICT ({", ".join(key)}) DO UPDATE SET {updates}, updated_at = now()"""  # noqa: S608


def groups_of_inserted(bucket: str, *, key: tuple[str, ...] = ROLLUP_KEY, source: str = "inserted") -> str:
    """The rows the same statement inserted, summed per `key` (with `bucket`), each column named as in the
    rollups: a CTE that coarser rollups regroup (`rollup_from_groups`) instead of grouping every row again."""
    expressions = {"bucket": bucket}
    selected = ", ".join((*(f"{expressions.get(k, k)} AS {k}" for k in key),
                          "count(*) AS event_count", "count(*) FILTER (WHERE unpriced) AS unpriced_count",
                          *(f"sum({t})::bigint AS {t}" for t in TOKEN_COLUMNS),
                          *(f"coalesce(sum({c}), 0) AS {c}" for c in COST_COLUMNS)))
    groups = ", ".join(str(i) for i in range(1, len(key) + 1))
    return f"SELECT {selected} FROM {source} GROUP BY {groups}"  # noqa: S608  (constant names)


def rollup_from_groups(table: str, bucket: str, *, key: tuple[str, ...], source: str) -> str:
    """The rollup upsert of `source`, a CTE of `groups_of_inserted` at the same or a finer key: its sums
    summed again per `key` (exact: NUMERIC and integer sums), in key order as `rollup_from_inserted`'s.
    `bucket` is the rollup's bucket as an expression of the groups' own `bucket`."""
    expressions = {"bucket": bucket}
    selected = ", ".join((*(expressions.get(k, k) for k in key),
                          *(f"sum({c})::bigint" for c in _COUNTS), *(f"sum({c})" for c in COST_COLUMNS)))
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in (*_COUNTS, *COST_COLUMNS))
    groups = ", ".join(str(i) for i in range(1, len(key) + 1))
    order = ", ".join(f"{i}" if k == "bucket" else f'{k} COLLATE "C"' for i, k in enumerate(key, start=1))
    return f"""INSERT INTO {table} ({", ".join((*key, *_COUNTS, *COST_COLUMNS))})
            SELECT {selected} FROM {source} GROUP BY {groups} ORDER BY {order}
            ON CONFLICT ({", ".join(key)}) DO UPDATE SET {updates}, updated_at = now()"""  # noqa: S608


def _upsert_sql(table: str, bucket_type: str, key: tuple[str, ...] = ROLLUP_KEY) -> str:
    columns = (*key, *_COUNTS, *COST_COLUMNS)
    types = (["text", bucket_type] + ["text"] * (len(key) - 2) + ["bigint"] * len(_COUNTS)
             + ["numeric"] * len(COST_COLUMNS))
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in (*_COUNTS, *COST_COLUMNS))
    # Constant table and column names only.
    return f"""
        INSERT INTO {table} ({", ".join(columns)})
        SELECT * FROM unnest({params})
        ON CONFLICT ({", ".join(key)}) DO UPDATE SET {updates}, updated_at = now()
    """  # noqa: S608


def _delete_empty_sql(table: str, bucket_type: str, key: tuple[str, ...] = ROLLUP_KEY) -> str:
    params = ", ".join(f"${i}::{bucket_type if k == 'bucket' else 'text'}[]" for i, k in enumerate(key, start=1))
    # Constant table and column names only.
    return f"""
        DELETE FROM {table} r USING unnest({params}) AS k({", ".join(key)})
        WHERE r.event_count = 0 AND ({", ".join(f"r.{k}" for k in key)}) = ({", ".join(f"k.{k}" for k in key)})
    """  # noqa: S608


# table -> (its upsert, its delete of emptied rows, its key width)
_TABLES = {
    "usage_hourly": (_upsert_sql("usage_hourly", "timestamptz"), _delete_empty_sql("usage_hourly", "timestamptz"),
                     len(ROLLUP_KEY)),
    "usage_daily": (_upsert_sql("usage_daily", "date"), _delete_empty_sql("usage_daily", "date"), len(ROLLUP_KEY)),
    "usage_daily_users": (_upsert_sql("usage_daily_users", "date", USER_KEY),
                          _delete_empty_sql("usage_daily_users", "date", USER_KEY), len(USER_KEY)),
    "usage_daily_tags": (_upsert_sql("usage_daily_tags", "date", TAG_KEY),
                         _delete_empty_sql("usage_daily_tags", "date", TAG_KEY), len(TAG_KEY)),
    "usage_hourly_totals": (_upsert_sql("usage_hourly_totals", "timestamptz", TOTALS_KEY),
                            _delete_empty_sql("usage_hourly_totals", "timestamptz", TOTALS_KEY), len(TOTALS_KEY)),
    "usage_monthly_users": (_upsert_sql("usage_monthly_users", "date", MONTHLY_USERS_KEY),
                            _delete_empty_sql("usage_monthly_users", "date", MONTHLY_USERS_KEY),
                            len(MONTHLY_USERS_KEY)),
    "usage_hourly_models": (_upsert_sql("usage_hourly_models", "timestamptz", MODELS_KEY),
                            _delete_empty_sql("usage_hourly_models", "timestamptz", MODELS_KEY), len(MODELS_KEY)),
    "usage_trace_costs": (_upsert_sql("usage_trace_costs", "date", TRACES_KEY),
                          _delete_empty_sql("usage_trace_costs", "date", TRACES_KEY), len(TRACES_KEY)),
}


async def apply_rollup_deltas(conn: asyncpg.Connection, *, hourly: dict[RollupKey, RollupTotals],
                              daily: dict[RollupKey, RollupTotals],
                              users: dict[DimensionKey, RollupTotals] | None = None,
                              tags: dict[DimensionKey, RollupTotals] | None = None,
                              totals: dict[TotalsKey, RollupTotals] | None = None,
                              monthly_users: dict[MonthlyUserKey, RollupTotals] | None = None,
                              models: dict[ModelKey, RollupTotals] | None = None,
                              traces: dict[TraceKey, RollupTotals] | None = None) -> None:
    """Add the deltas (`ledger.rollup_deltas`, `ledger.dimension_deltas`, `ledger.narrow_deltas`,
    `ledger.model_deltas`, `ledger.trace_deltas`) to the
    rollups, in the caller's transaction; rollup rows that end with no events at all (re-pricing moved
    them to another key) are deleted."""
    deltas_of: dict[str, dict[Any, RollupTotals] | None] = {
        "usage_hourly": hourly, "usage_daily": daily, "usage_daily_users": users, "usage_daily_tags": tags,
        "usage_hourly_totals": totals, "usage_monthly_users": monthly_users, "usage_hourly_models": models,
        "usage_trace_costs": traces}
    for table, deltas in deltas_of.items():
        if not deltas:
            continue
        upsert, delete_empty, width = _TABLES[table]
        columns: list[list[Any]] = [[] for _ in range(width + len(_COUNTS) + len(COST_COLUMNS))]
        for key, change in sorted(deltas.items()):  # one lock order for concurrent writers
            values = (*key, change.event_count, change.unpriced_count, *change.tokens, *change.costs)
            for i, value in enumerate(values):
                columns[i].append(value)
        await conn.execute(upsert, *columns)
        if any(totals.event_count < 0 for totals in deltas.values()):
            await conn.execute(delete_empty, *columns[:width])


async def tenants_with_usage(conn: asyncpg.Connection | asyncpg.Pool, *, first_day: date, last_day: date) -> list[str]:
    """Tenants with usage on any UTC day in `[first_day, last_day]`. Every tenant with ledger rows on a day
    has daily rollup rows there (they are written together), so this is the ledger's tenants, cheaply."""
    rows = await conn.fetch(
        "SELECT DISTINCT tenant_id FROM usage_daily WHERE bucket >= $1 AND bucket <= $2 ORDER BY 1",
        first_day, last_day)
    return [r["tenant_id"] for r in rows]
