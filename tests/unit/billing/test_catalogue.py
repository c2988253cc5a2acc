"""The catalogue a process prices with (merge, cache), and the price list a tenant sees (pure)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from llmops_billing.catalogue import CatalogueCache, merge
from llmops_billing.price_list import page_of, visible_prices
from llmops_billing.prices import ModelPrice, PriceCatalogue, TenantDiscount
from llmops_shared.problems import Invalid

D = Decimal
NOV = datetime(2026, 11, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OLD = ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=EPOCH, input_per_token=D("0.00000015"),
                 output_per_token=D("0.0000006"))
NEW = ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=NOV, input_per_token=D("0.0000002"),
                 output_per_token=D("0.0000008"), source="correction")


def test_database_rows_replace_base_rows_of_the_same_identity() -> None:
    base = PriceCatalogue([OLD], [TenantDiscount("acme", D("10"), EPOCH)])
    same_identity = replace(OLD, input_per_token=D("0.0000003"), source="db", price_version="db-1")
    merged = merge(base, [same_identity, NEW], [TenantDiscount("acme", D("20"), EPOCH)])
    assert len(merged) == 2
    assert merged.price_for(None, "gpt-4o-mini", "openai", NOV - timedelta(days=1)) is same_identity
    assert [d.percent for d in merged.discounts] == [D("20")]


def test_the_cache_reloads_after_its_interval() -> None:
    clock = [0.0]
    cache = CatalogueCache(PriceCatalogue([OLD]), refresh_s=30, clock=lambda: clock[0])
    loads: list[int] = []

    class FakeConn:
        async def fetch(self, sql: str, *args: Any) -> list[Any]:
            if "FROM model_prices" in sql:
                loads.append(1)
            return []

    async def run() -> None:
        await cache.get(FakeConn())  # type: ignore[arg-type]
        await cache.get(FakeConn())  # type: ignore[arg-type]
        clock[0] = 31
        await cache.get(FakeConn())  # type: ignore[arg-type]

    asyncio.run(run())
    assert len(loads) == 2 and len(cache.current) == 1


def test_the_cache_reloads_when_its_watcher_says_a_price_table_changed() -> None:
    class FakeWatcher:
        def __init__(self) -> None:
            self.counts = {"model_prices": 0, "model_price_tiers": 0, "tenant_price_discounts": 0, "budgets": 0}

        def stamp(self, tables: Any) -> tuple[int, ...]:
            return tuple(self.counts[t] for t in tables)

    watcher = FakeWatcher()
    cache = CatalogueCache(PriceCatalogue([OLD]), refresh_s=3600, clock=lambda: 0.0,
                           watcher=watcher)  # type: ignore[arg-type]
    loads: list[int] = []

    class FakeConn:
        async def fetch(self, sql: str, *args: Any) -> list[Any]:
            if "FROM model_prices" in sql:
                loads.append(1)
            return []

    async def run() -> None:
        await cache.get(FakeConn())  # type: ignore[arg-type]
        await cache.get(FakeConn())  # type: ignore[arg-type]
        watcher.counts["budgets"] += 1  # not a price table
        await cache.get(FakeConn())  # type: ignore[arg-type]
        assert len(loads) == 1
        watcher.counts["tenant_price_discounts"] += 1
        await cache.get(FakeConn())  # type: ignore[arg-type]
        await cache.get(FakeConn())  # type: ignore[arg-type]

    asyncio.run(run())
    assert len(loads) == 2


def test_a_reload_that_finds_a_bad_row_keeps_the_last_good_catalogue(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    cache = CatalogueCache(PriceCatalogue([OLD]), refresh_s=30, clock=lambda: clock[0])
    bad = [False]

    class FakeConn:
        async def fetch(self, sql: str, *args: Any) -> list[Any]:
            if "FROM model_prices" in sql and bad[0]:
                return [{"id": 1, "tenant_id": None, "provider": "openai", "model": "x", "model_key": "x",
                         "effective_from": EPOCH, "effective_until": None, "input_per_token": D("-1"),
                         "output_per_token": D("1"), "cache_read_per_token": None, "cache_write_per_token": None,
                         "reasoning_per_token": None, "request_fee": D(0), "source": "db", "price_version": "v"}]
            return []

    async def run() -> None:
        first = await cache.get(FakeConn())  # type: ignore[arg-type]
        bad[0], clock[0] = True, 31
        assert await cache.get(FakeConn()) is first  # type: ignore[arg-type]

    asyncio.run(run())
    assert "reload refused" in caplog.text


# -- the price list a tenant sees ------------------------------------------------------------------------


def test_visible_prices_are_list_prices_and_the_tenants_own() -> None:
    own = replace(OLD, tenant_id="acme", price_version="")
    theirs = replace(OLD, tenant_id="globex", price_version="")
    catalogue = PriceCatalogue([OLD, own, theirs])
    assert {p.tenant_id for p in visible_prices(catalogue, tenant_id="acme")} == {None, "acme"}
    assert visible_prices(catalogue, tenant_id="acme", model="other") == []


def test_in_memory_pages_cover_everything_once() -> None:
    items = list(range(23))
    seen, cursor = [], None
    while True:
        chunk, cursor = page_of(items, limit=5, cursor=cursor, scope="s")
        seen += chunk
        if cursor is None:
            break
    assert seen == items
    with pytest.raises(Invalid) as caught:
        page_of(items, limit=5, cursor=page_of(items, limit=5, cursor=None, scope="s")[1], scope="other")
    assert caught.value.errors[0].loc == ["query", "cursor"]
