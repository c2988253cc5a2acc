"""The usage ledger: one priced row per billable interaction, and the rollups built from those rows.

`ledger_row` is the pure transform (interaction + catalogue -> row, or None when the event is not
billable); `write_batch` is the one database step, meant to run inside the worker's per-batch
transaction:

1. make sure the monthly ledger partitions for the batch exist, and COPY the rows into a temporary
   staging table (per connection; emptied before each batch and at commit);
2. from there, insert the event ids into `usage_events_seen` with ON CONFLICT DO NOTHING RETURNING, and
   ledger rows only for the ids that came back (so a redelivered event is a no-op);
3. add only those inserted rows to `usage_hourly`, `usage_daily`, `usage_daily_users` and
   `usage_daily_tags` (2 and 3 are one SQL statement: the rollups are grouped in Postgres from the ledger
   insert's RETURNING rows);
4. count unpriced models in `unpriced_models`, returning those not yet alerted on.

`repriced` prices a stored row again (re-pricing); `rollup_deltas`, `dimension_deltas` and
`apply_rollup_deltas` move the difference into the rollups.

The by-user and by-tag daily rollups: `usage_daily_users` keys a row's user ('' when none);
`usage_daily_tags` adds a row once under EACH of its tags ('' when it has none), so per-tag sums
deliberately count an event with several tags several times (per-tag usage; totals come from
`usage_daily`).

Which events are billable: spans of kind `llm` or `embedding`. Other spans (chain, agent, tool,
retriever) are never billed, even when they carry usage, because their model calls are spans of their
own and billing both would count tokens twice. An LLM span without usage is recorded unpriced
(`no_usage`) unless it failed (`status=error`), in which case nothing is billed.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from llmops_billing.cost import UnpricedReason, price_usage
from llmops_billing.money import EXACT, ZERO
from llmops_billing.normalise import normalise_model, normalise_provider, provider_of_prefix
from llmops_billing.prices import PriceCatalogue, PriceMatch
from llmops_shared.contract import Interaction, SpanKind, Status, Usage

BILLABLE_KINDS = frozenset({SpanKind.LLM, SpanKind.EMBEDDING})


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One `usage_ledger` row (field order = column order)."""

    event_id: uuid.UUID
    occurred_at: datetime
    tenant_id: str
    app_id: str
    environment: str
    trace_id: str
    span_id: str
    span_kind: str
    status: str
    provider: str
    model: str
    response_model: str
    model_key: str
    prompt_name: str
    prompt_version: str
    prompt_variant: str
    user_id: str | None
    tags: tuple[str, ...]
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_write_input_tokens: int
    reasoning_tokens: int
    cost_input: Decimal | None
    cost_cache_read: Decimal | None
    cost_cache_write: Decimal | None
    cost_output: Decimal | None
    cost_reasoning: Decimal | None
    cost_request: Decimal | None
    cost_total: Decimal | None
    unpriced: bool
    unpriced_reason: str | None
    price_version: str | None
    price_tier: int | None
    priced_at: datetime


COLUMNS = tuple(f.name for f in fields(LedgerRow))


def ledger_row(interaction: Interaction, catalogue: PriceCatalogue, *, priced_at: datetime) -> LedgerRow | None:
    """The ledger row of one interaction, priced with `catalogue` as of its `occurred_at`; None when the
    event is not billable (see the module docstring)."""
    if interaction.span_kind not in BILLABLE_KINDS:
        return None
    usage = interaction.usage
    reported = interaction.response_model or interaction.model
    provider = normalise_provider(interaction.provider) or (provider_of_prefix(reported) if reported else "")
    match: PriceMatch | None = None
    if usage is None:
        if interaction.status is Status.ERROR:
            return None
        reason: UnpricedReason | None = UnpricedReason.NO_USAGE
        usage = _NO_USAGE
    elif reported is None:
        reason = UnpricedReason.NO_MODEL
    else:
        match = _resolve(interaction, catalogue)
        reason = None if match is not None else UnpricedReason.UNKNOWN_MODEL
    prompt = interaction.prompt
    return LedgerRow(
        event_id=interaction.event_id,
        occurred_at=interaction.occurred_at,
        tenant_id=interaction.tenant_id,
        app_id=interaction.app_id,
        environment=interaction.environment,
        trace_id=interaction.trace_id,
        span_id=interaction.span_id,
        span_kind=interaction.span_kind.value,
        status=interaction.status.value,
        provider=provider,
        model=interaction.model or "",
        response_model=interaction.response_model or "",
        prompt_name=prompt.name if prompt else "",
        prompt_version=(prompt.version or "") if prompt else "",
        prompt_variant=(prompt.variant or "") if prompt else "",
        user_id=interaction.user_id,
        tags=tuple(interaction.tags),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_input_tokens=usage.cache_read_input_tokens,
        cache_write_input_tokens=usage.cache_write_input_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        priced_at=priced_at,
        **_pricing(usage, match, reason, reported),
    )


