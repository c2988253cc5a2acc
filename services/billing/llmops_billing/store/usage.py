"""The API's reads over the ledger and the rollups: usage pages, CSV exports and statement lines.

`build_usage_sql` turns a planned `UsageQuery` (`usage_query.py`: the source is chosen there) into one
statement (money sums come back as exact decimal text without trailing zeros, `trim_scale(...)::text`,
which is what the API shows: decoding a NUMERIC into a `Decimal` and formatting it again cost the API
more per row than the query did); `usage_records` reads a page of it, `usage_export` streams all of it
from a server-side cursor. `statement_records` reads a month's line items, totals and unpriced events in one snapshot.
Every statement is scoped to one tenant (`l.tenant_id = $1`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from llmops_billing.ledger import COST_COLUMNS, TOKEN_COLUMNS
from llmops_billing.usage_query import MEASURES, GroupField, Source, UsageQuery, choose_source

_ROLLUP_TABLES = {Source.HOURLY: "usage_hourly l", Source.HOURLY_TOTALS: "usage_hourly_totals l",
                  Source.DAILY: "usage_daily l", Source.DAILY_USERS: "usage_daily_users l",
                  Source.DAILY_TAGS: "usage_daily_tags l", Source.MONTHLY_USERS: "usage_monthly_users l"}
_HOURLY_SOURCES = (Source.HOURLY, Source.HOURLY_TOTALS)
# Rollups that store a dimension the ledger computes: '' for no user or no tag, as the ledger's
# expressions give it.
_STORED_DIMENSIONS = {Source.DAILY_USERS: {"user_id": "l.user_id"}, Source.DAILY_TAGS: {"tag": "l.tag"},
                      Source.MONTHLY_USERS: {"user_id": "l.user_id"}}


@dataclass(frozen=True, slots=True)
class _Scan:
    """One source's part of a statement: its table, its bucket expression, its filters and its sums."""

    source: Source
    table: str
    bucket_of: str
    where: list[str]
    sums: dict[str, str]  # measure -> its sum over the source, `NUMERIC` for money

    def column(self, name: str, expression: str) -> str:
        return _STORED_DIMENSIONS.get(self.source, {}).get(name, expression)


def _scan(query: UsageQuery, source: Source, arg: Callable[[Any], str]) -> _Scan:
    if source is Source.LEDGER:
        table = "usage_ledger l"
        if GroupField.TAG in query.group_by:
            table += " LEFT JOIN LATERAL unnest(l.tags) AS t(tag) ON true"
        time_column, start_arg, end_arg = "l.occurred_at", arg(query.start), arg(query.end)
        bucket_of = "l.occurred_at"
        sums = {"event_count": "count(*)::bigint", "unpriced_count": "(count(*) FILTER (WHERE l.unpriced))::bigint"}
        sums |= {c: f"coalesce(sum(l.{c}), 0)::bigint" for c in TOKEN_COLUMNS}
        sums |= {c: f"coalesce(sum(l.{c}), 0)" for c in COST_COLUMNS}
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
        sums = {c: f"sum(l.{c})::bigint" for c in ("event_count", "unpriced_count", *TOKEN_COLUMNS)}
        sums |= {c: f"sum(l.{c})" for c in COST_COLUMNS}
    where = ["l.tenant_id = $1", f"{time_column} >= {start_arg}", f"{time_column} < {end_arg}"]
    filter_columns = {"app_id": "l.app_id", "environment": "l.environment", "model": "l.model_key",
                      "provider": "l.provider", "user_id": "l.user_id"}
    for name, value in sorted(query.filters.items()):
        where.append(f"{filter_columns[name]} = {arg(value)}")
    return _Scan(source, table, bucket_of, where, sums)


def _measures(scan: _Scan) -> list[str]:
    """The measures as the API shows them: money as exact decimal text (see the module docstring)."""
    return [f"trim_scale({scan.sums[m]})::text AS {m}" if m in COST_COLUMNS else f"{scan.sums[m]} AS {m}"
            for m in MEASURES]


def _ranked_groups(query: UsageQuery, arg: Callable[[Any], str]) -> str:
    """`query`'s groups over its whole range and their `rank` (1 for the largest cost; ties by the group's
    values), read from the narrowest source for the range without buckets; the CTE of a top query."""
    totals = replace(query, granularity=None, after=None, top=None)
    scan = _scan(totals, choose_source(totals), arg)
    columns = [(name, scan.column(name, expression)) for name, expression in totals.columns]
    order = ", ".join(expression for _, expression in columns)
    select = [f"{expression} AS {name}" for name, expression in columns]
    select.append(f"row_number() OVER (ORDER BY {scan.sums['cost_total']} DESC, {order}) AS rank")
    group = ", ".join(str(i + 1) for i in range(len(columns)))
    return (f"ranked AS (SELECT {', '.join(select)} FROM {scan.table} "  # noqa: S608  (names are constants)
            f"WHERE {' AND '.join(scan.where)} GROUP BY {group})")


