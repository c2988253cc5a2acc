"""The API's reads over the ledger and the rollups: usage pages, CSV exports and statement lines.

`build_usage_sql` turns a planned `UsageQuery` (`usage_query.py`: the source is chosen there) into one
statement (money sums come back as exact decimal text without trailing zeros, `trim_scale(...)::text`,
which is what the API shows: decoding a NUMERIC into a `Decimal` and formatting it again cost the API
more per row than the query did); `usage_records` reads a page of it, `usage_export` streams all of it
from a server-side cursor. `statement_records` reads a month's line items, totals and unpriced events in one snapshot.
Every statement is scoped to one tenant (`l.tenant_id = $1`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from llmops_billing.ledger import COST_COLUMNS, TOKEN_COLUMNS
from llmops_billing.usage_query import GroupField, Source, UsageQuery, choose_source

_ROLLUP_TABLES = {Source.HOURLY: "usage_hourly l", Source.HOURLY_TOTALS: "usage_hourly_totals l",
                  Source.DAILY: "usage_daily l", Source.DAILY_USERS: "usage_daily_users l",
                  Source.DAILY_TAGS: "usage_daily_tags l", Source.MONTHLY_USERS: "usage_monthly_users l"}
_HOURLY_SOURCES = (Source.HOURLY, Source.HOURLY_TOTALS)
# Rollups that store a dimension the ledger computes: '' for no user or no tag, as the ledger's
# expressions give it.
_STORED_DIMENSIONS = {Source.DAILY_USERS: {"user_id": "l.user_id"}, Source.DAILY_TAGS: {"tag": "l.tag"},
                      Source.MONTHLY_USERS: {"user_id": "l.user_id"}}


def build_usage_sql(query: UsageQuery, *, tenant_id: str, page: bool = True) -> tuple[str, list[Any]]:
    """The SQL and its arguments for one page of `query` (`page=False`: every row, for an export)."""
    source = choose_source(query)
    args: list[Any] = [tenant_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if source is Source.LEDGER:
        table = "usage_ledger l"
        if GroupField.TAG in query.group_by:
            table += " LEFT JOIN LATERAL unnest(l.tags) AS t(tag) ON true"
        time_column, start_arg, end_arg = "l.occurred_at", arg(query.start), arg(query.end)
        bucket_of = "l.occurred_at"
        measures = ["count(*)::bigint AS event_count", "(count(*) FILTER (WHERE l.unpriced))::bigint AS unpriced_count"]
        measures += [f"coalesce(sum(l.{c}), 0)::bigint AS {c}" for c in TOKEN_COLUMNS]
        measures += [f"trim_scale(coalesce(sum(l.{c}), 0))::text AS {c}" for c in COST_COLUMNS]
    else:
        table = _ROLLUP_TABLES[source]
        time_column = "l.bucket"
        if source in _STORED_DIMENSIONS:
            # Literal days (our own `date`s, not input text): with parameters, the generic plan a prepared
            # statement switches to after five runs guesses a few hundred rows for any range and sorts tens
            # of thousands on disk (twice as slow); with literals every plan knows the range's size.
            start_arg, end_arg = (f"'{query.start.date().isoformat()}'::date",
                                  f"'{query.end.date().isoformat()}'::date")
            bucket_of = "(l.bucket::timestamp AT TIME ZONE 'UTC')"
        elif source not in _HOURLY_SOURCES:
            start_arg, end_arg = arg(query.start.date()), arg(query.end.date())
            bucket_of = "(l.bucket::timestamp AT TIME ZONE 'UTC')"
        else:
            start_arg, end_arg = arg(query.start), arg(query.end)
            bucket_of = "l.bucket"
        measures = [f"sum(l.{c})::bigint AS {c}" for c in ("event_count", "unpriced_count", *TOKEN_COLUMNS)]
        measures += [f"trim_scale(sum(l.{c}))::text AS {c}" for c in COST_COLUMNS]

    select: list[str] = []
    names: list[str] = []
    if query.granularity is not None:
        select.append(f"date_trunc('{query.granularity.value}', {bucket_of} AT TIME ZONE 'UTC') "
                      "AT TIME ZONE 'UTC' AS bucket")
        names.append("bucket")
    rollup_columns = _STORED_DIMENSIONS.get(source, {})
    for name, expression in query.columns:
        select.append(f"{rollup_columns.get(name, expression)} AS {name}")
        names.append(name)
    where = ["l.tenant_id = $1", f"{time_column} >= {start_arg}", f"{time_column} < {end_arg}"]
    filter_columns = {"app_id": "l.app_id", "environment": "l.environment", "model": "l.model_key",
                      "provider": "l.provider", "user_id": "l.user_id"}
    for name, value in sorted(query.filters.items()):
        where.append(f"{filter_columns[name]} = {arg(value)}")
    group = f"GROUP BY {', '.join(str(i + 1) for i in range(len(names)))}" if names else ""
    inner = f"SELECT {', '.join(select + measures)} FROM {table} WHERE {' AND '.join(where)} {group}"  # noqa: S608
    outer_where = ""
    if query.after is not None and names:
        placeholders = []
        for name, value in zip(names, query.after, strict=True):
            placeholders.append(f"{arg(value)}::{'timestamptz' if name == 'bucket' else 'text'}")
        outer_where = f"WHERE ({', '.join(names)}) > ({', '.join(placeholders)})"
    order = f"ORDER BY {', '.join(names)}" if names else ""
    limit = f"LIMIT {arg(query.limit + 1)}" if page else ""
    sql = f"SELECT * FROM ({inner}) AS agg {outer_where} {order} {limit}"  # noqa: S608  (names are constants)
    return sql, args


async def usage_records(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str,
                        query: UsageQuery) -> list[asyncpg.Record]:
    """One page of `query`: up to `query.limit + 1` rows after `query.after` (the extra row says that
    another page follows)."""
    sql, args = build_usage_sql(query, tenant_id=tenant_id)
    return await conn.fetch(sql, *args)


async def usage_export(conn: asyncpg.Connection, *, tenant_id: str, query: UsageQuery, max_rows: int,
                       fetch_size: int = 2_000) -> AsyncIterator[asyncpg.Record]:
    """Every row of `query` (no pages, at most `max_rows`), streamed from a server-side cursor.

    `conn` must not be a pool: the cursor needs one connection in a transaction for its whole life.
    """
    sql, args = build_usage_sql(replace(query, after=None), tenant_id=tenant_id, page=False)
    sent = 0
    async with conn.transaction(readonly=True):
        async for record in conn.cursor(sql, *args, prefetch=fetch_size):
            if sent >= max_rows:
                break
            sent += 1
            yield record


# --------------------------------------------------------------------------------------------------
# Statements

_STATEMENT_ITEMS = """
    SELECT l.provider, l.model_key, l.price_version, li.line, li.amount / li.quantity AS unit_price,
           sum(li.quantity)::bigint AS quantity, sum(li.amount) AS amount, count(*)::bigint AS events
    FROM usage_ledger l
    CROSS JOIN LATERAL (VALUES
        ('input', l.input_tokens - l.cache_read_input_tokens - l.cache_write_input_tokens, l.cost_input),
        ('cache_read', l.cache_read_input_tokens, l.cost_cache_read),
        ('cache_write', l.cache_write_input_tokens, l.cost_cache_write),
        ('output', l.output_tokens - l.reasoning_tokens, l.cost_output),
        ('reasoning', l.reasoning_tokens, l.cost_reasoning),
        ('request', 1, l.cost_request)
    ) AS li(line, quantity, amount)
    WHERE l.tenant_id = $1 AND l.occurred_at >= $2 AND l.occurred_at < $3 AND NOT l.unpriced AND li.quantity > 0
    GROUP BY 1, 2, 3, 4, 5