_NO_USAGE = Usage()
_UNPRICED_AMOUNTS: tuple[None, ...] = (None,) * 7


def _pricing(usage: Usage, match: PriceMatch | None, reason: UnpricedReason | None,
             reported: str | None) -> dict[str, Any]:
    """The pricing columns of a row (`PRICING_COLUMNS`): the model key, the six line amounts and their
    total, `unpriced` and its reason, the price version and the tier. The amounts are `cost.price_usage`'s
    (the one pricing function); an unpriced row has no amounts at all."""
    model_key = match.key if match is not None else (normalise_model(reported) if reported else "")
    if match is None:
        values: tuple[Any, ...] = (model_key, *_UNPRICED_AMOUNTS, True,
                                   (reason or UnpricedReason.UNKNOWN_MODEL).value, None, None)
    else:
        cost = price_usage(usage, match.price)
        values = (model_key, *cost.amounts, cost.total, False, None, cost.price_version, cost.tier_above_input_tokens)
    return dict(zip(PRICING_COLUMNS, values, strict=True))


def _resolve(interaction: Interaction, catalogue: PriceCatalogue) -> PriceMatch | None:
    return resolve_names(catalogue, tenant_id=interaction.tenant_id, provider=interaction.provider,
                         names=(interaction.response_model, interaction.model), at=interaction.occurred_at)


def resolve_names(catalogue: PriceCatalogue, *, tenant_id: str, provider: str | None,
                  names: Iterable[str | None], at: datetime) -> PriceMatch | None:
    """The provider's model name first (it names the exact snapshot served), then the requested one."""
    tried: list[str] = []
    for name in names:
        if not name or name in tried:
            continue
        match = catalogue.resolve(tenant_id, name, provider, at)
        if match is not None:
            return match
        tried.append(name)
    return None


def repriced(row: LedgerRow, catalogue: PriceCatalogue, *, priced_at: datetime) -> LedgerRow:
    """`row` priced again with `catalogue` (after a price correction): the same look-up as `ledger_row`,
    from what the row recorded. Only the cost columns, the price version and tier, the model key and
    `priced_at` can change."""
    reported = row.response_model or row.model
    match: PriceMatch | None = None
    usage = Usage.model_construct(
        input_tokens=row.input_tokens, output_tokens=row.output_tokens,
        cache_read_input_tokens=row.cache_read_input_tokens, cache_write_input_tokens=row.cache_write_input_tokens,
        reasoning_tokens=row.reasoning_tokens)
    if row.unpriced_reason == UnpricedReason.NO_USAGE.value:
        reason: UnpricedReason | None = UnpricedReason.NO_USAGE
    elif not reported:
        reason = UnpricedReason.NO_MODEL
    else:
        match = resolve_names(catalogue, tenant_id=row.tenant_id, provider=row.provider or None,
                              names=(row.response_model, row.model), at=row.occurred_at)
        reason = None if match is not None else UnpricedReason.UNKNOWN_MODEL
    return replace(row, **_pricing(usage, match, reason, reported or None), priced_at=priced_at)


PRICING_COLUMNS = ("model_key", "cost_input", "cost_cache_read", "cost_cache_write", "cost_output", "cost_reasoning",
                   "cost_request", "cost_total", "unpriced", "unpriced_reason", "price_version", "price_tier")


def pricing_changed(old: LedgerRow, new: LedgerRow) -> bool:
    return any(getattr(old, name) != getattr(new, name) for name in PRICING_COLUMNS)


def row_from_record(record: Any) -> LedgerRow:
    """A `LedgerRow` from a `SELECT *`-style record of `usage_ledger`."""
    values = {name: record[name] for name in COLUMNS}
    values["tags"] = tuple(values["tags"] or ())
    return LedgerRow(**values)


