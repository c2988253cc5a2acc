"""The billing API's queries: usage, summary, statements, prices. Always within one tenant.

Every function takes its connection (or pool) and the tenant id as keyword arguments; the tenant comes
from the caller's API key, never from a query parameter.

Usage is read from the cheapest source that answers exactly:
- `usage_daily` when the range starts and ends on UTC midnights and the grouping has no user or tag;
- `usage_daily_users` / `usage_daily_tags` when the grouping has `user` (or `tag`, not both, and no
  `prompt`), the granularity is day, month or none, and the range is on UTC midnights;
- `usage_hourly` when the range is on whole UTC hours (or the granularity is `hour`) and there is no
  user or tag grouping;
- `usage_ledger` otherwise: a range not on whole hours, and user or tag grouping that the by-user and
  by-tag rollups cannot answer (hourly granularity, a range not on UTC midnights, user and tag together,
  or with prompt).
All give the same numbers for the same question: rollups are sums over the ledger.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg
import orjson

from llmops_billing.cost import Line
from llmops_billing.money import EXACT, ZERO, money_str, round_money
from llmops_billing.normalise import normalise_model, normalise_provider
from llmops_billing.prices import ModelPrice, PriceCatalogue


class QueryError(ValueError):
    """A bad parameter: `field` names it (the API answers 422)."""

    def __init__(self, field: str, message: str, *, location: str = "query") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.location = location  # query, path or body: where the API says the field is


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


class GroupField(StrEnum):
    APP = "app"
    ENVIRONMENT = "environment"
    MODEL = "model"
    PROVIDER = "provider"
    PROMPT = "prompt"
    USER = "user"
    TAG = "tag"


class Source(StrEnum):
    LEDGER = "ledger"
    HOURLY = "hourly"
    DAILY = "daily"
    DAILY_USERS = "daily_users"
    DAILY_TAGS = "daily_tags"


# Output column -> SQL over the source (`l` is the source's alias; `t.tag` the unnested tag).
_GROUP_COLUMNS: dict[GroupField, tuple[tuple[str, str], ...]] = {
    GroupField.APP: (("app_id", "l.app_id"),),
    GroupField.ENVIRONMENT: (("environment", "l.environment"),),
    GroupField.MODEL: (("model", "l.model_key"),),
    GroupField.PROVIDER: (("provider", "l.provider"),),
    GroupField.PROMPT: (("prompt_name", "l.prompt_name"), ("prompt_version", "l.prompt_version"),
                        ("prompt_variant", "l.prompt_variant")),
    GroupField.USER: (("user_id", "coalesce(l.user_id, '')"),),
    GroupField.TAG: (("tag", "coalesce(t.tag, '')"),),
}
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_write_input_tokens",
                 "reasoning_tokens")
COST_COLUMNS = ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output", "cost_reasoning",
                "cost_request", "cost_total")
MEASURES = ("event_count", "unpriced_count", *TOKEN_COLUMNS, *COST_COLUMNS)
FILTERS = ("app_id", "environment", "model", "provider")
MAX_RANGE = timedelta(days=400)


@dataclass(frozen=True)
class UsageQuery:
    start: datetime
    end: datetime
    granularity: Granularity | None = Granularity.DAY  # None: one row per group over the whole range
    group_by: tuple[GroupField, ...] = ()
    filters: Mapping[str, str] = field(default_factory=dict)
    limit: int = 100
    after: tuple[Any, ...] | None = None  # the sort key of the last row of the previous page

    @property
    def columns(self) -> list[tuple[str, str]]:
        return [c for g in self.group_by for c in _GROUP_COLUMNS[g]]

    @property
    def sort_names(self) -> list[str]:
        return (["bucket"] if self.granularity is not None else []) + [name for name, _ in self.columns]

    def fingerprint(self) -> str:
        """What the query asks, without its page: a cursor is valid only for the query that made it."""
        text = orjson.dumps([self.start.isoformat(), self.end.isoformat(),
                             None if self.granularity is None else self.granularity.value,
                             [g.value for g in self.group_by], sorted(self.filters.items())])
        return hashlib.sha256(text).hexdigest()[:16]


def parse_usage_query(*, start: datetime | None, end: datetime | None, granularity: str | None,
                      group_by: Sequence[str] | str | None, filters: Mapping[str, str | None] | None = None,
                      limit: int = 100, max_limit: int = 1_000, cursor: str | None = None,
                      now: datetime | None = None) -> UsageQuery:
    """A validated `UsageQuery`, or `QueryError` naming the bad parameter.

    Defaults: `from` the start of the current UTC month, `to` the start of the next one, `granularity`
    day. `group_by` is a comma-separated list (or a list) of app, environment, model, provider, prompt,
    user, tag.
    """
    now = now or datetime.now(UTC)
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = month_start if start is None else start
    end = (month_start + timedelta(days=32)).replace(day=1) if end is None else end
    for name, instant in (("from", start), ("to", end)):
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise QueryError(name, "needs a time zone (for example 2026-11-01T00:00:00Z)")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise QueryError("to", "must be after from")
    if end - start > MAX_RANGE:
        raise QueryError("to", f"a query covers at most {MAX_RANGE.days} days")
    gran: Granularity | None
    try:
        gran = Granularity(granularity) if granularity else Granularity.DAY
    except ValueError:
        raise QueryError("granularity", f"{granularity!r} is not one of hour, day, month") from None
    if gran is Granularity.HOUR and end - start > timedelta(days=93):
        raise QueryError("granularity", "hourly buckets cover at most 93 days; use day or month")
    if isinstance(group_by, str):
        raw_groups = [g.strip() for g in group_by.split(",") if g.strip()]
    else:
        raw_groups = [g.strip() for item in (group_by or []) for g in item.split(",") if g.strip()]
    groups: list[GroupField] = []
    for raw in raw_groups:
        try:
            group = GroupField(raw)
        except ValueError:
            known = ", ".join(g.value for g in GroupField)
            raise QueryError("group_by", f"{raw!r} is not one of {known}") from None
        if group not in groups:
            groups.append(group)
    if not 1 <= limit <= max_limit:
        raise QueryError("limit", f"must be from 1 to {max_limit}")
    clean_filters: dict[str, str] = {}
    for name, text in (filters or {}).items():
        if text is None or text == "":
            continue
        if name not in FILTERS:
            raise QueryError(name, "unknown filter")
        clean_filters[name] = (normalise_model(text) if name == "model"
                               else normalise_provider(text) if name == "provider" else text)
    query = UsageQuery(start, end, gran, tuple(groups), clean_filters, limit)
    if cursor:
        query = replace(query, after=decode_cursor(cursor, query))
    return query


def encode_cursor(query: UsageQuery, row: Mapping[str, Any]) -> str:
    values = [row[name].isoformat() if isinstance(row[name], datetime) else row[name] for name in query.sort_names]
    return base64.urlsafe_b64encode(orjson.dumps([query.fingerprint(), values])).decode().rstrip("=")


def decode_cursor(cursor: str, query: UsageQuery) -> tuple[Any, ...]:
    try:
        fingerprint, values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError, TypeError):
        raise QueryError("cursor", "is not a cursor this API returned") from None
    if fingerprint != query.fingerprint() or not isinstance(values, list) or len(values) != len(query.sort_names):
        raise QueryError("cursor", "belongs to another query: repeat the same parameters with it")
    out: list[Any] = []
    for name, value in zip(query.sort_names, values, strict=True):
        if name == "bucket":
            try:
                out.append(datetime.fromisoformat(value))
            except (TypeError, ValueError):
                raise QueryError("cursor", "is not a cursor this API returned") from None
        elif isinstance(value, str):
            out.append(value)
        else:
            raise QueryError("cursor", "is not a cursor this API returned")
    return tuple(out)


def _aligned(at: datetime, unit: timedelta) -> bool:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) % unit == timedelta(0)


_DIMENSION_TABLES = {Source.DAILY_USERS: "usage_daily_users l", Source.DAILY_TAGS: "usage_daily_tags l"}


def choose_source(query: UsageQuery) -> Source:
    hours = _aligned(query.start, timedelta(hours=1)) and _aligned(query.end, timedelta(hours=1))
    days = _aligned(query.start, timedelta(days=1)) and _aligned(query.end, timedelta(days=1))
    by_user, by_tag = GroupField.USER in query.group_by, GroupField.TAG in query.group_by
    if by_user or by_tag:
        # The by-user and by-tag rollups are daily, have one of the two each, and no prompt columns.
        if (by_user and by_tag) or GroupField.PROMPT in query.group_by or not days \
                or query.granularity is Granularity.HOUR:
            return Source.LEDGER
        return Source.DAILY_USERS if by_user else Source.DAILY_TAGS
    if query.granularity is Granularity.HOUR:
        return Source.HOURLY if hours else Source.LEDGER
    if days:
        return Source.DAILY
    return Source.HOURLY if hours else Source.LEDGER


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
        measures += [f"coalesce(sum(l.{c}), 0) AS {c}" for c in COST_COLUMNS]
    else:
        table = (_DIMENSION_TABLES.get(source)
                 or ("usage_hourly l" if source is Source.HOURLY else "usage_daily l"))
        time_column = "l.bucket"
        if source in _DIMENSION_TABLES:
            # Literal days (our own `date`s, not input text): with parameters, the generic plan a prepared
            # statement switches to after five runs guesses a few hundred rows for any range and sorts tens
            # of thousands on disk (twice as slow); with literals every plan knows the range's size.
            start_arg, end_arg = (f"'{query.start.date().isoformat()}'::date",
                                  f"'{query.end.date().isoformat()}'::date")
            bucket_of = "(l.bucket::timestamp AT TIME ZONE 'UTC')"
        elif source is not Source.HOURLY:
            start_arg, end_arg = arg(query.start.date()), arg(query.end.date())
            bucket_of = "(l.bucket::timestamp AT TIME ZONE 'UTC')"
        else:
            start_arg, end_arg = arg(query.start), arg(query.end)
            bucket_of = "l.bucket"
        measures = [f"sum(l.{c})::bigint AS {c}" for c in ("event_count", "unpriced_count", *TOKEN_COLUMNS)]
        measures += [f"sum(l.{c}) AS {c}" for c in COST_COLUMNS]

    select: list[str] = []
    names: list[str] = []
    if query.granularity is not None:
        select.append(f"date_trunc('{query.granularity.value}', {bucket_of} AT TIME ZONE 'UTC') "
                      "AT TIME ZONE 'UTC' AS bucket")
        names.append("bucket")
    # The by-user and by-tag rollups hold '' for no user or no tag, as the ledger's expressions give it.
    rollup_columns = {"user_id": "l.user_id", "tag": "l.tag"} if source in _DIMENSION_TABLES else {}
    for name, expression in query.columns:
        select.append(f"{rollup_columns.get(name, expression)} AS {name}")
        names.append(name)
    where = ["l.tenant_id = $1", f"{time_column} >= {start_arg}", f"{time_column} < {end_arg}"]
    filter_columns = {"app_id": "l.app_id", "environment": "l.environment", "model": "l.model_key",
                      "provider": "l.provider"}
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


def usage_row(record: Mapping[str, Any], query: UsageQuery) -> dict[str, Any]:
    """One result row, JSON-ready: money as strings, empty group values as null."""
    out: dict[str, Any] = {}
    if query.granularity is not None:
        out["bucket"] = record["bucket"].astimezone(UTC).isoformat().replace("+00:00", "Z")
    for name, _ in query.columns:
        value = record[name]
        out[name] = None if value == "" and name in ("user_id", "tag") else value
    for name in ("event_count", "unpriced_count", *TOKEN_COLUMNS):
        out[name] = int(record[name] or 0)
    for name in COST_COLUMNS:
        out[name] = money_str(record[name] or ZERO)
    return out


@dataclass(frozen=True)
class UsagePage:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    source: Source


async def usage(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, query: UsageQuery) -> UsagePage:
    sql, args = build_usage_sql(query, tenant_id=tenant_id)
    records = await conn.fetch(sql, *args)
    more = len(records) > query.limit
    records = records[: query.limit]
    cursor = encode_cursor(query, _sort_values(records[-1], query)) if more and records else None
    return UsagePage([usage_row(r, query) for r in records], cursor, choose_source(query))


def _sort_values(record: Mapping[str, Any], query: UsageQuery) -> dict[str, Any]:
    return {name: record[name] for name in query.sort_names}


async def usage_export(conn: asyncpg.Connection, *, tenant_id: str, query: UsageQuery, max_rows: int,
                       fetch_size: int = 2_000) -> AsyncIterator[dict[str, Any]]:
    """Every row of `query` (no pages), streamed from a server-side cursor: an async iterator of dicts.

    `conn` must not be a pool: the cursor needs one connection in a transaction for its whole life.
    """
    sql, args = build_usage_sql(replace(query, after=None), tenant_id=tenant_id, page=False)
    sent = 0
    async with conn.transaction(readonly=True):
        async for record in conn.cursor(sql, *args, prefetch=fetch_size):
            if sent >= max_rows:
                break
            sent += 1
            yield usage_row(record, query)


def csv_columns(query: UsageQuery) -> list[str]:
    return ((["bucket"] if query.granularity is not None else []) + [name for name, _ in query.columns]
            + list(MEASURES))


# --------------------------------------------------------------------------------------------------
# Summary


async def summary(conn: asyncpg.Connection | asyncpg.Pool, *, tenant_id: str, start: datetime,
                  end: datetime) -> dict[str, Any]:
    """Totals over `[start, end)`, and the top models, apps and providers by cost."""
    base = parse_usage_query(start=start, end=end, granularity=None, group_by=None)
    base = replace(base, granularity=None)

    async def grouped(*groups: GroupField) -> list[dict[str, Any]]:
        query = replace(base, group_by=groups, limit=10_000)
        sql, args = build_usage_sql(query, tenant_id=tenant_id)
        return [usage_row(r, query) for r in await conn.fetch(sql, *args)]

    totals = await grouped()
    total = totals[0] if totals else usage_row({m: 0 for m in MEASURES}, base)

    def top(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(rows, key=lambda r: (-Decimal(r["cost_total"]), -r["event_count"]))[:10]

    return {
        "from": iso_utc(start), "to": iso_utc(end), "currency": "USD", "source": choose_source(base).value,
        "totals": total,
        "cost_total_rounded": money_str(round_money(Decimal(total["cost_total"]), 2)),
        "top_models": top(await grouped(GroupField.PROVIDER, GroupField.MODEL)),
        "top_apps": top(await grouped(GroupField.APP)),
        "by_provider": top(await grouped(GroupField.PROVIDER)),
    }


def iso_utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------------
# Monthly statement

LINE_ORDER = {line.value: i for i, line in enumerate(Line)}

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


def parse_month(text: str) -> date:
    try:
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError(text)
        return date(int(year), int(month), 1)
    except ValueError:
        raise QueryError("month", f"{text!r} is not a month like 2026-11", location="path") from None


class StatementMismatch(RuntimeError):
    """Line items do not add up to the ledger: never expected; the statement is refused rather than wrong."""


async def statement(conn: asyncpg.Connection, *, tenant_id: str, month: date,
                    now: datetime | None = None) -> dict[str, Any]:
    """The month's statement: line items (quantity x unit price = amount, exactly), and a total that
    equals SUM(cost_total) over the ledger for the month. Read in one repeatable-read snapshot."""
    now = now or datetime.now(UTC)
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        item_rows = await conn.fetch(_STATEMENT_ITEMS, tenant_id, start, end)
        totals = await conn.fetchrow(_STATEMENT_TOTALS, tenant_id, start, end)
        unpriced_rows = await conn.fetch(_STATEMENT_UNPRICED, tenant_id, start, end)
    assert totals is not None
    items = []
    total = ZERO
    for r in sorted(item_rows, key=lambda r: (r["provider"], r["model_key"], r["price_version"],
                                              LINE_ORDER[r["line"]], r["unit_price"])):
        quantity, unit_price, amount = int(r["quantity"]), r["unit_price"], r["amount"]
        if r["line"] == Line.REQUEST.value and amount == 0:
            continue  # no per-request fee: not a line anyone needs to read
        if EXACT.multiply(Decimal(quantity), unit_price) != amount:
            raise StatementMismatch(f"{r['model_key']} {r['line']}: {quantity} x {unit_price} != {amount}")
        items.append({
            "provider": r["provider"], "model": r["model_key"], "price_version": r["price_version"],
            "line": r["line"], "quantity": quantity, "unit": "request" if r["line"] == "request" else "token",
            "unit_price": money_str(unit_price), "amount": money_str(amount),
            "amount_rounded": money_str(round_money(amount, 2)), "events": int(r["events"]),
        })
        total = EXACT.add(total, amount)
    ledger_total = totals["ledger_total"]
    if total != ledger_total:
        raise StatementMismatch(f"line items add up to {total}, the ledger to {ledger_total}")
    return {
        "tenant_id": tenant_id, "month": f"{month.year:04d}-{month.month:02d}", "currency": "USD",
        "period": {"from": iso_utc(start), "to": iso_utc(end)},
        "status": "closed" if end <= now else "open",
        "items": items,
        "total": money_str(total), "total_rounded": money_str(round_money(total, 2)),
        "ledger_total": money_str(ledger_total),
        "events": int(totals["events"]), "unpriced_events": int(totals["unpriced_events"]),
        "input_tokens": int(totals["input_tokens"]), "output_tokens": int(totals["output_tokens"]),
        "unpriced": [
            {"provider": r["provider"], "model": r["model"], "reason": r["unpriced_reason"], "events": int(r["events"]),
             "input_tokens": int(r["input_tokens"]), "output_tokens": int(r["output_tokens"])}
            for r in unpriced_rows
        ],
    }


# --------------------------------------------------------------------------------------------------
# Prices (read from the catalogue the process holds)


def visible_prices(catalogue: PriceCatalogue, *, tenant_id: str, model: str | None = None,
                   provider: str | None = None) -> list[ModelPrice]:
    """List prices and this tenant's own price rows (never another tenant's), in a stable order."""
    key = normalise_model(model) if model else None
    wanted_provider = normalise_provider(provider) if provider else None
    rows = [p for p in catalogue.prices
            if p.tenant_id in (None, tenant_id)
            and (key is None or p.model_key == key)
            and (wanted_provider is None or p.provider == wanted_provider)]
    return sorted(rows, key=lambda p: (p.model_key, p.provider, p.tenant_id or "", p.effective_from))


def page_of(items: Sequence[Any], *, limit: int, cursor: str | None, scope: str) -> tuple[list[Any], str | None]:
    """Offset pages for in-memory lists; the cursor names its list (`scope`) so it cannot be reused elsewhere."""
    offset = 0
    if cursor:
        try:
            got_scope, offset = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (ValueError, binascii.Error, orjson.JSONDecodeError, TypeError):
            raise QueryError("cursor", "is not a cursor this API returned") from None
        if got_scope != scope or not isinstance(offset, int) or offset < 0:
            raise QueryError("cursor", "belongs to another query: repeat the same parameters with it")
    chunk = list(items[offset: offset + limit])
    more = offset + limit < len(items)
    next_cursor = (base64.urlsafe_b64encode(orjson.dumps([scope, offset + limit])).decode().rstrip("=")
                   if more else None)
    return chunk, next_cursor


def quote(catalogue: PriceCatalogue, *, tenant_id: str, model: str, provider: str | None,
          at: datetime) -> dict[str, Any] | None:
    """The price this tenant pays for `model` at `at`, and how it was found."""
    match = catalogue.resolve(tenant_id, model, provider, at)
    if match is None:
        return None
    return {
        "model": model, "provider": provider, "at": iso_utc(at), "matched_key": match.key, "match": match.step.value,
        "override": match.override.value,
        "discount": None if match.discount is None else {
            "discount_id": match.discount.discount_id, "percent": money_str(match.discount.percent)},
        "price": match.price.as_json(),
    }
