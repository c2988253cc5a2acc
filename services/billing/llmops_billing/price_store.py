"""The price catalogue in Postgres: load it (built-in list + database rows), add rows, keep it fresh.

What prices an event is `PriceCatalogue` (pure, `prices.py`). This module is its I/O:
- `load_catalogue(conn, base)`: the base catalogue (the built-in list, and an optional price file) plus
  every row of `model_prices` (with tiers) and `tenant_price_discounts`. A database row replaces a base
  row with the same identity (tenant, provider, model key, effective_from), so the database has the
  last word;
- `insert_prices`, `insert_discount`: new rows (a price change is always a new row; see
  docs/billing.md);
- `CatalogueCache`: the catalogue a long-running process prices with, reloaded every `refresh_s`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from llmops_billing.prices import ModelPrice, PriceCatalogue, PriceTier, TenantDiscount

log = logging.getLogger(__name__)

_PRICE_COLUMNS = """
    p.id, p.tenant_id, p.provider, p.model, p.model_key, p.effective_from, p.effective_until,
    p.input_per_token, p.output_per_token, p.cache_read_per_token, p.cache_write_per_token,
    p.reasoning_per_token, p.request_fee, p.source, p.price_version
"""


def base_catalogue(*, builtin: bool = True, extra: Iterable[ModelPrice] = ()) -> PriceCatalogue:
    """The catalogue before the database: the built-in list (unless turned off) and `extra` rows."""
    from llmops_billing.builtin_prices import builtin_catalogue

    start = builtin_catalogue() if builtin else PriceCatalogue()
    extra = tuple(extra)
    return merge(start, extra, ()) if extra else start


def merge(base: PriceCatalogue, prices: Sequence[ModelPrice], discounts: Sequence[TenantDiscount]) -> PriceCatalogue:
    """`base` with `prices` and `discounts` added; a new row replaces a base row of the same identity."""

    def identity(p: ModelPrice) -> tuple[str | None, str, str, datetime]:
        return (p.tenant_id, p.provider, p.model_key, p.effective_from)

    replaced = {identity(p) for p in prices}
    kept = [p for p in base.prices if identity(p) not in replaced]
    discount_ids = {(d.tenant_id, d.provider, d.model_key, d.effective_from) for d in discounts}
    kept_discounts = [d for d in base.discounts
                      if (d.tenant_id, d.provider, d.model_key, d.effective_from) not in discount_ids]
    return PriceCatalogue((*kept, *prices), (*kept_discounts, *discounts))


async def database_rows(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[list[ModelPrice], list[TenantDiscount]]:
    """Every price row (with its tiers) and every discount stored in Postgres."""
    records = await conn.fetch(f"SELECT {_PRICE_COLUMNS} FROM model_prices p ORDER BY p.id")  # noqa: S608
    tier_records = await conn.fetch(
        """SELECT price_id, above_input_tokens, input_per_token, output_per_token, cache_read_per_token,
                  cache_write_per_token, reasoning_per_token
           FROM model_price_tiers ORDER BY price_id, above_input_tokens""")
    tiers: dict[int, list[PriceTier]] = {}
    for t in tier_records:
        tiers.setdefault(t["price_id"], []).append(PriceTier(
            t["above_input_tokens"], t["input_per_token"], t["output_per_token"], t["cache_read_per_token"],
            t["cache_write_per_token"], t["reasoning_per_token"]))
    prices = [
        ModelPrice(
            model=r["model"], provider=r["provider"], effective_from=r["effective_from"],
            input_per_token=r["input_per_token"], output_per_token=r["output_per_token"],
            cache_read_per_token=r["cache_read_per_token"], cache_write_per_token=r["cache_write_per_token"],
            reasoning_per_token=r["reasoning_per_token"], request_fee=r["request_fee"],
            tiers=tuple(tiers.get(r["id"], ())), tenant_id=r["tenant_id"], effective_until=r["effective_until"],
            source=r["source"], price_version=r["price_version"],
        )
        for r in records
    ]
    discount_records = await conn.fetch(
        """SELECT tenant_id, provider, model_key, percent, effective_from, effective_until, discount_id
           FROM tenant_price_discounts ORDER BY id""")
    discounts = [
        TenantDiscount(tenant_id=r["tenant_id"], percent=r["percent"], effective_from=r["effective_from"],
                       provider=r["provider"], model=r["model_key"], effective_until=r["effective_until"],
                       discount_id=r["discount_id"])
        for r in discount_records
    ]
    return prices, discounts


async def load_catalogue(conn: asyncpg.Connection | asyncpg.Pool, base: PriceCatalogue) -> PriceCatalogue:
    prices, discounts = await database_rows(conn)
    return merge(base, prices, discounts)


@dataclass(frozen=True, slots=True)
class InsertReport:
    inserted: tuple[str, ...]  # price versions written
    existing: tuple[str, ...]  # already there (same identity or version): left as they were


async def insert_prices(conn: asyncpg.Connection, prices: Sequence[ModelPrice]) -> InsertReport:
    """Add price rows (and their tiers) in the caller's transaction; rows already present are skipped,
    so importing the same file twice changes nothing."""
    inserted: list[str] = []
    existing: list[str] = []
    for price in prices:
        price_id = await conn.fetchval(
            """INSERT INTO model_prices (tenant_id, provider, model, model_key, effective_from, effective_until,
                   input_per_token, output_per_token, cache_read_per_token, cache_write_per_token,
                   reasoning_per_token, request_fee, source, price_version)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
               ON CONFLICT DO NOTHING
               RETURNING id""",
            price.tenant_id, price.provider, price.model, price.model_key, price.effective_from,
            price.effective_until, price.input_per_token, price.output_per_token, price.cache_read_per_token,
            price.cache_write_per_token, price.reasoning_per_token, price.request_fee, price.source,
            price.price_version,
        )
        if price_id is None:
            existing.append(price.price_version)
            continue
        inserted.append(price.price_version)
        if price.tiers:
            await conn.executemany(
                """INSERT INTO model_price_tiers (price_id, above_input_tokens, input_per_token, output_per_token,
                       cache_read_per_token, cache_write_per_token, reasoning_per_token)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                [(price_id, t.above_input_tokens, t.input_per_token, t.output_per_token, t.cache_read_per_token,
                  t.cache_write_per_token, t.reasoning_per_token) for t in price.tiers],
            )
    return InsertReport(tuple(inserted), tuple(existing))