# --------------------------------------------------------------------------------------------------
# Rollups (pure)

_TOKENS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_write_input_tokens",
           "reasoning_tokens")
_COSTS = ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output", "cost_reasoning",
          "cost_request", "cost_total")

# tenant, bucket, app, environment, provider, model_key, prompt name, version, variant
RollupKey = tuple[str, Any, str, str, str, str, str, str, str]
# tenant, day, user ('' when none) or tag ('' when none), app, environment, provider, model_key
DimensionKey = tuple[str, date, str, str, str, str, str]


@dataclass(slots=True)
class RollupTotals:
    event_count: int = 0
    unpriced_count: int = 0
    tokens: list[int] = field(default_factory=lambda: [0] * len(_TOKENS))
    costs: list[Decimal] = field(default_factory=lambda: [ZERO] * len(_COSTS))

    def add(self, row: LedgerRow, sign: int = 1) -> None:
        """Add `row` (or take it away, `sign=-1`, when re-pricing moves it)."""
        self.event_count += sign
        self.unpriced_count += sign * int(row.unpriced)
        for i, name in enumerate(_TOKENS):
            self.tokens[i] += sign * getattr(row, name)
        if not row.unpriced:
            for i, name in enumerate(_COSTS):
                value = getattr(row, name)
                self.costs[i] = EXACT.add(self.costs[i], value) if sign > 0 else EXACT.subtract(self.costs[i], value)

    def is_zero(self) -> bool:
        return (self.event_count == 0 and self.unpriced_count == 0 and not any(self.tokens)
                and not any(self.costs))


