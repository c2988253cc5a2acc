"""The price list a tenant sees and changes: list prices and its own rows, quotes, negotiated prices and
discounts.

Reads come from the catalogue the process holds (`catalogue.CatalogueCache`); a tenant sees list prices and
its own rows, never another tenant's. Adding a price or a discount writes it (`store.prices`) for the
calling tenant only, then reloads the process's catalogue. Prices are never edited: a change is a row
with a later `effective_from`, and one in the past needs a re-pricing run (the answer's `note` says so).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from llmops_billing.catalogue import CatalogueCache
from llmops_billing.money import check_scale, money_str, to_decimal
from llmops_billing.normalise import normalise_model, normalise_provider
from llmops_billing.prices import ModelPrice, PriceCatalogue, PriceTier, TenantDiscount
from llmops_billing.schemas import DiscountCreate, PriceCreate
from llmops_billing.store import prices as price_store
from llmops_billing.usage_query import iso_utc
from llmops_shared import cursors
from llmops_shared.problems import Conflict, Invalid, NotFound


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
            values = cursors.decode(cursor, scope=scope)
        except cursors.InvalidCursor as exc:
            raise Invalid("cursor", str(exc), location="query") from None
        if len(values) != 1 or not isinstance(values[0], int) or isinstance(values[0], bool) or values[0] < 0:
            raise Invalid("cursor", "not a cursor this API returned", location="query")
        offset = values[0]
    chunk = list(items[offset: offset + limit])
    more = offset + limit < len(items)
    return chunk, cursors.encode([offset + limit], scope=scope) if more else None


def price_page(catalogue: PriceCatalogue, *, tenant_id: str, model: str | None, provider: str | None, limit: int,
               max_limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of `visible_prices` (`schemas.PricesPage`)."""
    if not 1 <= limit <= max_limit:
        raise Invalid("limit", f"must be from 1 to {max_limit}", location="query")
    rows = visible_prices(catalogue, tenant_id=tenant_id, model=model, provider=provider)
    chunk, next_cursor = page_of(rows, limit=limit, cursor=cursor, scope=f"prices:{model or ''}:{provider or ''}")
    return {"prices": [p.as_json() for p in chunk], "next_cursor": next_cursor}


def quote(catalogue: PriceCatalogue, *, tenant_id: str, model: str, provider: str | None,
          at: datetime) -> dict[str, Any]:
    """The price this tenant pays for `model` at `at`, and how it was found (`schemas.Quote`); `NotFound`
    when the catalogue has none."""
    match = catalogue.resolve(tenant_id, model, provider, at)
    if match is None:
        raise NotFound("no price for this model at that instant")
    return {
        "model": model, "provider": provider, "at": iso_utc(at), "matched_key": match.key, "match": match.step.value,
        "override": match.override.value,
        "discount": None if match.discount is None else {
            "discount_id": match.discount.discount_id, "percent": money_str(match.discount.percent)},
        "price": match.price.as_json(),
    }


def _discount_json(discount: TenantDiscount) -> dict[str, Any]:
    return {"discount_id": discount.discount_id, "percent": str(discount.percent), "provider": discount.provider,
            "model_key": discount.model_key, "effective_from": discount.effective_from.isoformat(),
            "effective_until": None if discount.effective_until is None else discount.effective_until.isoformat()}


def discounts_of(catalogue: PriceCatalogue, *, tenant_id: str) -> dict[str, Any]:
    """The tenant's discounts (`schemas.Discounts`)."""
    found = [d for d in catalogue.discounts if d.tenant_id == tenant_id]
    return {"discounts": [_discount_json(d) for d in sorted(found, key=lambda d: (d.provider, d.model_key,
                                                                                   d.effective_from))]}


