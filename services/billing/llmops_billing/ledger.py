"""The usage ledger: one priced row per billable interaction, and the rollups built from those rows.

`ledger_row` is the pure transform (interaction + catalogue -> row, or None when the event is not
billable); `write_batch` is the one database step, meant to run inside the worker's per-batch
transaction:

1. make sure the monthly ledger partitions for the batch exist;
2. insert the event ids into `usage_events_seen` with ON CONFLICT DO NOTHING RETURNING, and ledger rows
   only for the ids that came back (so a redelivered event is a no-op);
3. add only those inserted rows to `usage_hourly` and `usage_daily`;
4. count unpriced models in `unpriced_models`, returning those not yet alerted on.

Which events are billable: spans of kind `llm` or `embedding`. Other spans (chain, agent, tool,
retriever) are never billed, even when they carry usage, because their model calls are spans of their
own and billing both would count tokens twice. An LLM span without usage is recorded unpriced
(`no_usage`) unless it failed (`status=error`), in which case nothing is billed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from llmops_billing.cost import Line, UnpricedReason, price_usage, unpriced
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
        cost = unpriced(UnpricedReason.NO_USAGE)
        usage = Usage()
    elif reported is None:
        cost = unpriced(UnpricedReason.NO_MODEL)
    else:
        match = _resolve(interaction, catalogue)
        cost = price_usage(usage, None if match is None else match.price)
    model_key = match.key if match is not None else (normalise_model(reported) if reported else "")
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
        model_key=model_key,
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
        cost_input=cost.amount(Line.INPUT),
        cost_cache_read=cost.amount(Line.CACHE_READ),
        cost_cache_write=cost.amount(Line.CACHE_WRITE),
        cost_output=cost.amount(Line.OUTPUT),
        cost_reasoning=cost.amount(Line.REASONING),
        cost_request=cost.amount(Line.REQUEST),
        cost_total=cost.total,
        unpriced=cost.unpriced,
        unpriced_reason=None if cost.unpriced_reason is None else cost.unpriced_reason.value,
        price_version=cost.price_version,
        price_tier=cost.tier_above_input_tokens,
        priced_at=priced_at,
    )


def _resolve(interaction: Interaction, catalogue: PriceCatalogue) -> PriceMatch | None:
    """The provider's model name first (it names the exact snapshot served), then the requested one."""
    for name in dict.fromkeys(n for n in (interaction.response_model, interaction.model) if n):
        match = catalogue.resolve(interaction.tenant_id, name, interaction.provider, interaction.occurred_at)
        if match is not None:
            return match
    return None


# --------------------------------------------------------------------------------------------------
# Rollups (pure)

_TOKENS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_write_input_tokens",
           "reasoning_tokens")
_COSTS = ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output", "cost_reasoning",
          "cost_request", "cost_total")

# tenant, bucket, app, environment, provider, model_key, prompt name, version, variant
RollupKey = tuple[str, Any, str, str, str, str, str, str, str]


@dataclass(slots=True)
class RollupTotals:
    event_count: int = 0
    unpriced_count: int = 0
    tokens: list[int] = field(default_factory=lambda: [0] * len(_TOKENS))
    costs: list[Decimal] = field(default_factory=lambda: [ZERO] * len(_COSTS))

    def add(self, row: LedgerRow) -> None:
        self.event_count += 1
        self.unpriced_count += int(row.unpriced)
        for i, name in enumerate(_TOKENS):
            self.tokens[i] += getattr(row, name)
        if not row.unpriced:
            for i, name in enumerate(_COSTS):
                self.costs[i] = EXACT.add(self.costs[i], getattr(row, name))


