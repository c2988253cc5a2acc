"""`model_prices`, `model_price_tiers` and `tenant_price_discounts`: price rows and discounts in Postgres.

Rows are only ever added: a price change is a new row with a later `effective_from` (docs/billing.md).
`catalogue.load_catalogue` merges what `price_rows` reads over the base catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from llmops_billing.prices import ModelPrice, PriceTier, TenantDiscount

_PRICE_COLUMNS = """
    p.id, p.tenant_id, p.provider, p.model, p.model_key, p.effective_from, p.effective_until,
    p.input_per_token, p.output_per_token, p.cache_read_per_token, p.cache_write_per_token,
    p.reasoning_per_token, p.request_fee, p.source, p.price_version
"""


async def price_rows(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[list[ModelPrice], list[TenantDiscount]]:
    """Every price row (with its tiers) and every discount stored in Postgres. A row the catalogue
    refuses (a negative price, say) raises `ValueError` or `TypeError`."""
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


@dataclass(frozen=True, slots=True)
class InsertReport:
    inserted: tuple[str, ...]  # price versions written
    existing: tuple[str, ...]  # already there (same identity or version): left as they were


async def insert_prices(conn: asyncpg.Connection, *, prices: Sequence[ModelPrice],
                        on_row: Callable[[], None] | None = None) -> InsertReport:
    """Add price rows (and their tiers) in the caller's transaction; rows already present are skipped,
    so importing the same file twice changes nothing. `on_row()` after each row (a progress bar's tick)."""
    inserted: list[str] = []
    existing: list[str] = []
    for price in prices:
        if on_row is not None:
            on_row()
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


async def insert_discount(conn: asyncpg.Connection | asyncpg.Pool, *, discount: TenantDiscount,
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
