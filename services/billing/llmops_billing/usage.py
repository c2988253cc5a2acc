"""Usage and cost for one tenant: pages, the CSV export, the summary and the unpriced models.

Every function takes its connection (or pool) and the tenant id as keyword arguments; the tenant comes
from the caller's API key, never from a query parameter. The query is planned in `usage_query` (which
source answers it) and read through `store.usage`; results are JSON-ready (`schemas.UsagePage`, ...).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from llmops_billing import budgets
from llmops_billing.money import display_money
from llmops_billing.store import unpriced as unpriced_store
from llmops_billing.store import usage as usage_store
from llmops_billing.usage_query import (
    MEASURES,
    GroupField,
    UsageQuery,
    choose_source,
    csv_columns,
    encode_cursor,
    iso_utc,
    parse_usage_query,
    usage_row,
)

_CSV_CHUNK_BYTES = 64 * 1024


async def usage_page(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, query: UsageQuery) -> dict[str, Any]:
    """One page of `query` and the cursor of the next (`schemas.UsagePage`); with `query.top`, also the
    other groups' count and sums over the range (`others`); with `query.only`, the other groups' sums (their
    count is None: only a ranking counts them)."""
    others = None
    if query.top is None and query.only is None:
        records = await usage_store.usage_records(conn, tenant_id=tenant_id, query=query)
    else:
        # Every top row on this page and one group per event: the others are the totals less the top rows.
        difference = query.after is None and GroupField.TAG not in query.group_by
        async with _connection(conn) as one:
            records, rest = await usage_store.top_records(one, tenant_id=tenant_id, query=query,
                                                          difference=difference)
        if difference and len(records) > query.limit:  # a page of them only: sum the others in SQL instead
            async with _connection(conn) as one:
                records, rest = await usage_store.top_records(one, tenant_id=tenant_id, query=query, difference=False)
            difference = False
        bare = replace(query, group_by=())
        other_rows = less(rest, records, query) if difference else rest
        if query.only is not None:
            groups = None
        else:
            groups = records[0]["others_groups"] if records else (rest[0]["groups"] if rest and not difference else 0)
        others = {"groups": groups, "rows": [usage_row(r, bare) for r in other_rows]}
    more = len(records) > query.limit
    records = records[: query.limit]
    cursor = encode_cursor(query, {name: records[-1][name] for name in query.sort_names}) if more and records else None
    return {"from": iso_utc(query.start), "to": iso_utc(query.end),
            "granularity": query.granularity.value if query.granularity else None,
            "group_by": [g.value for g in query.group_by], "currency": "USD", "source": choose_source(query).value,
            "rows": [usage_row(r, query) for r in records], "next_cursor": cursor, "others": others}


def less(totals: Sequence[Mapping[str, Any]], top: Sequence[Mapping[str, Any]],
         query: UsageQuery) -> list[dict[str, Any]]:
    """The range's totals per bucket less the top groups' rows (exact sums: integers and decimal text):
    the other groups' sums when each event is in one group. A bucket left with no event is dropped (no
    granularity: the one row is kept, zeros and all)."""
    def bucket(row: Mapping[str, Any]) -> Any:
        return row["bucket"] if query.granularity is not None else None

    def number(value: Any) -> int | Decimal:
        return value if isinstance(value, int) else Decimal(value or 0)

    left: dict[Any, dict[str, Any]] = {bucket(r): {m: number(r[m]) for m in MEASURES} for r in totals}
    for row in top:
        sums = left.setdefault(bucket(row), {m: 0 for m in MEASURES})
        for m in MEASURES:
            sums[m] -= number(row[m])
    if query.granularity is None:
        return [{m: left.get(None, {}).get(m, 0) for m in MEASURES}]
    return [{"bucket": b, **sums} for b, sums in sorted(left.items()) if sums["event_count"]]


@asynccontextmanager
async def _connection(conn: asyncpg.Connection | asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as one:
            yield one
    else:
        yield conn


async def usage_export(conn: asyncpg.Connection, *, tenant_id: str, query: UsageQuery,
                       max_rows: int) -> AsyncIterator[dict[str, Any]]:
    """Every row of `query` (no pages, at most `max_rows`), JSON-ready, streamed from a server-side cursor.
    `conn` must not be a pool (see `store.usage.usage_export`)."""
    async for record in usage_store.usage_export(conn, tenant_id=tenant_id, query=query, max_rows=max_rows):
        yield usage_row(record, query)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")


def csv_cell(value: Any) -> Any:
    """A value as a spreadsheet may safely open it: text that a spreadsheet would run as a formula
    (`=`, `+`, `-`, `@`, tab, carriage return first; user ids, tags, app names are the tenant's own text)
    gets a leading `'`, as OWASP recommends; numbers stay numbers; null is empty."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


async def csv_export(pool: asyncpg.Pool, *, tenant_id: str, query: UsageQuery, max_rows: int) -> AsyncIterator[bytes]:
    """`usage_export` as CSV (`usage_query.csv_columns`; empty for null), in chunks of about 64 KiB; holds
    one connection of `pool` while it streams."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=csv_columns(query), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    async with pool.acquire() as conn:
        async for row in usage_export(conn, tenant_id=tenant_id, query=query, max_rows=max_rows):
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
            if buffer.tell() > _CSV_CHUNK_BYTES:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()


async def summary(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, start: datetime | None,
                  end: datetime | None, now: datetime) -> dict[str, Any]:
    """Totals over `[start, end)` (default: the current UTC month), the top models, apps and providers by
    cost, and the tenant's budgets (`schemas.UsageSummary`)."""
    base = parse_usage_query(start=start, end=end, granularity=None, group_by=None, now=now)
    base = replace(base, granularity=None)

    async def grouped(*groups: GroupField) -> list[dict[str, Any]]:
        query = replace(base, group_by=groups, limit=10_000)
        return [usage_row(r, query) for r in await usage_store.usage_records(conn, tenant_id=tenant_id, query=query)]

    totals = await grouped()
    total = totals[0] if totals else usage_row({m: 0 for m in MEASURES}, base)

    def top(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(rows, key=lambda r: (-Decimal(r["cost_total"]), -r["event_count"]))[:10]

    return {
        "from": iso_utc(base.start), "to": iso_utc(base.end), "currency": "USD", "source": choose_source(base).value,
        "totals": total,
        "cost_total_display": display_money(Decimal(total["cost_total"])),
        "top_models": top(await grouped(GroupField.PROVIDER, GroupField.MODEL)),
        "top_apps": top(await grouped(GroupField.APP)),
        "by_provider": top(await grouped(GroupField.PROVIDER)),
        "budgets": await budgets.tenant_budget_status(conn, tenant_id=tenant_id, now=now),
    }


async def unpriced_models(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str) -> dict[str, Any]:
    """The tenant's models seen without a price, most recently seen first (`schemas.UnpricedModels`)."""
    records = await unpriced_store.list_unpriced(conn, tenant_id=tenant_id)
    return {"models": [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items()}
                       for r in records]}
