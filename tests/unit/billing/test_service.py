"""Usage query parsing, source choice, cursors and SQL shape; re-pricing rows; the catalogue cache (pure)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from llmops_billing.ledger import dimension_deltas, ledger_row, pricing_changed, repriced, rollup_deltas
from llmops_billing.price_store import CatalogueCache, merge
from llmops_billing.prices import ModelPrice, PriceCatalogue, TenantDiscount
from llmops_billing.service import (
    GroupField,
    QueryError,
    Source,
    build_usage_sql,
    choose_source,
    encode_cursor,
    page_of,
    parse_month,
    parse_usage_query,
    visible_prices,
)
from llmops_shared.contract import Interaction
from tests.support.events import make_event

D = Decimal
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
NOV, DEC = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def query(**kw: Any) -> Any:
    args: dict[str, Any] = {"start": NOV, "end": DEC, "granularity": "day", "group_by": None, "now": NOW}
    args.update(kw)
    return parse_usage_query(**args)


def test_defaults_are_the_current_utc_month_by_day() -> None:
    q = parse_usage_query(start=None, end=None, granularity=None, group_by=None, now=NOW)
    assert (q.start, q.end, q.granularity.value, q.group_by, q.limit) == (NOV, DEC, "day", (), 100)


@pytest.mark.parametrize(("kw", "field"), [
    ({"end": NOV - timedelta(days=1)}, "to"),
    ({"end": NOV}, "to"),
    ({"start": datetime(2026, 11, 1)}, "from"),
    ({"group_by": "model,colour"}, "group_by"),
    ({"granularity": "week"}, "granularity"),
    ({"granularity": "hour", "start": datetime(2026, 1, 1, tzinfo=UTC)}, "granularity"),
    ({"start": datetime(2024, 1, 1, tzinfo=UTC)}, "to"),
    ({"limit": 0}, "limit"),
    ({"limit": 5000}, "limit"),
    ({"cursor": "garbage!"}, "cursor"),
    ({"filters": {"colour": "red"}}, "colour"),
])
def test_bad_parameters_name_their_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(QueryError) as caught:
        query(**kw)
    assert caught.value.field == field


def test_group_by_accepts_commas_and_repeats_once_each() -> None:
    q = query(group_by=["app,model", "model", "prompt"])
    assert q.group_by == (GroupField.APP, GroupField.MODEL, GroupField.PROMPT)
    assert [name for name, _ in q.columns] == ["app_id", "model", "prompt_name", "prompt_version", "prompt_variant"]


def test_filters_are_normalised_like_the_ledger() -> None:
    q = query(filters={"model": "openai/GPT-4o-mini", "provider": "Azure_OpenAI", "app_id": "", "environment": None})
    assert dict(q.filters) == {"model": "gpt-4o-mini", "provider": "azure"}


@pytest.mark.parametrize(("kw", "source"), [
    ({}, Source.DAILY),
    ({"granularity": "month"}, Source.DAILY),
    ({"granularity": "hour"}, Source.HOURLY),
    ({"start": NOV + timedelta(hours=5)}, Source.HOURLY),
    ({"start": NOV + timedelta(minutes=5)}, Source.LEDGER),
    ({"granularity": "hour", "end": DEC - timedelta(seconds=1)}, Source.LEDGER),
    ({"group_by": "user"}, Source.DAILY_USERS),
    ({"group_by": "app,tag", "granularity": "month"}, Source.DAILY_TAGS),
    ({"group_by": "user", "granularity": "hour"}, Source.LEDGER),
    ({"group_by": "tag", "start": NOV + timedelta(hours=5)}, Source.LEDGER),
    ({"group_by": "user,tag"}, Source.LEDGER),
    ({"group_by": "prompt,user"}, Source.LEDGER),
])
def test_the_cheapest_exact_source_is_chosen(kw: dict[str, Any], source: Source) -> None:
    assert choose_source(query(**kw)) is source


def test_a_cursor_is_bound_to_its_query() -> None:
    q = query(group_by="app,user", limit=2)
    cursor = encode_cursor(q, {"bucket": NOV, "app_id": "bot", "user_id": ""})
    again = query(group_by="app,user", limit=50, cursor=cursor)  # the page size may change
    assert again.after == (NOV, "bot", "")
    with pytest.raises(QueryError, match="another query"):
        query(group_by="app", cursor=cursor)
    with pytest.raises(QueryError, match="another query"):
        query(group_by="app,user", end=DEC + timedelta(days=1), cursor=cursor)


def test_the_sql_is_scoped_to_the_tenant_and_keyset_paged() -> None:
    q = query(group_by="model,tag", granularity="hour",
              cursor=encode_cursor(query(group_by="model,tag", granularity="hour"),
                                   {"bucket": NOV, "model": "m", "tag": "t"}))
    sql, args = build_usage_sql(q, tenant_id="acme")
    assert args[0] == "acme" and "l.tenant_id = $1" in sql
    assert "FROM usage_ledger l LEFT JOIN LATERAL unnest(l.tags)" in sql
    assert "WHERE (bucket, model, tag) > ($4::timestamptz, $5::text, $6::text)" in sql
    assert sql.rstrip().endswith("LIMIT $7") and args[-1] == 101
    tag_sql, tag_args = build_usage_sql(query(group_by="model,tag"), tenant_id="acme")
    assert "FROM usage_daily_tags l" in tag_sql and "l.tag AS tag" in tag_sql and "unnest" not in tag_sql
    assert "l.bucket >= '2026-11-01'::date AND l.bucket < '2026-12-01'::date" in tag_sql and tag_args == ["acme", 101]
    user_sql, _ = build_usage_sql(query(group_by="user", granularity="month"), tenant_id="acme")
    assert "FROM usage_daily_users l" in user_sql and "l.user_id AS user_id" in user_sql
    daily_sql, daily_args = build_usage_sql(query(granularity="month", filters={"app_id": "bot"}), tenant_id="acme")
    assert "FROM usage_daily l" in daily_sql and "l.app_id = $4" in daily_sql
    assert daily_args[1:3] == [NOV.date(), DEC.date()]
    summary_sql, _ = build_usage_sql(replace(query(), granularity=None), tenant_id="acme")
    assert "GROUP BY" not in summary_sql and "ORDER BY" not in summary_sql


def test_months_are_parsed_strictly() -> None:
    assert parse_month("2026-02").isoformat() == "2026-02-01"
    for bad in ("2026-13", "2026-2", "26-02", "2026-02-01", "latest"):
        with pytest.raises(QueryError):
            parse_month(bad)


def test_in_memory_pages_cover_everything_once() -> None:
    items = list(range(23))
    seen, cursor = [], None
    while True:
        chunk, cursor = page_of(items, limit=5, cursor=cursor, scope="s")
        seen += chunk
        if cursor is None:
            break
    assert seen == items
    with pytest.raises(QueryError):
        page_of(items, limit=5, cursor=page_of(items, limit=5, cursor=None, scope="s")[1], scope="other")


# -- re-pricing a row ---------------------------------------------------------------------------------

OLD = ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=EPOCH, input_per_token=D("0.00000015"),
                 output_per_token=D("0.0000006"))
NEW = ModelPrice(model="gpt-4o-mini", provider="openai", effective_from=NOV, input_per_token=D("0.0000002"),
                 output_per_token=D("0.0000008"), source="correction")


def row_for(catalogue: PriceCatalogue, **overrides: Any) -> Any:
    event = Interaction.model_validate({**make_event(occurred_at="2026-11-10T10:00:00Z",
                                                     usage={"input_tokens": 1000, "output_tokens": 100}),
                                        "tenant_id": "acme", **overrides})
    return ledger_row(event, catalogue, priced_at=NOW)


@pytest.mark.parametrize("overrides", [
    {}, {"provider": None, "model": "openai/gpt-4o-mini"}, {"response_model": "gpt-4o-mini-2024-07-18"},
    {"model": "mystery"}, {"model": None, "response_model": None}, {"usage": None},
])
def test_repricing_with_the_same_catalogue_changes_nothing(overrides: dict[str, Any]) -> None:
    catalogue = PriceCatalogue([OLD])
    row = row_for(catalogue, **overrides)
    assert not pricing_changed(row, repriced(row, catalogue, priced_at=NOW + timedelta(days=1)))


def test_repricing_follows_a_correction_and_the_rollup_delta_moves_the_difference() -> None:
    row = row_for(PriceCatalogue([OLD]))
    new = repriced(row, PriceCatalogue([OLD, NEW]), priced_at=NOW)
    assert new.cost_total == 1000 * D("0.0000002") + 100 * D("0.0000008")
    assert new.price_version == NEW.price_version and new.priced_at == NOW and pricing_changed(row, new)
    _hourly, daily = rollup_deltas([new], removed=[row])
    [(_key, delta)] = daily.items()
    assert delta.event_count == 0 and delta.tokens == [0] * 5
    assert delta.costs[-1] == new.cost_total - row.cost_total
    unknown = row_for(PriceCatalogue([OLD]), model="acme-chat-2025-01-01", provider="acme")
    priced = repriced(unknown, PriceCatalogue([OLD, ModelPrice(model="acme-chat", provider="acme",
                                                               effective_from=EPOCH, input_per_token=D("1"),
                                                               output_per_token=D("1"))]), priced_at=NOW)
    assert unknown.unpriced and not priced.unpriced and priced.model_key == "acme-chat"
    moved, _ = rollup_deltas([priced], removed=[unknown])
    assert sorted(d.event_count for d in moved.values()) == [-1, 1]  # out of the old key, into the new one
    users, tags = dimension_deltas([priced], removed=[unknown])
    assert sorted(d.event_count for d in users.values()) == [-1, 1]
    assert sorted(d.event_count for d in tags.values()) == [-1, 1]


def test_the_by_user_and_by_tag_deltas_count_an_event_under_each_tag() -> None:
    catalogue = PriceCatalogue([OLD])
    tagged = row_for(catalogue, user_id=None, tags=["a", "b"])
    untagged = row_for(catalogue, user_id="u-1", tags=[])
    users, tags = dimension_deltas([tagged, untagged])
    assert sorted(key[2] for key in users) == ["", "u-1"]
    assert sorted(key[2] for key in tags) == ["", "a", "b"]
    assert all(d.event_count == 1 and d.costs[-1] == tagged.cost_total for d in tags.values())
    day = tagged.occurred_at.date()
    assert ("acme", day, "a", tagged.app_id, tagged.environment, tagged.provider, tagged.model_key) in tags


# -- the catalogue in a process -------------------------------------------------------------------------


def test_database_rows_replace_base_rows_of_the_same_identity() -> None:
    base = PriceCatalogue([OLD], [TenantDiscount("acme", D("10"), EPOCH)])
    same_identity = replace(OLD, input_per_token=D("0.0000003"), source="db", price_version="db-1")
    merged = merge(base, [same_identity, NEW], [TenantDiscount("acme", D("20"), EPOCH)])
    assert len(merged) == 2
    assert merged.price_for(None, "gpt-4o-mini", "openai", NOV - timedelta(days=1)) is same_identity
    assert [d.percent for d in merged.discounts] == [D("20")]


def test_visible_prices_are_list_prices_and_the_tenants_own() -> None:
    own = replace(OLD, tenant_id="acme", price_version="")
    theirs = replace(OLD, tenant_id="globex", price_version="")
    catalogue = PriceCatalogue([OLD, own, theirs])
    assert {p.tenant_id for p in visible_prices(catalogue, tenant_id="acme")} == {None, "acme"}
    assert visible_prices(catalogue, tenant_id="acme", model="other") == []


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