def hour_bucket(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_bucket(at: datetime) -> date:
    return at.astimezone(UTC).date()


def rollup_deltas(rows: Iterable[LedgerRow], removed: Iterable[LedgerRow] = (),
                  ) -> tuple[dict[RollupKey, RollupTotals], dict[RollupKey, RollupTotals]]:
    """What `rows` add to `usage_hourly` and `usage_daily` (less what `removed` takes away), one entry per
    rollup key; keys whose change is nothing at all are left out."""
    hourly: dict[RollupKey, RollupTotals] = {}
    daily: dict[RollupKey, RollupTotals] = {}
    for sign, group in ((-1, removed), (1, rows)):
        for row in group:
            rest = (row.app_id, row.environment, row.provider, row.model_key,
                    row.prompt_name, row.prompt_version, row.prompt_variant)
            hourly.setdefault((row.tenant_id, hour_bucket(row.occurred_at), *rest), RollupTotals()).add(row, sign)
            daily.setdefault((row.tenant_id, day_bucket(row.occurred_at), *rest), RollupTotals()).add(row, sign)
    return ({k: v for k, v in hourly.items() if not v.is_zero()},
            {k: v for k, v in daily.items() if not v.is_zero()})


def row_tags(row: LedgerRow) -> tuple[str, ...]:
    """The tags a row counts under in `usage_daily_tags`: each of its tags (repeats included, as
    `unnest` gives them), or '' when it has none."""
    return row.tags or ("",)


def dimension_deltas(rows: Iterable[LedgerRow], removed: Iterable[LedgerRow] = (),
                     ) -> tuple[dict[DimensionKey, RollupTotals], dict[DimensionKey, RollupTotals]]:
    """What `rows` add to `usage_daily_users` and `usage_daily_tags` (less what `removed` takes away);
    keys whose change is nothing at all are left out."""
    users: dict[DimensionKey, RollupTotals] = {}
    tags: dict[DimensionKey, RollupTotals] = {}
    for sign, group in ((-1, removed), (1, rows)):
        for row in group:
            day = day_bucket(row.occurred_at)
            rest = (row.app_id, row.environment, row.provider, row.model_key)
            users.setdefault((row.tenant_id, day, row.user_id or "", *rest), RollupTotals()).add(row, sign)
            for tag in row_tags(row):
                tags.setdefault((row.tenant_id, day, tag, *rest), RollupTotals()).add(row, sign)
    return ({k: v for k, v in users.items() if not v.is_zero()},
            {k: v for k, v in tags.items() if not v.is_zero()})


# --------------------------------------------------------------------------------------------------
# The write (in the caller's transaction)


@dataclass(frozen=True, slots=True)
class UnpricedModel:
    tenant_id: str
    provider: str
    model: str
    model_key: str
    reason: str
    event_count: int


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: tuple[LedgerRow, ...]  # rows written now; the others were already in the ledger
    unalerted_unpriced: tuple[UnpricedModel, ...]  # unpriced models with no alert raised yet


_STAGING_NAME = "billing_ledger_staging"
_STAGING = f"pg_temp.{_STAGING_NAME}"  # the session's own, whatever the search path

_TYPES = {
    "event_id": "uuid", "occurred_at": "timestamptz", "tags": "text[]",
    "input_tokens": "bigint", "output_tokens": "bigint", "cache_read_input_tokens": "bigint",
    "cache_write_input_tokens": "bigint", "reasoning_tokens": "bigint",
    "unpriced": "boolean", "price_tier": "integer", "priced_at": "timestamptz",
}  # the staging table's column types; everything else (money included) is text

# The batch goes to Postgres by binary COPY into a temporary staging table (one per connection, created
# by its first batch; emptied before every batch and at every commit), then one statement moves it on.
# Money travels as exact decimal strings (cheaper to encode than binary NUMERIC) and is cast to NUMERIC
# in that statement. Constant names only.
_STAGING_COLUMNS = ", ".join(f"{name} {_TYPES.get(name, 'text')}" for name in COLUMNS)
_PREPARE_STAGING = f"""
    CREATE TEMP TABLE IF NOT EXISTS {_STAGING_NAME} ({_STAGING_COLUMNS}) ON COMMIT DELETE ROWS;
    DELETE FROM {_STAGING};
"""  # noqa: S608


def _insert_sql() -> str:
    columns = ", ".join(COLUMNS)
    selected = ", ".join(f"s.{name}::numeric" if name in _COSTS else f"s.{name}" for name in COLUMNS)
    # Built once at import from the constant column names above: no outside input reaches this SQL.
    return f"""
        WITH fresh AS (
            INSERT INTO usage_events_seen (event_id, occurred_at)
            SELECT event_id, occurred_at FROM {_STAGING}
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id
        ), inserted AS (
            INSERT INTO usage_ledger ({columns})
            SELECT {selected} FROM {_STAGING} s JOIN fresh USING (event_id)
            RETURNING {", ".join(_RETURNED)}
        ), hourly AS (
            {_rollup_from_inserted("usage_hourly", _HOUR_OF)}
        ), daily AS (
            {_rollup_from_inserted("usage_daily", _DAY_OF)}
        ), daily_users AS (
            {_rollup_from_inserted("usage_daily_users", _DAY_OF, key=_USER_KEY, user_of="coalesce(user_id, '')")}
        ), daily_tags AS (
            {_rollup_from_inserted("usage_daily_tags", _DAY_OF, key=_TAG_KEY, source=_INSERTED_TAGS)}
        )
        SELECT event_id FROM inserted
    """  # noqa: S608


_RETURNED = ("event_id", "occurred_at", "tenant_id", "app_id", "environment", "provider", "model_key", "prompt_name",
             "prompt_version", "prompt_variant", "user_id", "tags", "unpriced", *_TOKENS, *_COSTS)  # the rollups'
_HOUR_OF = "date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
_DAY_OF = "(occurred_at AT TIME ZONE 'UTC')::date"
_ROLLUP_KEY = ("tenant_id", "bucket", "app_id", "environment", "provider", "model_key", "prompt_name",
               "prompt_version", "prompt_variant")
_USER_KEY = ("tenant_id", "bucket", "user_id", "app_id", "environment", "provider", "model_key")
_TAG_KEY = ("tenant_id", "bucket", "tag", "app_id", "environment", "provider", "model_key")
# One row per tag of each inserted row ('' when it has none): `ledger.row_tags`.
_INSERTED_TAGS = ("inserted CROSS JOIN LATERAL unnest(CASE WHEN cardinality(inserted.tags) = 0 THEN ARRAY['']::text[] "
                  "ELSE inserted.tags END) AS t(tag)")


def _rollup_from_inserted(table: str, bucket: str, *, key: tuple[str, ...] = _ROLLUP_KEY, source: str = "inserted",
                          user_of: str = "user_id") -> str:
    """The rollup upsert of the rows the same statement inserted (in key order: one lock order for
    concurrent writers). Sums are exact NUMERIC; costs of unpriced rows (NULL) count as nothing."""
    counts = ("event_count", "unpriced_count", *_TOKENS)
    expressions = {"bucket": bucket, "user_id": user_of, "tag": "t.tag"}
    selected = ", ".join((*(expressions.get(k, k) for k in key),
                          "count(*)", "count(*) FILTER (WHERE unpriced)",
                          *(f"sum({t})::bigint" for t in _TOKENS), *(f"coalesce(sum({c}), 0)" for c in _COSTS)))
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in (*counts, *_COSTS))
    groups = ", ".join(str(i) for i in range(1, len(key) + 1))
    # Byte order (COLLATE "C") is code-point order: the order Python sorts the same keys in when
    # re-pricing, so a worker and a re-pricing run lock shared rollup rows in one order.
    order = ", ".join(f"{i}" if k == "bucket" else f'{expressions.get(k, k)} COLLATE "C"'
                      for i, k in enumerate(key, start=1))
    return f"""INSERT INTO {table} ({", ".join((*key, *counts, *_COSTS))})
            SELECT {selected} FROM {source} GROUP BY {groups} ORDER BY {order}
            ON CONFLICT ({", ".join(key)}) DO UPDATE SET {updates}, updated_at = now()"""  # noqa: S608