async def add_price(pool: asyncpg.Pool, *, catalogues: CatalogueCache, tenant_id: str, price_in: PriceCreate,
                    now: datetime) -> dict[str, Any]:
    """Add a negotiated price for the tenant (`schemas.PriceCreated`); `Invalid` naming the field for a
    price the catalogue refuses, `Conflict` when the tenant has a row for this model, provider and
    `effective_from` already."""
    price = _tenant_price(price_in, tenant_id=tenant_id)
    async with pool.acquire() as conn, conn.transaction():
        report = await price_store.insert_prices(conn, prices=[price])
    if not report.inserted:
        raise Conflict("a price for this model, provider and effective_from already exists; "
                       "prices are never edited: add one with a later effective_from")
    await catalogues.reload(pool)
    return {**price.as_json(), "note": reprice_note(price.effective_from, now)}


async def add_discount(pool: asyncpg.Pool, *, catalogues: CatalogueCache, tenant_id: str,
                       discount_in: DiscountCreate, now: datetime) -> dict[str, Any]:
    """Add a discount off list prices for the tenant (`schemas.DiscountCreated`); `Invalid` naming the
    field, `Conflict` when one exists for this scope and `effective_from`."""
    try:
        discount = TenantDiscount(tenant_id=tenant_id, percent=_money(discount_in.percent, "percent"),
                                  effective_from=discount_in.effective_from, provider=discount_in.provider,
                                  model=discount_in.model, effective_until=discount_in.effective_until)
    except (TypeError, ValueError) as exc:
        raise _invalid(exc, fallback="percent", fields=DiscountCreate.model_fields) from None
    if not await price_store.insert_discount(pool, discount=discount, note=discount_in.note):
        raise Conflict("a discount for this scope and effective_from already exists")
    await catalogues.reload(pool)
    return {**_discount_json(discount), "note": reprice_note(discount.effective_from, now)}


def reprice_note(effective_from: datetime, now: datetime) -> str:
    if effective_from <= now:
        return ("in force from a past instant: events already priced keep their old cost until "
                "`llmops billing reprice` runs over that period")
    return "in force from a future instant"


def _money(value: str, what: str) -> Decimal:
    return check_scale(to_decimal(value, what=what), what=what)


def _optional_money(value: str | None, what: str) -> Decimal | None:
    return None if value is None else _money(value, what)


def _tenant_price(price_in: PriceCreate, *, tenant_id: str) -> ModelPrice:
    """The price row of a request: exact decimals, checked by `ModelPrice`; `Invalid` naming the field."""
    try:
        return ModelPrice(
            model=price_in.model, provider=price_in.provider, effective_from=price_in.effective_from,
            effective_until=price_in.effective_until,
            input_per_token=_money(price_in.input_per_token, "input_per_token"),
            output_per_token=_money(price_in.output_per_token, "output_per_token"),
            cache_read_per_token=_optional_money(price_in.cache_read_per_token, "cache_read_per_token"),
            cache_write_per_token=_optional_money(price_in.cache_write_per_token, "cache_write_per_token"),
            reasoning_per_token=_optional_money(price_in.reasoning_per_token, "reasoning_per_token"),
            request_fee=_money(price_in.request_fee, "request_fee"), tenant_id=tenant_id, source="api",
            tiers=tuple(
                PriceTier(t.above_input_tokens, _optional_money(t.input_per_token, "tier input_per_token"),
                          _optional_money(t.output_per_token, "tier output_per_token"),
                          _optional_money(t.cache_read_per_token, "tier cache_read_per_token"),
                          _optional_money(t.cache_write_per_token, "tier cache_write_per_token"),
                          _optional_money(t.reasoning_per_token, "tier reasoning_per_token"))
                for t in price_in.tiers),
        )
    except (TypeError, ValueError) as exc:
        raise _invalid(exc, fallback="price", fields=PriceCreate.model_fields) from None


def _invalid(exc: Exception, *, fallback: str, fields: Collection[str]) -> Invalid:
    """422 in the body, naming the field the domain's message starts with (`input_per_token: ...`)."""
    message = str(exc)
    named, _, rest = message.partition(":")
    field = named.strip().removeprefix("tier ")
    if field not in fields:
        return Invalid(fallback, message, location="body")
    return Invalid(field, rest.strip() if named.strip() == field else message, location="body")
