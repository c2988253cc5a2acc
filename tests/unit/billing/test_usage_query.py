"""The usage-query planner: parsing, source choice, cursors; the SQL a plan becomes; months (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmops_billing.statements import parse_month
from llmops_billing.store.usage import build_usage_sql
from llmops_billing.usage_query import (
    GroupField,
    Source,
    choose_source,
    encode_cursor,
    parse_usage_query,
    user_filter,
)
from llmops_shared.privacy import pseudonym
from llmops_shared.problems import Invalid

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
NOV, DEC = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


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
    with pytest.raises(Invalid) as caught:
        query(**kw)
    assert [e.loc for e in caught.value.errors] == [["query", field]]


def test_group_by_accepts_commas_and_repeats_once_each() -> None:
    q = query(group_by=["app,model", "model", "prompt"])
    assert q.group_by == (GroupField.APP, GroupField.MODEL, GroupField.PROMPT)
    assert [name for name, _ in q.columns] == ["app_id", "model", "prompt_name", "prompt_version", "prompt_variant"]


def test_filters_are_normalised_like_the_ledger() -> None:
    q = query(filters={"model": "openai/GPT-4o-mini", "provider": "Azure_OpenAI", "app_id": "", "environment": None})
    assert dict(q.filters) == {"model": "gpt-4o-mini", "provider": "azure"}


U = "u_0123456789abcdef0123"


@pytest.mark.parametrize(("kw", "source"), [
    # no grouping, no filter, whole hours: the per-tenant hourly totals, whatever the granularity
    ({}, Source.HOURLY_TOTALS),
    ({"granularity": "month"}, Source.HOURLY_TOTALS),
    ({"granularity": "hour"}, Source.HOURLY_TOTALS),
    ({"start": NOV + timedelta(hours=5)}, Source.HOURLY_TOTALS),
    ({"start": NOV + timedelta(minutes=5)}, Source.LEDGER),
    ({"granularity": "hour", "end": DEC - timedelta(seconds=1)}, Source.LEDGER),
    # a grouping or a filter: the rollups with those columns
    ({"group_by": "model"}, Source.DAILY),
    ({"filters": {"app_id": "bot"}, "granularity": "month"}, Source.DAILY),
    ({"group_by": "model", "granularity": "hour"}, Source.HOURLY),
    ({"group_by": "model", "start": NOV + timedelta(hours=5)}, Source.HOURLY),
    ({"group_by": "model", "start": NOV + timedelta(minutes=5)}, Source.LEDGER),
    # users: by month on whole months, the monthly by-user rollup; by day, or with other columns, the daily one
    ({"group_by": "user", "granularity": "month"}, Source.MONTHLY_USERS),
    ({"filters": {"user_id": U}, "granularity": "month"}, Source.MONTHLY_USERS),
    ({"group_by": "user", "granularity": "month", "end": DEC + timedelta(days=31)}, Source.MONTHLY_USERS),
    ({"group_by": "user"}, Source.DAILY_USERS),
    ({"group_by": "user", "granularity": "month", "start": NOV + timedelta(days=1)}, Source.DAILY_USERS),
    ({"group_by": "app,user", "granularity": "month"}, Source.DAILY_USERS),
    ({"group_by": "user", "granularity": "month", "filters": {"app_id": "bot"}}, Source.DAILY_USERS),
    ({"filters": {"user_id": U}}, Source.DAILY_USERS),
    ({"group_by": "app,tag", "granularity": "month"}, Source.DAILY_TAGS),
    ({"group_by": "user", "granularity": "hour"}, Source.LEDGER),
    ({"group_by": "tag", "start": NOV + timedelta(hours=5)}, Source.LEDGER),
    ({"group_by": "user,tag"}, Source.LEDGER),
    ({"group_by": "prompt,user"}, Source.LEDGER),
    ({"filters": {"user_id": U}, "group_by": "tag"}, Source.LEDGER),
    ({"filters": {"user_id": U}, "granularity": "hour"}, Source.LEDGER),
])
def test_the_narrowest_exact_source_is_chosen(kw: dict[str, Any], source: Source) -> None:
    assert choose_source(query(**kw)) is source


def test_the_user_filter_takes_the_apps_user_id_and_compares_the_tenants_pseudonym() -> None:
    expected = pseudonym("acme", "jane@example.com", b"k")
    assert user_filter("jane@example.com", tenant_id="acme", key=b"k") == expected
    assert user_filter(expected, tenant_id="acme", key=b"k") == expected  # a pseudonym the API showed
    assert user_filter("jane@example.com", tenant_id="globex", key=b"k") != expected
    assert user_filter(None, tenant_id="acme", key=b"k") is None and user_filter("", tenant_id="acme", key=b"k") is None
    q = query(filters={"user_id": expected})
    sql, args = build_usage_sql(q, tenant_id="acme")
    assert "l.user_id = $" in sql and expected in args and "jane" not in repr(args)


@pytest.mark.parametrize("bad", ["x" * 257, "a\x00b", "tab\x07"])
def test_a_user_id_no_event_can_carry_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(Invalid) as caught:
        user_filter(bad, tenant_id="acme", key=b"k")
    assert [e.loc for e in caught.value.errors] == [["query", "user_id"]]


def test_a_cursor_is_bound_to_its_query() -> None:
    q = query(group_by="app,user", limit=2)
    cursor = encode_cursor(q, {"bucket": NOV, "app_id": "bot", "user_id": ""})
    again = query(group_by="app,user", limit=50, cursor=cursor)  # the page size may change
    assert again.after == (NOV, "bot", "")
    with pytest.raises(Invalid, match="another query"):
        query(group_by="app", cursor=cursor)
    with pytest.raises(Invalid, match="another query"):
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
    user_sql, _ = build_usage_sql(query(group_by="user"), tenant_id="acme")
    assert "FROM usage_daily_users l" in user_sql and "l.user_id AS user_id" in user_sql
    month_sql, _ = build_usage_sql(query(group_by="user", granularity="month"), tenant_id="acme")
    assert "FROM usage_monthly_users l" in month_sql and "l.user_id AS user_id" in month_sql
    assert "l.bucket >= '2026-11-01'::date AND l.bucket < '2026-12-01'::date" in month_sql
    totals_sql, totals_args = build_usage_sql(query(granularity="hour"), tenant_id="acme")
    assert "FROM usage_hourly_totals l" in totals_sql and totals_args[1:3] == [NOV, DEC]
    daily_sql, daily_args = build_usage_sql(query(granularity="month", filters={"app_id": "bot"}), tenant_id="acme")
    assert "FROM usage_daily l" in daily_sql and "l.app_id = $4" in daily_sql
    assert daily_args[1:3] == [NOV.date(), DEC.date()]
    # money comes back as the text the API shows (no Decimal round trip per row and column)
    assert "trim_scale(sum(l.cost_total))::text AS cost_total" in totals_sql
    assert "trim_scale(coalesce(sum(l.cost_total), 0))::text AS cost_total" in sql
    summary_sql, _ = build_usage_sql(replace(query(), granularity=None), tenant_id="acme")
    assert "GROUP BY" not in summary_sql and "ORDER BY" not in summary_sql


def test_months_are_parsed_strictly() -> None:
    assert parse_month("2026-02").isoformat() == "2026-02-01"
    for bad in ("2026-13", "2026-2", "26-02", "2026-02-01", "latest"):
        with pytest.raises(Invalid) as caught:
            parse_month(bad)
        assert caught.value.errors[0].loc == ["path", "month"]
