"""The price catalogue: per-model prices with effective dates and per-tenant overrides.

A `ModelPrice` is one row: a model at a provider, in force from `effective_from` (until the next row for
the same tenant, provider and model, or until its optional `effective_until`). Prices are USD per token,
exact `Decimal`s; a price change is a new row, so history is never rewritten and an old event is always
priced as it was when it happened.

Missing prices fall back to the price that bills the same tokens, never to zero:
- cache reads without a price are billed at the input price (no cache discount is assumed);
- cache writes without a price are billed at the input price (OpenAI and Gemini charge no write
  surcharge; Anthropic rows always carry theirs);
- reasoning tokens without a price are billed at the output price (they are output tokens).
A long-context tier (`PriceTier`, LiteLLM's `*_above_200k_tokens`) replaces the prices of a whole request
whose input exceeds its threshold; a price the tier does not name is the base row's.

Tenant overrides come in two kinds (see docs/billing.md):
- a tenant price row: a `ModelPrice` with `tenant_id` set: the negotiated price, used as it is, in
  preference to the list price;
- a `TenantDiscount`: a percentage off the list price, for one model, one provider, or everything.
  The most specific discount in force applies (model beats provider beats all); discounts never stack
  and never apply on top of a tenant price row.

Pure data and look-ups, no I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from llmops_billing.money import EXACT, ZERO, check_scale, money_str, quantize_money, to_decimal
from llmops_billing.normalise import (
    home_providers,
    normalise_model,
    normalise_provider,
    provider_of_prefix,
    snapshot_order,
    undated,
)

HUNDRED = Decimal(100)
_MEMO_LIMIT = 100_000  # look-ups remembered per catalogue (a catalogue lives until the next reload)


def _price(value: Decimal | int | str, what: str) -> Decimal:
    result = check_scale(to_decimal(value, what=what), what=what)
    if result < 0:
        raise ValueError(f"{what}: a price cannot be negative ({result})")
    return result


def _optional_price(value: Decimal | int | str | None, what: str) -> Decimal | None:
    return None if value is None else _price(value, what)


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Prices for a request whose input tokens exceed `above_input_tokens` (all of its tokens)."""

    above_input_tokens: int
    input_per_token: Decimal | None = None
    output_per_token: Decimal | None = None
    cache_read_per_token: Decimal | None = None
    cache_write_per_token: Decimal | None = None
    reasoning_per_token: Decimal | None = None

    def __post_init__(self) -> None:
        if isinstance(self.above_input_tokens, bool) or not isinstance(self.above_input_tokens, int):
            raise TypeError("above_input_tokens must be an int")
        if self.above_input_tokens < 0:
            raise ValueError("above_input_tokens cannot be negative")
        for name in ("input_per_token", "output_per_token", "cache_read_per_token",
                     "cache_write_per_token", "reasoning_per_token"):
            object.__setattr__(self, name, _optional_price(getattr(self, name), f"tier {name}"))

    def scaled(self, factor: Decimal) -> PriceTier:
        def scale(value: Decimal | None) -> Decimal | None:
            return None if value is None else quantize_money(EXACT.multiply(value, factor))

        return PriceTier(self.above_input_tokens, scale(self.input_per_token), scale(self.output_per_token),
                         scale(self.cache_read_per_token), scale(self.cache_write_per_token),
                         scale(self.reasoning_per_token))


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """The prices that bill one request, every fallback resolved (what `price_usage` multiplies by)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    reasoning: Decimal
    request_fee: Decimal
    tier_above_input_tokens: int | None = None
    by_line: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    """The same prices in `cost.LINES` order: input, cache read, cache write, output, reasoning, request."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_line", (self.input, self.cache_read, self.cache_write, self.output,
                                             self.reasoning, self.request_fee))


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One price row. `tenant_id` None is the list price; set, it is that tenant's negotiated price."""

    model: str
    provider: str
    effective_from: datetime
    input_per_token: Decimal
    output_per_token: Decimal
    cache_read_per_token: Decimal | None = None
    cache_write_per_token: Decimal | None = None
    reasoning_per_token: Decimal | None = None
    request_fee: Decimal = ZERO
    tiers: tuple[PriceTier, ...] = ()
    tenant_id: str | None = None
    effective_until: datetime | None = None
    source: str = "manual"
    price_version: str = ""
    model_key: str = field(init=False)
    # Resolved unit prices per tier threshold (None: no tier), worked out on first use. Held by the price
    # itself, so no other object can ever read them; a price never changes once built (`replace` makes a
    # new price with an empty cache).
    _units: dict[int | None, UnitPrices] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not self.model or not self.model.strip():
            raise ValueError("model is required")
        set_ = object.__setattr__
        set_(self, "model_key", normalise_model(self.model))
        set_(self, "provider", normalise_provider(self.provider))
        _aware(self.effective_from, "effective_from")
        if self.effective_until is not None and _aware(self.effective_until, "effective_until") <= self.effective_from:
            raise ValueError("effective_until must be after effective_from")
        set_(self, "input_per_token", _price(self.input_per_token, "input_per_token"))
        set_(self, "output_per_token", _price(self.output_per_token, "output_per_token"))
        set_(self, "cache_read_per_token", _optional_price(self.cache_read_per_token, "cache_read_per_token"))
        set_(self, "cache_write_per_token", _optional_price(self.cache_write_per_token, "cache_write_per_token"))
        set_(self, "reasoning_per_token", _optional_price(self.reasoning_per_token, "reasoning_per_token"))
        set_(self, "request_fee", _price(self.request_fee, "request_fee"))
        tiers = tuple(sorted(self.tiers, key=lambda t: t.above_input_tokens))
        if len({t.above_input_tokens for t in tiers}) != len(tiers):
            raise ValueError("two tiers share a threshold")
        set_(self, "tiers", tiers)
        if self.tenant_id is not None and not self.tenant_id:
            raise ValueError("tenant_id must be None (list price) or a tenant id")
        if not self.price_version:
            set_(self, "price_version", default_price_version(
                source=self.source, tenant_id=self.tenant_id, provider=self.provider,
                model_key=self.model_key, effective_from=self.effective_from))

    def in_force(self, at: datetime) -> bool:
        return self.effective_from <= at and (self.effective_until is None or at < self.effective_until)

    def tier_for(self, input_tokens: int) -> PriceTier | None:
        """The tier with the highest threshold that `input_tokens` exceeds, if any."""
        chosen = None
        for tier in self.tiers:
            if input_tokens > tier.above_input_tokens:
                chosen = tier
        return chosen

    def unit_prices(self, input_tokens: int = 0) -> UnitPrices:
        """Every price for a request with `input_tokens` (total prompt tokens), fallbacks resolved; worked
        out once per tier and kept on this price."""
        tier = self.tier_for(input_tokens) if self.tiers else None
        threshold = None if tier is None else tier.above_input_tokens
        unit = self._units.get(threshold)
        if unit is None:
            unit = self._units[threshold] = self._resolve_units(tier)
        return unit

    def _resolve_units(self, tier: PriceTier | None) -> UnitPrices:
        def pick(name: str) -> Decimal | None:
            value = getattr(tier, name) if tier is not None else None
            return value if value is not None else getattr(self, name)

        input_price = pick("input_per_token")
        output_price = pick("output_per_token")
        assert input_price is not None and output_price is not None  # the base row always has both
        cache_read = pick("cache_read_per_token")
        cache_write = pick("cache_write_per_token")
        reasoning = pick("reasoning_per_token")
        return UnitPrices(
            input=input_price,
            output=output_price,
            cache_read=input_price if cache_read is None else cache_read,
            cache_write=input_price if cache_write is None else cache_write,
            reasoning=output_price if reasoning is None else reasoning,
            request_fee=self.request_fee,
            tier_above_input_tokens=None if tier is None else tier.above_input_tokens,
        )

    def with_discount(self, discount: TenantDiscount) -> ModelPrice:
        """This list price with `discount` taken off every price (rounded half-even to 20 places)."""
        factor = EXACT.divide(EXACT.subtract(HUNDRED, discount.percent), HUNDRED)

        def scale(value: Decimal) -> Decimal:
            return quantize_money(EXACT.multiply(value, factor))

        def scale_optional(value: Decimal | None) -> Decimal | None:
            return None if value is None else scale(value)

        return replace(
            self,
            input_per_token=scale(self.input_per_token),
            output_per_token=scale(self.output_per_token),
            cache_read_per_token=scale_optional(self.cache_read_per_token),
            cache_write_per_token=scale_optional(self.cache_write_per_token),
            reasoning_per_token=scale_optional(self.reasoning_per_token),
            request_fee=scale(self.request_fee),
            tiers=tuple(t.scaled(factor) for t in self.tiers),
            tenant_id=discount.tenant_id,
            source=f"{self.source}+discount",
            price_version=f"{self.price_version}+{discount.discount_id}",
        )

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, money as strings."""

        def text(value: Decimal | None) -> str | None:
            return None if value is None else money_str(value)

        return {
            "model": self.model,
            "model_key": self.model_key,
            "provider": self.provider,
            "tenant_id": self.tenant_id,
            "effective_from": self.effective_from.isoformat(),
            "effective_until": None if self.effective_until is None else self.effective_until.isoformat(),
            "currency": "USD",
            "input_per_token": text(self.input_per_token),
            "output_per_token": text(self.output_per_token),
            "cache_read_per_token": text(self.cache_read_per_token),
            "cache_write_per_token": text(self.cache_write_per_token),
            "reasoning_per_token": text(self.reasoning_per_token),
            "request_fee": text(self.request_fee),
            "tiers": [
                {
                    "above_input_tokens": t.above_input_tokens,
                    "input_per_token": text(t.input_per_token),
                    "output_per_token": text(t.output_per_token),
                    "cache_read_per_token": text(t.cache_read_per_token),
                    "cache_write_per_token": text(t.cache_write_per_token),
                    "reasoning_per_token": text(t.reasoning_per_token),
                }
                for t in self.tiers
            ],
            "source": self.source,
            "price_version": self.price_version,
        }


def default_price_version(*, source: str, tenant_id: str | None, provider: str, model_key: str,
                          effective_from: datetime) -> str:
    """A stable id of one price row: recorded with every cost it produced, for audits and re-pricing."""
    return f"{source}/{tenant_id or 'list'}/{provider or 'any'}/{model_key}@{_stamp(effective_from)}"


@dataclass(frozen=True, slots=True)
class TenantDiscount:
    """`percent` off the list price for one tenant; `provider`/`model` empty means every one."""

    tenant_id: str
    percent: Decimal
    effective_from: datetime
    provider: str = ""
    model: str = ""
    effective_until: datetime | None = None
    discount_id: str = ""
    model_key: str = field(init=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not self.tenant_id:
            raise ValueError("a discount belongs to a tenant")
        percent = check_scale(to_decimal(self.percent, what="percent"), what="percent")
        if not ZERO < percent <= HUNDRED:
            raise ValueError(f"a discount is more than 0% and at most 100% (got {percent}%)")
        set_(self, "percent", percent)
        set_(self, "provider", normalise_provider(self.provider))
        set_(self, "model_key", normalise_model(self.model) if self.model.strip() else "")
        _aware(self.effective_from, "effective_from")
        if self.effective_until is not None and _aware(self.effective_until, "effective_until") <= self.effective_from:
            raise ValueError("effective_until must be after effective_from")
        if not self.discount_id:
            set_(self, "discount_id", (
                f"discount/{self.tenant_id}/{self.provider or 'any'}/{self.model_key or 'all'}"
                f"@{_stamp(self.effective_from)}"
            ))

    def in_force(self, at: datetime) -> bool:
        return self.effective_from <= at and (self.effective_until is None or at < self.effective_until)


class MatchStep(StrEnum):
    """How the event's model name reached the catalogue key that priced it."""

    EXACT = "exact"
    NORMALISED = "normalised"
    UNDATED = "undated"
    SNAPSHOT = "snapshot"  # an undated or -latest name resolved to the newest dated snapshot known