async def insert_discount(conn: asyncpg.Connection | asyncpg.Pool, discount: TenantDiscount, *,
                          note: str = "") -> bool:
    """Add a tenant discount; False when one with the same identity already exists."""
    added = await conn.fetchval(
        """INSERT INTO tenant_price_discounts (tenant_id, provider, model_key, percent, effective_from,
               effective_until, discount_id, note)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT DO NOTHING
           RETURNING id""",
        discount.tenant_id, discount.provider, discount.model_key, discount.percent, discount.effective_from,
        discount.effective_until, discount.discount_id, note,
    )
    return added is not None


class CatalogueCache:
    """The catalogue a worker or API process prices with: reloaded from Postgres every `refresh_s`.

    A price change therefore reaches new events within `refresh_s`; events priced before that are
    corrected with `llmops billing reprice`.
    """

    def __init__(self, base: PriceCatalogue, *, refresh_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base = base
        self.refresh_s = refresh_s
        self.clock = clock
        self._catalogue: PriceCatalogue | None = None
        self._loaded_at = 0.0

    @property
    def current(self) -> PriceCatalogue:
        return self._catalogue if self._catalogue is not None else self.base

    def stale(self) -> bool:
        return self._catalogue is None or self.clock() - self._loaded_at >= self.refresh_s

    async def get(self, conn: asyncpg.Connection | asyncpg.Pool) -> PriceCatalogue:
        """The catalogue, reloaded when stale. A reload that finds unusable rows (a price the catalogue
        refuses) keeps the last good catalogue and logs an error, rather than failing every event of the
        batch; database errors propagate (the batch is retried)."""
        if self.stale():
            try:
                await self.reload(conn)
            except (ValueError, TypeError) as exc:
                if self._catalogue is None:
                    raise
                self._loaded_at = self.clock()  # try again after the interval
                log.error("price catalogue reload refused; still pricing with the previous one",
                          extra={"error_type": type(exc).__name__, "error": str(exc)[:500]})
        return self.current

    async def reload(self, conn: asyncpg.Connection | asyncpg.Pool) -> PriceCatalogue:
        catalogue = await load_catalogue(conn, self.base)
        if self._catalogue is None or len(catalogue) != len(self._catalogue):
            log.info("price catalogue loaded", extra={"prices": len(catalogue),
                                                      "discounts": len(catalogue.discounts)})
        self._catalogue = catalogue
        self._loaded_at = self.clock()
        return catalogue


def parse_instant(text: str, *, what: str) -> datetime:
    """An aware datetime from ISO 8601 (`Z` accepted); naive times are refused."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{what}: {text!r} is not an ISO 8601 instant") from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: {text!r} has no time zone (add Z or +00:00)")
    return value