"""

_STATEMENT_TOTALS = """
    SELECT count(*)::bigint AS events, (count(*) FILTER (WHERE unpriced))::bigint AS unpriced_events,
           coalesce(sum(cost_total), 0) AS ledger_total,
           coalesce(sum(input_tokens), 0)::bigint AS input_tokens,
           coalesce(sum(output_tokens), 0)::bigint AS output_tokens
    FROM usage_ledger WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3
"""

_STATEMENT_UNPRICED = """
    SELECT provider, CASE WHEN response_model <> '' THEN response_model ELSE model END AS model, unpriced_reason,
           count(*)::bigint AS events, sum(input_tokens)::bigint AS input_tokens,
           sum(output_tokens)::bigint AS output_tokens
    FROM usage_ledger WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND unpriced
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""


@dataclass(frozen=True, slots=True)
class StatementRecords:
    items: list[asyncpg.Record]  # provider, model_key, price_version, line, unit_price, quantity, amount, events
    totals: asyncpg.Record  # events, unpriced_events, ledger_total, input_tokens, output_tokens
    unpriced: list[asyncpg.Record]  # provider, model, unpriced_reason, events, input_tokens, output_tokens


async def statement_records(conn: asyncpg.Connection, *, tenant_id: str, start: datetime,
                            end: datetime) -> StatementRecords:
    """The ledger's line items (grouped by provider, model, price version, line and unit price), totals
    and unpriced events over `[start, end)`, read in one repeatable-read snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        items = await conn.fetch(_STATEMENT_ITEMS, tenant_id, start, end)
        totals = await conn.fetchrow(_STATEMENT_TOTALS, tenant_id, start, end)
        unpriced = await conn.fetch(_STATEMENT_UNPRICED, tenant_id, start, end)
    assert totals is not None
    return StatementRecords(items, totals, unpriced)