class Override(StrEnum):
    NONE = "none"
    TENANT_PRICE = "tenant_price"
    DISCOUNT = "discount"


@dataclass(frozen=True, slots=True)
class PriceMatch:
    price: ModelPrice  # what to bill with (discount applied)
    row: ModelPrice  # the catalogue row it came from
    key: str
    step: MatchStep
    override: Override
    discount: TenantDiscount | None = None


_RowKey = tuple[str | None, str]  # (tenant_id or None for list prices, model_key)


class PriceCatalogue:
    """Answers "what did this model cost this tenant at this instant?". Immutable once built."""

    def __init__(self, prices: Iterable[ModelPrice] = (), discounts: Iterable[TenantDiscount] = ()) -> None:
        self._prices = tuple(prices)
        self._discounts_all = tuple(discounts)
        rows: dict[_RowKey, dict[str, list[ModelPrice]]] = {}
        seen: set[tuple[str | None, str, str, datetime]] = set()
        for price in self._prices:
            identity = (price.tenant_id, price.provider, price.model_key, price.effective_from)
            if identity in seen:
                raise ValueError(f"two prices for {identity}: one row per tenant, provider, model and instant")
            seen.add(identity)
            rows.setdefault((price.tenant_id, price.model_key), {}).setdefault(price.provider, []).append(price)
        for by_provider in rows.values():
            for provider_rows in by_provider.values():
                provider_rows.sort(key=lambda p: p.effective_from, reverse=True)
        self._rows = rows
        self._known = {key for _tenant, key in rows}
        dated: dict[str, list[str]] = {}
        for key in self._known:
            order = snapshot_order(key)
            base = undated(key)
            if order is not None and base is not None:
                dated.setdefault(base, []).append(key)
        for keys in dated.values():
            keys.sort(key=lambda k: (snapshot_order(k), k), reverse=True)
        self._dated = dated
        by_tenant: dict[str, list[TenantDiscount]] = {}
        seen_discounts: set[tuple[str, str, str, datetime]] = set()
        for discount in self._discounts_all:
            identity_d = (discount.tenant_id, discount.provider, discount.model_key, discount.effective_from)
            if identity_d in seen_discounts:
                raise ValueError(f"two discounts for {identity_d}")
            seen_discounts.add(identity_d)
            by_tenant.setdefault(discount.tenant_id, []).append(discount)
        self._discounts = by_tenant
        self._changes: list[datetime] | None = None
        self._memo: dict[tuple[str | None, str | None, str | None, int], PriceMatch | None] = {}

    @property
    def prices(self) -> tuple[ModelPrice, ...]:
        return self._prices

    @property
    def discounts(self) -> tuple[TenantDiscount, ...]:
        return self._discounts_all

    def __len__(self) -> int:
        return len(self._prices)

    def knows(self, model: str) -> bool:
        return normalise_model(model) in self._known

    def lookup_chain(self, model: str, provider: str | None = None) -> list[tuple[str, MatchStep]]:
        """The keys a look-up tries, in order, each with the step that produced it."""
        exact = model.strip().lower()
        normalised = normalise_model(model, provider)
        base = undated(normalised)
        chain: list[tuple[str, MatchStep]] = [(exact, MatchStep.EXACT)]
        if normalised != exact:
            chain.append((normalised, MatchStep.NORMALISED))
        if base is not None and base not in (exact, normalised):
            chain.append((base, MatchStep.UNDATED))
        if not any(key in self._known for key, _step in chain):
            newest = self._dated.get(base if base is not None else normalised)
            if newest:
                chain.append((newest[0], MatchStep.SNAPSHOT))
        return chain

    def resolve(self, tenant_id: str | None, model: str | None, provider: str | None,
                at: datetime) -> PriceMatch | None:
        """The price in force for this tenant, model and provider at `at`, and how it was found (see
        `_resolve`). Memoised: between two consecutive instants at which any row or discount starts or
        ends, every look-up gives the same answer, so the answer is cached per such interval. Exact, and
        safe because a catalogue never changes once built."""
        _aware(at, "at")
        key = (tenant_id, model, provider, bisect.bisect_right(self._change_instants(), at))
        try:
            return self._memo[key]
        except KeyError:
            pass
        match = self._resolve(tenant_id, model, provider, at)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = match
        return match

    def _change_instants(self) -> list[datetime]:
        if self._changes is None:
            instants = {p.effective_from for p in self._prices} | {d.effective_from for d in self._discounts_all}
            instants |= {p.effective_until for p in self._prices if p.effective_until is not None}
            instants |= {d.effective_until for d in self._discounts_all if d.effective_until is not None}
            self._changes = sorted(instants)
        return self._changes

    def _resolve(self, tenant_id: str | None, model: str | None, provider: str | None,
                 at: datetime) -> PriceMatch | None:
        """The price in force for this tenant, model and provider at `at`, and how it was found.

        Order: rows for the event's provider (or for any provider, `""`) before rows for another
        provider (a reseller without a row of its own is billed at the first-hand price, the model's
        home provider first); within that, the tenant's own price rows before list prices; within that,
        the more specific key (exact, normalised, undated, snapshot). A list price then takes the
        tenant's most specific discount in force, if any.
        """
        _aware(at, "at")
        if model is None or not model.strip():
            return None
        wanted = normalise_provider(provider) or provider_of_prefix(model)
        chain = self.lookup_chain(model, wanted)
        tenants: list[str | None] = [tenant_id, None] if tenant_id else [None]
        for same_provider in ([True, False] if wanted else [False]):
            for tenant in tenants:
                for key, step in chain:
                    row = self._in_force(tenant, key, wanted if same_provider else None, at)
                    if row is None:
                        continue
                    if tenant is not None:
                        return PriceMatch(row, row, key, step, Override.TENANT_PRICE)
                    discount = self._discount(tenant_id, wanted or row.provider, {k for k, _ in chain} | {key}, at)
                    if discount is None:
                        return PriceMatch(row, row, key, step, Override.NONE)
                    return PriceMatch(row.with_discount(discount), row, key, step, Override.DISCOUNT, discount)
        return None

    def price_for(self, tenant_id: str | None, model: str | None, provider: str | None,
                  at: datetime) -> ModelPrice | None:
        """The price to bill with, or None: the model is unknown (record it unpriced and alert)."""
        match = self.resolve(tenant_id, model, provider, at)
        return None if match is None else match.price

    def _in_force(self, tenant: str | None, key: str, provider: str | None, at: datetime) -> ModelPrice | None:
        by_provider = self._rows.get((tenant, key))
        if not by_provider:
            return None
        if provider is not None:  # the provider's own rows, then rows for any provider ('')
            own = _latest_in_force(by_provider.get(provider, ()), at)
            return own if own is not None else _latest_in_force(by_provider.get("", ()), at)
        order = ["", *home_providers(key)]
        order += sorted(p for p in by_provider if p not in order)
        for name in order:
            row = _latest_in_force(by_provider.get(name, ()), at)
            if row is not None:
                return row
        return None

    def _discount(self, tenant_id: str | None, provider: str, keys: set[str], at: datetime) -> TenantDiscount | None:
        if tenant_id is None:
            return None
        keys = keys | {b for k in keys if (b := undated(k)) is not None}
        best: TenantDiscount | None = None
        best_rank: tuple[bool, bool, datetime] | None = None
        for discount in self._discounts.get(tenant_id, ()):
            if not discount.in_force(at):
                continue
            if discount.provider and discount.provider != provider:
                continue
            if discount.model_key and discount.model_key not in keys:
                continue
            rank = (bool(discount.model_key), bool(discount.provider), discount.effective_from)
            if best_rank is None or rank > best_rank:
                best, best_rank = discount, rank
        return best


def _latest_in_force(rows: Iterable[ModelPrice], at: datetime) -> ModelPrice | None:
    for row in rows:  # newest first
        if row.in_force(at):
            return row
    return None