def hour_bucket(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_bucket(at: datetime) -> date:
    return at.astimezone(UTC).date()


def rollup_deltas(rows: Iterable[LedgerRow]) -> tuple[dict[RollupKey, RollupTotals], dict[RollupKey, RollupTotals]]:
    """What `rows` add to `usage_hourly` and `usage_daily`, one entry per rollup key."""
    hourly: dict[RollupKey, RollupTotals] = {}
    daily: dict[RollupKey, RollupTotals] = {}
    for row in rows:
        rest = (row.app_id, row.environment, row.provider, row.model_key,
                row.prompt_name, row.prompt_version, row.prompt_variant)
        hourly.setdefault((row.tenant_id, hour_bucket(row.occurred_at), *rest), RollupTotals()).add(row)
        daily.setdefault((row.tenant_id, day_bucket(row.occurred_at), *rest), RollupTotals()).add(row)
    return hourly, daily


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


_CASTS = {
    "event_id": "uuid", "occurred_at": "timestamptz", "user_id": "text", "tags": "text",
    "input_tokens": "bigint", "output_tokens": "bigint", "cache_read_input_tokens": "bigint",
    "cache_write_input_tokens": "bigint", "reasoning_tokens": "bigint",
    **{name: "numeric" for name in _COSTS},
    "unpriced": "boolean", "unpriced_reason": "text", "price_version": "text", "price_tier": "integer",
    "priced_at": "timestamptz",
}


def _insert_sql() -> str:
    params = ", ".join(f"${i}::{_CASTS.get(name, 'text')}[]" for i, name in enumerate(COLUMNS, start=1))
    columns = ", ".join(COLUMNS)
    selected = ", ".join(
        "ARRAY(SELECT jsonb_array_elements_text(i.tags::jsonb))" if name == "tags" else f"i.{name}"
        for name in COLUMNS
    )
    # Built once at import from the constant column names above: no outside input reaches this SQL.
    return f"""
        WITH incoming AS (
            SELECT * FROM unnest({params}) AS i({columns})
        ), fresh AS (
            INSERT INTO usage_events_seen (event_id, occurred_at)
            SELECT event_id, occurred_at FROM incoming
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id
        )
        INSERT INTO usage_ledger ({columns})
        SELECT {selected} FROM incoming i JOIN fresh USING (event_id)
        RETURNING event_id
    """  # noqa: S608


_INSERT_LEDGER = _insert_sql()


def _rollup_sql(table: str, bucket_type: str) -> str:
    key = ("tenant_id", "bucket", "app_id", "environment", "provider", "model_key",
           "prompt_name", "prompt_version", "prompt_variant")
    counts = ("event_count", "unpriced_count", *_TOKENS)
    columns = (*key, *counts, *_COSTS)
    types = (["text", bucket_type] + ["text"] * 7 + ["bigint"] * len(counts) + ["numeric"] * len(_COSTS))
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


async def write_batch(conn: asyncpg.Connection, rows: Sequence[LedgerRow]) -> WriteResult:
    """Write `rows` idempotently inside the caller's transaction (see the module docstring)."""
    if not conn.is_in_transaction():
        raise RuntimeError("write_batch must run inside the batch's transaction")
    unique = list({row.event_id: row for row in reversed(rows)}.values())[::-1]  # first of each event id
    if not unique:
        return WriteResult((), ())
    await conn.execute("SELECT billing_ensure_ledger_partitions($1::timestamptz[])",
                       [row.occurred_at for row in unique])
    arrays: list[list[Any]] = [[] for _ in COLUMNS]
    for row in unique:
        for i, name in enumerate(COLUMNS):
            value = getattr(row, name)
            arrays[i].append(json.dumps(list(value)) if name == "tags" else value)
    returned = await conn.fetch(_INSERT_LEDGER, *arrays)
    fresh_ids = {record["event_id"] for record in returned}
    inserted = tuple(row for row in unique if row.event_id in fresh_ids)
    if not inserted:
        return WriteResult((), ())

    hourly, daily = rollup_deltas(inserted)
    for sql, deltas in ((_UPSERT_HOURLY, hourly), (_UPSERT_DAILY, daily)):
        columns: list[list[Any]] = [[] for _ in range(9 + 2 + len(_TOKENS) + len(_COSTS))]
        for key, totals in sorted(deltas.items()):  # one lock order for concurrent writers
            values = (*key, totals.event_count, totals.unpriced_count, *totals.tokens, *totals.costs)
            for i, value in enumerate(values):
                columns[i].append(value)
        await conn.execute(sql, *columns)

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