def build_usage_sql(query: UsageQuery, *, tenant_id: str, page: bool = True, others: bool = False,
                    count_others: bool = False) -> tuple[str, list[Any]]:
    """The SQL and its arguments for one page of `query` (`page=False`: every row, for an export). With
    `query.top`, only the rows of the `top` groups of largest cost over the range (`_ranked_groups`);
    `others=True`: instead, the sums of the other groups per bucket (one row without a granularity, with
    zeros when there are none), each row with the number of other groups over the range (`groups`);
    `count_others=True`: the rows of a top query with that number (`others_groups`). With `query.only`, only
    the rows of the groups it names (`others=True`: of the other groups; neither counts the others)."""
    args: list[Any] = [tenant_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    scan = _scan(query, choose_source(query), arg)
    select: list[str] = []
    names: list[str] = []
    if query.granularity is not None:
        select.append(f"date_trunc('{query.granularity.value}', {scan.bucket_of} AT TIME ZONE 'UTC') "
                      "AT TIME ZONE 'UTC' AS bucket")
        names.append("bucket")
    if not others:
        for name, expression in query.columns:
            select.append(f"{scan.column(name, expression)} AS {name}")
            names.append(name)
    where = scan.where
    with_ranked = ""
    if query.top is not None and query.only is not None:
        raise ValueError("a usage query takes top or only, not both")
    if query.top is not None:
        with_ranked = f"WITH {_ranked_groups(query, arg)}"
        group_values = ", ".join(scan.column(name, expression) for name, expression in query.columns)
        top_names = ", ".join(name for name, _ in query.columns)
        top_arg = arg(query.top)
        in_top = f"SELECT {top_names} FROM ranked WHERE rank <= {top_arg}"  # noqa: S608  (names are constants)
        where = [*where, f"({group_values}) {'NOT IN' if others else 'IN'} ({in_top})"]
        if others or count_others:
            name = "groups" if others else "others_groups"
            select.append(f"(SELECT count(*) FROM ranked WHERE rank > {top_arg})::bigint AS {name}")  # noqa: S608
    elif query.only is not None:
        if len(query.columns) != 1:
            raise ValueError("only takes the values of one group column")
        (name, expression), = query.columns
        in_only = f"{scan.column(name, expression)} = ANY({arg(list(query.only))}::text[])"
        where = [*where, f"NOT ({in_only})" if others else in_only]
    group = f"GROUP BY {', '.join(str(i + 1) for i in range(len(names)))}" if names else ""
    inner = f"SELECT {', '.join(select + _measures(scan))} FROM {scan.table} WHERE {' AND '.join(where)} {group}"  # noqa: S608
    outer_where = ""
    if query.after is not None and names and not others:
        placeholders = []
        for name, value in zip(names, query.after, strict=True):
            placeholders.append(f"{arg(value)}::{'timestamptz' if name == 'bucket' else 'text'}")
        outer_where = f"WHERE ({', '.join(names)}) > ({', '.join(placeholders)})"
    order = f"ORDER BY {', '.join(names)}" if names else ""
    limit = f"LIMIT {arg(query.limit + 1)}" if page and not others else ""
    sql = f"{with_ranked} SELECT * FROM ({inner}) AS agg {outer_where} {order} {limit}"  # noqa: S608  (names are constants)
    return sql, args


async def usage_records(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str,
                        query: UsageQuery) -> list[asyncpg.Record]:
    """One page of `query`: up to `query.limit + 1` rows after `query.after` (the extra row says that
    another page follows)."""
    sql, args = build_usage_sql(query, tenant_id=tenant_id)
    return await conn.fetch(sql, *args)


async def top_records(conn: asyncpg.Connection, *, tenant_id: str, query: UsageQuery,
                      difference: bool) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """One page of a top query (`usage_records`, each row with `others_groups`: how many groups it leaves
    out; an `only` query's rows have no count) and, `difference=False`: the other groups' sums per bucket
    (`build_usage_sql` with `others`; a scan of about every row of the range); `difference=True`: the
    range's totals per bucket (the query without groups: the narrowest source answers it, a month in 744
    hourly rows), which less the top rows are the others when each event is in one group (not by tag). Read
    in one repeatable-read snapshot."""
    sql, args = build_usage_sql(query, tenant_id=tenant_id, count_others=True)
    if difference:
        rest_sql, rest_args = build_usage_sql(replace(query, group_by=(), top=None, only=None, after=None),
                                              tenant_id=tenant_id, page=False)
    else:
        rest_sql, rest_args = build_usage_sql(query, tenant_id=tenant_id, others=True)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await conn.fetch(sql, *args), await conn.fetch(rest_sql, *rest_args)


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
