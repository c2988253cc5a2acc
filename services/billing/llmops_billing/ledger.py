"""The usage ledger's rows, pure: one priced row per billable interaction, and what rows add to the rollups.

`ledger_row` is the worker's transform (interaction + catalogue -> row, or None when the event is not
billable); `repriced` prices a stored row again after a price correction. Both price with
`cost.price_usage`, the one pricing function. `rollup_deltas`, `dimension_deltas` and `narrow_deltas` say
what rows add to (or, re-priced, take from) the rollups. No I/O: `store.ledger` writes rows, `store.rollups` the deltas.

Privacy: a row holds the event's `user_id` only as its pseudonym (`llmops_shared.privacy.pseudonym`, under
the operator's `LLMOPS_PSEUDONYM_KEY`: the same one the guardrails worker writes into clean events) and its
tags scrubbed (`privacy.scrub`: e-mail addresses, phone and card numbers, IBANs, IP addresses and
credentials replaced by their labels). Nothing else of the event's free text (metadata, error message,
span name, messages) is kept.

The narrow rollups: `usage_hourly_totals` (per tenant and hour, no other key) and `usage_monthly_users`
(per tenant, UTC month and user pseudonym, '' when none): what a month by hour and a month by user read;
`usage_hourly_models` (per tenant, hour, environment and model as reported: `model_deltas`): what the trace
store's tenant-level metrics read for their cost; `usage_trace_costs` (per tenant, UTC day and trace id:
`trace_deltas`): what the trace store's trace list sorted by cost reads.

The by-user and by-tag daily rollups: `usage_daily_users` keys a row's user pseudonym ('' when none);
`usage_daily_tags` adds a row once under EACH of its tags ('' when it has none), so per-tag sums
deliberately count an event with several tags several times (per-tag usage; totals come from
`usage_daily`).

Which events are billable: spans of kind `llm` or `embedding`. Other spans (chain, agent, tool,
retriever) are never billed, even when they carry usage, because their model calls are spans of their
own and billing both would count tokens twice. An LLM span without usage is recorded unpriced
(`no_usage`) unless it failed (`status=error`), in which case nothing is billed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

import msgspec

from llmops_billing.billable import Billable
from llmops_billing.cost import TokenCounts, UnpricedReason, price_usage
from llmops_billing.money import EXACT, ZERO
from llmops_billing.normalise import normalise_model, normalise_provider, provider_of_prefix
from llmops_billing.prices import PriceCatalogue, PriceMatch
from llmops_shared.contract import Interaction, SpanKind, Status, Usage
from llmops_shared.privacy import DEV_PSEUDONYM_KEY, pseudonym_or_none, scrub_all

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
    user_id: str | None  # the pseudonym
    tags: tuple[str, ...]  # scrubbed
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

    @property
    def event_key(self) -> tuple[str, uuid.UUID]:
        """What identifies the event: an event id is its tenant's own (two tenants' events may share one)."""
        return self.tenant_id, self.event_id


COLUMNS = tuple(f.name for f in fields(LedgerRow))

_SLOT_SETTERS: tuple[Any, ...] = tuple(getattr(LedgerRow, name).__set__ for name in COLUMNS)
_new_object = object.__new__


def _new_row(values: Iterable[Any]) -> LedgerRow:
    """`LedgerRow(*values)`, built by setting its slots directly: the dataclass's frozen `__init__` calls
    `object.__setattr__` once per column, ~40% slower for 37 columns, and the worker builds one per event.
    (A test checks the two agree.)"""
    row: LedgerRow = _new_object(LedgerRow)
    for set_slot, value in zip(_SLOT_SETTERS, values, strict=True):
        set_slot(row, value)
    return row


def ledger_row(interaction: Interaction | Billable, catalogue: PriceCatalogue, *, priced_at: datetime,
               pseudonym_key: bytes = DEV_PSEUDONYM_KEY) -> LedgerRow | None:
    """The ledger row of one interaction, priced with `catalogue` as of its `occurred_at`, its user
    pseudonymised under `pseudonym_key` and its tags scrubbed; None when the event is not billable (see the
    module docstring). The worker gives it the billed fields only (`billable.decode_billable`)."""
    if interaction.span_kind not in BILLABLE_KINDS:
        return None
    usage: TokenCounts | None = interaction.usage
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
    model_key, *costs = _pricing_values(usage, match, reason, reported)
    return _new_row((  # in column order (`COLUMNS`)
        interaction.event_id, interaction.occurred_at, interaction.tenant_id, interaction.app_id,
        interaction.environment, interaction.trace_id, interaction.span_id, interaction.span_kind.value,
        interaction.status.value, provider, interaction.model or "", interaction.response_model or "", model_key,
        prompt.name if prompt else "", (prompt.version or "") if prompt else "",
        (prompt.variant or "") if prompt else "",
        _pseudonym(interaction.tenant_id, interaction.user_id, pseudonym_key),
        _scrubbed(tuple(interaction.tags)) if interaction.tags else (),
        usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens, usage.cache_write_input_tokens,
        usage.reasoning_tokens, *costs, priced_at))


_NO_USAGE = Usage()

# A stream's users and tag sets repeat: their pseudonyms (an HMAC each) and scrubbed tags (a regex pass each)
# are worked out once per process for the most recent ones. Both functions are pure, so a cached answer is
# the answer.
_pseudonym = lru_cache(maxsize=65_536)(pseudonym_or_none)
_scrubbed = lru_cache(maxsize=16_384)(scrub_all)


class UsageRecord(NamedTuple):
    """One `billing.usage` message as it goes to Kafka: key `tenant_id/app_id`, value the JSON of a
    `llmops_shared.usage_events.UsageMessage`; with its row's identity (the outbox's key)."""

    tenant_id: str
    event_id: uuid.UUID
    key: bytes
    value: bytes


def usage_record(row: LedgerRow) -> UsageRecord:
    """The `billing.usage` message of an inserted row (ids, tokens and money only), serialised straight from
    the row (a ledger row's fields already have the message's types; building the pydantic model for each
    row cost the worker more than pricing it). `UsageMessage.model_validate_json` reads it back.

    Encoded by msgspec, whose bytes are orjson's (`OPT_UTC_Z`) for these types (`tests/unit/billing/
    test_worker_outputs.py`): orjson took ~4 us of CPU a message once the messages are kept (as the worker keeps
    a batch's until it sends them), msgspec ~0.6 (it sizes its output buffer to what it wrote)."""
    return UsageRecord(row.tenant_id, row.event_id, f"{row.tenant_id}/{row.app_id}".encode(), _encode_json({
        "tenant_id": row.tenant_id, "app_id": row.app_id, "event_id": row.event_id, "occurred_at": row.occurred_at,
        "environment": row.environment, "provider": row.provider, "model": row.model,
        "prompt_name": row.prompt_name, "prompt_version": row.prompt_version, "prompt_variant": row.prompt_variant,
        "input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
        "cost_total": None if row.cost_total is None else str(row.cost_total), "unpriced": row.unpriced,
    }))


_encode_json = msgspec.json.Encoder().encode


_UNPRICED_AMOUNTS: tuple[None, ...] = (None,) * 7


def _pricing(usage: TokenCounts, match: PriceMatch | None, reason: UnpricedReason | None,
             reported: str | None) -> dict[str, Any]:
    """`_pricing_values` by column name (`PRICING_COLUMNS`)."""
    return dict(zip(PRICING_COLUMNS, _pricing_values(usage, match, reason, reported), strict=True))


def _pricing_values(usage: TokenCounts, match: PriceMatch | None, reason: UnpricedReason | None,
                    reported: str | None) -> tuple[Any, ...]:
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
    return values


def _resolve(interaction: Interaction | Billable, catalogue: PriceCatalogue) -> PriceMatch | None:
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

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_write_input_tokens",
                 "reasoning_tokens")
COST_COLUMNS = ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output", "cost_reasoning",
                "cost_request", "cost_total")

# tenant, bucket, app, environment, provider, model_key, prompt name, version, variant
RollupKey = tuple[str, Any, str, str, str, str, str, str, str]
# tenant, day, user ('' when none) or tag ('' when none), app, environment, provider, model_key
DimensionKey = tuple[str, date, str, str, str, str, str]
TotalsKey = tuple[str, datetime]  # tenant, hour
MonthlyUserKey = tuple[str, date, str]  # tenant, the month's first day, user ('' when none)
ModelKey = tuple[str, datetime, str, str]  # tenant, hour, environment, model as reported
TraceKey = tuple[str, date, str]  # tenant, UTC day, trace id


@dataclass(slots=True)
class RollupTotals:
    event_count: int = 0
    unpriced_count: int = 0
    tokens: list[int] = field(default_factory=lambda: [0] * len(TOKEN_COLUMNS))
    costs: list[Decimal] = field(default_factory=lambda: [ZERO] * len(COST_COLUMNS))

    def add(self, row: LedgerRow, sign: int = 1) -> None:
        """Add `row` (or take it away, `sign=-1`, when re-pricing moves it)."""
        self.event_count += sign
        self.unpriced_count += sign * int(row.unpriced)
        for i, name in enumerate(TOKEN_COLUMNS):
            self.tokens[i] += sign * getattr(row, name)
        if not row.unpriced:
            for i, name in enumerate(COST_COLUMNS):
                value = getattr(row, name)
                self.costs[i] = EXACT.add(self.costs[i], value) if sign > 0 else EXACT.subtract(self.costs[i], value)

    def is_zero(self) -> bool:
        return (self.event_count == 0 and self.unpriced_count == 0 and not any(self.tokens)
                and not any(self.costs))


def hour_bucket(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_bucket(at: datetime) -> date:
    return at.astimezone(UTC).date()


def month_bucket(at: datetime) -> date:
    return at.astimezone(UTC).date().replace(day=1)


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


def narrow_deltas(rows: Iterable[LedgerRow], removed: Iterable[LedgerRow] = (),
                  ) -> tuple[dict[TotalsKey, RollupTotals], dict[MonthlyUserKey, RollupTotals]]:
    """What `rows` add to `usage_hourly_totals` (per tenant and hour) and `usage_monthly_users` (per tenant,
    month and user), less what `removed` takes away; keys whose change is nothing at all are left out."""
    totals: dict[TotalsKey, RollupTotals] = {}
    users: dict[MonthlyUserKey, RollupTotals] = {}
    for sign, group in ((-1, removed), (1, rows)):
        for row in group:
            totals.setdefault((row.tenant_id, hour_bucket(row.occurred_at)), RollupTotals()).add(row, sign)
            users.setdefault((row.tenant_id, month_bucket(row.occurred_at), row.user_id or ""),
                             RollupTotals()).add(row, sign)
    return ({k: v for k, v in totals.items() if not v.is_zero()},
            {k: v for k, v in users.items() if not v.is_zero()})


def model_deltas(rows: Iterable[LedgerRow], removed: Iterable[LedgerRow] = ()) -> dict[ModelKey, RollupTotals]:
    """What `rows` add to `usage_hourly_models` (per tenant, hour, environment and model as reported), less
    what `removed` takes away; keys whose change is nothing at all are left out."""
    models: dict[ModelKey, RollupTotals] = {}
    for sign, group in ((-1, removed), (1, rows)):
        for row in group:
            key = (row.tenant_id, hour_bucket(row.occurred_at), row.environment, row.model)
            models.setdefault(key, RollupTotals()).add(row, sign)
    return {k: v for k, v in models.items() if not v.is_zero()}


def trace_deltas(rows: Iterable[LedgerRow], removed: Iterable[LedgerRow] = ()) -> dict[TraceKey, RollupTotals]:
    """What `rows` add to `usage_trace_costs` (per tenant, UTC day and trace id), less what `removed` takes
    away; keys whose change is nothing at all are left out."""
    traces: dict[TraceKey, RollupTotals] = {}
    for sign, group in ((-1, removed), (1, rows)):
        for row in group:
            traces.setdefault((row.tenant_id, day_bucket(row.occurred_at), row.trace_id), RollupTotals()).add(row, sign)
    return {k: v for k, v in traces.items() if not v.is_zero()}