_INSERT_LEDGER = _insert_sql()


def _rollup_sql(table: str, bucket_type: str, key: tuple[str, ...] = _ROLLUP_KEY) -> str:
    counts = ("event_count", "unpriced_count", *_TOKENS)
    columns = (*key, *counts, *_COSTS)
    types = (["text", bucket_type] + ["text"] * (len(key) - 2) + ["bigint"] * len(counts)
             + ["numeric"] * len(_COSTS))
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in (*counts, *_COSTS))
    # Constant table and column names only.
    return f"""
        INSERT INTO {table} ({", ".join(columns)})
        SELECT * FROM unnest({params})
        ON CONFLICT ({", ".join(key)}) DO UPDATE SET {updates}, updated_at = now()
    """  # noqa: S608


_UPSERT_HOURLY = _rollup_sql("usage_hourly", "timestamptz")
_UPSERT_DAILY = _rollup_sql("usage_daily", "date")
_UPSERT_DAILY_USERS = _rollup_sql("usage_daily_users", "date", _USER_KEY)
_UPSERT_DAILY_TAGS = _rollup_sql("usage_daily_tags", "date", _TAG_KEY)

_UPSERT_UNPRICED = """
    INSERT INTO unpriced_models AS u (tenant_id, provider, model, model_key, reason,
                                      first_seen_at, last_seen_at, event_count)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::timestamptz[], $8::bigint[])
    ON CONFLICT (tenant_id, provider, model) DO UPDATE SET
        model_key = EXCLUDED.model_key,
        reason = EXCLUDED.reason,
        first_seen_at = LEAST(u.first_seen_at, EXCLUDED.first_seen_at),
        last_seen_at = GREATEST(u.last_seen_at, EXCLUDED.last_seen_at),
        event_count = u.event_count + EXCLUDED.event_count
    RETURNING tenant_id, provider, model, model_key, reason, event_count, alerted_at
"""


async def apply_rollup_deltas(conn: asyncpg.Connection, hourly: dict[RollupKey, RollupTotals],
                              daily: dict[RollupKey, RollupTotals],
                              users: dict[DimensionKey, RollupTotals] | None = None,
                              tags: dict[DimensionKey, RollupTotals] | None = None) -> None:
    """Add the deltas to `usage_hourly`, `usage_daily`, `usage_daily_users` and `usage_daily_tags` (in the
    caller's transaction); rollup rows that end with no events at all (re-pricing moved them to another
    key) are deleted."""
    tables: tuple[tuple[str, str, int, dict[Any, RollupTotals] | None], ...] = (
        ("usage_hourly", _UPSERT_HOURLY, len(_ROLLUP_KEY), hourly),
        ("usage_daily", _UPSERT_DAILY, len(_ROLLUP_KEY), daily),
        ("usage_daily_users", _UPSERT_DAILY_USERS, len(_USER_KEY), users),
        ("usage_daily_tags", _UPSERT_DAILY_TAGS, len(_TAG_KEY), tags))
    for table, sql, width, deltas in tables:
        if not deltas:
            continue
        columns: list[list[Any]] = [[] for _ in range(width + 2 + len(_TOKENS) + len(_COSTS))]
        for key, totals in sorted(deltas.items()):  # one lock order for concurrent writers
            values = (*key, totals.event_count, totals.unpriced_count, *totals.tokens, *totals.costs)
            for i, value in enumerate(values):
                columns[i].append(value)
        await conn.execute(sql, *columns)
        if any(totals.event_count < 0 for totals in deltas.values()):
            await conn.execute(_DELETE_EMPTY[table], *columns[:width])


