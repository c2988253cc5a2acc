"""The check every billing test that writes the ledger can make: each rollup equals a GROUP BY of the ledger
(once the follower has added the batches pending for `usage_daily_users` and `usage_trace_costs`: an explicit
`rollup_follower.flush` first)."""

from __future__ import annotations

import asyncpg

from llmops_billing.rollup_follower import flush

SUMS = ("event_count", "unpriced_count", "input_tokens", "output_tokens", "cache_read_input_tokens",
        "cache_write_input_tokens", "reasoning_tokens", "cost_input", "cost_cache_read", "cost_cache_write",
        "cost_output", "cost_reasoning", "cost_request", "cost_total")
_HOUR = "date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
_DAY = "(occurred_at AT TIME ZONE 'UTC')::date"
_MONTH = "date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date"
_PROMPTED = ("app_id", "environment", "provider", "model_key", "prompt_name", "prompt_version", "prompt_variant")
_DIMENSIONED = ("app_id", "environment", "provider", "model_key")
_TAGS = ("usage_ledger CROSS JOIN LATERAL unnest(CASE WHEN cardinality(tags) = 0 THEN ARRAY['']::text[] ELSE tags END) "
         "AS t(tag)")

# table -> (its key columns, the ledger expressions of those columns after tenant_id, the ledger source)
ROLLUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "usage_hourly": (("bucket", *_PROMPTED), (_HOUR, *_PROMPTED), "usage_ledger"),
    "usage_daily": (("bucket", *_PROMPTED), (_DAY, *_PROMPTED), "usage_ledger"),
    "usage_daily_users": (("bucket", "user_id", *_DIMENSIONED), (_DAY, "coalesce(user_id, '')", *_DIMENSIONED),
                          "usage_ledger"),
    "usage_daily_tags": (("bucket", "tag", *_DIMENSIONED), (_DAY, "t.tag", *_DIMENSIONED), _TAGS),
    "usage_hourly_totals": (("bucket",), (_HOUR,), "usage_ledger"),
    "usage_monthly_users": (("bucket", "user_id"), (_MONTH, "coalesce(user_id, '')"), "usage_ledger"),
    "usage_hourly_models": (("bucket", "environment", "model"), (_HOUR, "environment", "model"), "usage_ledger"),
    "usage_trace_costs": (("bucket", "trace_id"), (_DAY, "trace_id"), "usage_ledger"),
}


async def rollups_equal_ledger(pool: asyncpg.Pool, tenant: str, *, follow: bool = True) -> None:
    """Every rollup row of `tenant` equals the GROUP BY sum over the ledger, and no rollup row is left over
    (nor missing). `follow`: apply what is pending for the follower first (its rollups lag the ledger by
    design); without it, those rollups must be complete already."""
    if follow:
        await flush(pool)
    ledger_sums = ", ".join(
        "count(*) AS event_count" if c == "event_count" else
        "count(*) FILTER (WHERE unpriced) AS unpriced_count" if c == "unpriced_count" else
        f"coalesce(sum({c}), 0) AS {c}" for c in SUMS)
    assert await pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant), tenant
    for table, (key, expressions, source) in ROLLUPS.items():
        groups = ", ".join(str(i) for i in range(1, len(key) + 1))
        by = ", ".join(k if k == "bucket" else f'{k} COLLATE "C"' for k in key)  # byte order on both sides
        expected = await pool.fetch(
            f"SELECT * FROM (SELECT {', '.join(f'{e} AS {k}' for e, k in zip(expressions, key, strict=True))}, "  # noqa: S608
            f"{ledger_sums} FROM {source} WHERE tenant_id = $1 GROUP BY {groups}) g ORDER BY {by}", tenant)
        actual = await pool.fetch(
            f"SELECT {', '.join((*key, *SUMS))} FROM {table} WHERE tenant_id = $1 ORDER BY {by}",  # noqa: S608
            tenant)
        assert [tuple(r) for r in actual] == [tuple(r) for r in expected], table
        assert actual, table
