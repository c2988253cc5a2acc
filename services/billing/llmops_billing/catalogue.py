"""The price catalogue a process prices with: the base catalogue, the database's rows over it, kept fresh.

What prices an event is `PriceCatalogue` (pure, `prices.py`). This module puts one together:
- `base_catalogue`: the built-in list (unless turned off) and an optional price file;
- `load_catalogue(conn, base)`: the base catalogue plus every row of `model_prices` (with tiers) and
  `tenant_price_discounts` (`store.prices`). A database row replaces a base row with the same identity
  (tenant, provider, model key, effective_from), so the database has the last word;
- `CatalogueCache`: the catalogue a long-running process prices with, reloaded as soon as a price table
  changes (the process's `ConfigWatcher` moves the stamp of `PRICE_TABLES` when a change commits:
  Postgres LISTEN/NOTIFY, `llmops_shared.config_changes`), and every `refresh_s` in any case (the
  fallback while the watcher is not connected).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import asyncpg

from llmops_billing.prices import ModelPrice, PriceCatalogue, TenantDiscount
from llmops_billing.settings import BillingSettings
from llmops_billing.store import prices as price_store
from llmops_shared.config_changes import ConfigWatcher

PRICE_TABLES = ("model_prices", "model_price_tiers", "tenant_price_discounts")
"""The tables a catalogue is loaded from: a change to any of them reloads it."""

log = logging.getLogger(__name__)


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


async def load_catalogue(conn: asyncpg.Connection | asyncpg.Pool, base: PriceCatalogue) -> PriceCatalogue:
    """`base` with every price row and discount stored in Postgres merged over it (see `merge`)."""
    prices, discounts = await price_store.price_rows(conn)
    return merge(base, prices, discounts)


class CatalogueCache:
    """The catalogue a worker or API process prices with, reloaded from Postgres when it is stale: a price
    table changed since it was loaded (`watcher`'s stamp of `PRICE_TABLES` moved), or `refresh_s` passed.

    With a connected watcher a price change is in force for the next batch (the notification arrives
    within milliseconds of the commit); without one, within `refresh_s`. Events priced before a change
    are corrected with `llmops billing reprice`.
    """

    def __init__(self, base: PriceCatalogue, *, refresh_s: float,
                 clock: Callable[[], float] = time.monotonic, watcher: ConfigWatcher | None = None) -> None:
        self.base = base
        self.refresh_s = refresh_s
        self.clock = clock
        self.watcher = watcher
        self._catalogue: PriceCatalogue | None = None
        self._loaded_at = 0.0
        self._stamp: tuple[int, ...] | None = None  # the watcher's stamp of PRICE_TABLES when last loaded

    def _watched_stamp(self) -> tuple[int, ...] | None:
        return None if self.watcher is None else self.watcher.stamp(PRICE_TABLES)

    @property
    def current(self) -> PriceCatalogue:
        return self._catalogue if self._catalogue is not None else self.base

    def stale(self) -> bool:
        if self._catalogue is None or self._watched_stamp() != self._stamp:
            return True
        return self.clock() - self._loaded_at >= self.refresh_s

    async def get(self, conn: asyncpg.Connection | asyncpg.Pool) -> PriceCatalogue:
        """The catalogue, reloaded when stale. A reload that finds unusable rows (a price the catalogue
        refuses) keeps the last good catalogue and logs an error, rather than failing every event of the
        batch; database errors propagate (the batch is retried)."""
        if self.stale():
            stamp = self._watched_stamp()
            try:
                await self.reload(conn)
            except (ValueError, TypeError) as exc:
                if self._catalogue is None:
                    raise
                self._loaded_at, self._stamp = self.clock(), stamp  # again after the interval or the next change
                log.error("price catalogue reload refused; still pricing with the previous one",
                          extra={"error_type": type(exc).__name__, "error": str(exc)[:500]})
        return self.current

    async def reload(self, conn: asyncpg.Connection | asyncpg.Pool) -> PriceCatalogue:
        stamp = self._watched_stamp()  # before reading: a change committed meanwhile reloads once more
        catalogue = await load_catalogue(conn, self.base)
        if self._catalogue is None or len(catalogue) != len(self._catalogue):
            log.info("price catalogue loaded", extra={"prices": len(catalogue),
                                                      "discounts": len(catalogue.discounts)})
        self._catalogue = catalogue
        self._loaded_at, self._stamp = self.clock(), stamp
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


def catalogue_cache(settings: BillingSettings, *, watcher: ConfigWatcher | None = None) -> CatalogueCache:
    """The catalogue the worker and API price with: built-in list, optional price file, then Postgres;
    reloaded when `watcher` says a price table changed (and every `price_refresh_s`)."""
    extra: tuple[ModelPrice, ...] = ()
    if settings.price_file is not None:
        from llmops_billing.litellm_import import load_litellm_file

        imported = load_litellm_file(
            settings.price_file, source=f"file:{settings.price_file.name}",
            effective_from=parse_instant(settings.price_file_effective_from, what="price_file_effective_from"))
        extra = imported.prices
    return CatalogueCache(base_catalogue(builtin=settings.builtin_prices, extra=extra),
                          refresh_s=settings.price_refresh_s, watcher=watcher)