def _delete_empty_sql(table: str, bucket_type: str, key: tuple[str, ...] = _ROLLUP_KEY) -> str:
    params = ", ".join(f"${i}::{bucket_type if k == 'bucket' else 'text'}[]" for i, k in enumerate(key, start=1))
    # Constant table and column names only.
    return f"""
        DELETE FROM {table} r USING unnest({params}) AS k({", ".join(key)})
        WHERE r.event_count = 0 AND ({", ".join(f"r.{k}" for k in key)}) = ({", ".join(f"k.{k}" for k in key)})
    """  # noqa: S608


_DELETE_EMPTY = {"usage_hourly": _delete_empty_sql("usage_hourly", "timestamptz"),
                 "usage_daily": _delete_empty_sql("usage_daily", "date"),
                 "usage_daily_users": _delete_empty_sql("usage_daily_users", "date", _USER_KEY),
                 "usage_daily_tags": _delete_empty_sql("usage_daily_tags", "date", _TAG_KEY)}


def _month_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


_values = operator.attrgetter(*COLUMNS)
_MONEY_INDEXES = tuple(i for i, name in enumerate(COLUMNS) if name in _COSTS)


def _record(row: LedgerRow) -> list[Any]:
    """`row` as a staging record: money as exact decimal strings."""
    record = list(_values(row))
    for i in _MONEY_INDEXES:
        if record[i] is not None:
            record[i] = str(record[i])
    return record


async def write_batch(conn: asyncpg.Connection, rows: Sequence[LedgerRow]) -> WriteResult:
    """Write `rows` idempotently inside the caller's transaction (see the module docstring)."""
    if not conn.is_in_transaction():
        raise RuntimeError("write_batch must run inside the batch's transaction")
    unique = list({row.event_id: row for row in reversed(rows)}.values())[::-1]  # first of each event id
    if not unique:
        return WriteResult((), ())
    # One round trip: the staging table, then the month partitions the batch needs (one instant per
    # UTC month is all `billing_ensure_ledger_partitions` looks at; the literals are our own datetimes).
    months = sorted({_month_start(row.occurred_at) for row in unique})
    instants = ", ".join(f"'{month.isoformat()}'::timestamptz" for month in months)
    await conn.execute(f"{_PREPARE_STAGING} SELECT billing_ensure_ledger_partitions(ARRAY[{instants}]);")
    await conn.copy_records_to_table(_STAGING_NAME, schema_name="pg_temp", columns=COLUMNS,
                                     records=[_record(row) for row in unique])
    returned = await conn.fetch(_INSERT_LEDGER)
    fresh_ids = {record["event_id"] for record in returned}
    inserted = tuple(row for row in unique if row.event_id in fresh_ids)
    if not inserted:
        return WriteResult((), ())

    unpriced_groups: dict[tuple[str, str, str], list[LedgerRow]] = {}
    for row in inserted:
        if row.unpriced:
            reported = row.response_model or row.model
            unpriced_groups.setdefault((row.tenant_id, row.provider, reported), []).append(row)
    alerts: list[UnpricedModel] = []
    if unpriced_groups:
        keys = sorted(unpriced_groups)  # a fixed order: concurrent writers lock rows in the same order
        groups = [unpriced_groups[k] for k in keys]
        records = await conn.fetch(
            _UPSERT_UNPRICED,
            [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
            [g[0].model_key for g in groups], [g[0].unpriced_reason or "" for g in groups],
            [min(r.occurred_at for r in g) for g in groups], [max(r.occurred_at for r in g) for g in groups],
            [len(g) for g in groups],
        )
        alerts = [
            UnpricedModel(r["tenant_id"], r["provider"], r["model"], r["model_key"], r["reason"], r["event_count"])
            for r in records if r["alerted_at"] is None
        ]
    return WriteResult(inserted, tuple(alerts))
