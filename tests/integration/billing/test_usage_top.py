"""Billing's top query (`top`): the N groups of largest cost over the range, from every source, equal the
full query's groups ranked by cost (ties by name); `others` sums the rest per bucket."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from llmops_billing import usage
from llmops_billing.builtin_prices import builtin_catalogue
from llmops_billing.ledger import ledger_row
from llmops_billing.store.ledger import write_batch
from llmops_billing.usage_query import MEASURES, UsageQuery, decode_cursor, parse_usage_query
from llmops_shared.contract import Interaction
from llmops_shared.privacy import DEV_PSEUDONYM_KEY, pseudonym
from tests.support.events import make_event

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
NOV = {"start": datetime(2026, 11, 1, tzinfo=UTC), "end": datetime(2026, 12, 1, tzinfo=UTC)}


def events(tenant: str) -> list[dict[str, Any]]:
    """14 users over 9 apps and 6 tags, 4 days; `user-tie-a` and `user-tie-b` (of `app-tie-a` and
    `app-tie-b`) cost exactly the same, more than any other."""
    out = []
    users = [*(f"user-{u:02d}" for u in range(12)), "user-tie-b", "user-tie-a"]
    for u, user in enumerate(users):
        tie = user.startswith("user-tie")
        for day in (2, 3, 7, 8):
            for k in range(2 if tie else 1 + u % 4):
                tokens = 500_000 + 100 * day + k if tie else 1000 * u + 100 * day + k
                out.append({**make_event(
                    occurred_at=f"2026-11-{day:02d}T{(3 * k + day) % 24:02d}:{10 + k:02d}:00Z",
                    app_id=user.replace("user", "app") if tie else f"app-{u % 7}", user_id=user,
                    tags=[f"tag-{u % 6}", *(["both"] if u % 5 == 0 else [])],
                    model="gpt-4o" if tie else ("gpt-4o-mini", "gpt-4o")[u % 2], provider="openai",
                    usage={"input_tokens": tokens, "output_tokens": tokens // 10}), "tenant_id": tenant})
    return out


@pytest.fixture
async def tenant(pg_pool: asyncpg.Pool) -> str:
    tenant = f"top-{uuid.uuid4().hex[:8]}"
    rows = [ledger_row(Interaction.model_validate(e), builtin_catalogue(), priced_at=NOW) for e in events(tenant)]
    async with pg_pool.acquire() as conn, conn.transaction():
        await write_batch(conn, rows=[r for r in rows if r is not None])
    return tenant


def _group(row: dict[str, Any], query: UsageQuery) -> tuple[Any, ...]:
    return tuple(row[name] for name, _ in query.columns)


async def _every_row(pool: asyncpg.Pool, tenant: str, query: UsageQuery) -> list[dict[str, Any]]:
    page = await usage.usage_page(pool, tenant_id=tenant, query=replace(query, top=None, limit=1_000))
    assert page["next_cursor"] is None
    return page["rows"]


QUERIES = [  # (group_by, granularity, start, end): every source a top query can rank from or read
    ("user", None, *NOV.values()),  # monthly_users
    ("user", "day", *NOV.values()),  # ranked from monthly_users, rows from daily_users
    ("app", None, *NOV.values()),  # daily
    ("app", "day", *NOV.values()),
    ("model", "month", *NOV.values()),
    ("tag", None, *NOV.values()),  # daily_tags, an event under each of its tags
    ("tag", "hour", *NOV.values()),  # the ledger
    ("app,model", None, datetime(2026, 11, 2, 5, tzinfo=UTC), datetime(2026, 11, 8, 9, tzinfo=UTC)),  # hourly
    ("user", None, datetime(2026, 11, 2, 5, 30, tzinfo=UTC), NOV["end"]),  # the ledger, not on whole hours
]


@pytest.mark.parametrize("shape", QUERIES)
@pytest.mark.parametrize("top", [1, 2, 5, 50])
async def test_the_top_groups_are_the_full_querys_first_by_cost(pg_pool: asyncpg.Pool, tenant: str,
                                                                 shape: tuple[str, str | None, datetime, datetime],
                                                                 top: int) -> None:
    group_by, granularity, start, end = shape
    query = parse_usage_query(start=start, end=end, granularity=granularity or "day", group_by=group_by, now=NOW,
                              limit=1_000, top=top)
    if granularity is None:
        query = replace(query, granularity=None)
    every = await _every_row(pg_pool, tenant, query)
    cost: dict[tuple[Any, ...], Decimal] = {}
    for row in every:
        cost[_group(row, query)] = cost.get(_group(row, query), Decimal(0)) + Decimal(row["cost_total"])
    ranked = sorted(cost, key=lambda g: (-cost[g], tuple("" if v is None else v for v in g)))
    kept = set(ranked[:top])

    page = await usage.usage_page(pg_pool, tenant_id=tenant, query=query)

    assert page["rows"] == [r for r in every if _group(r, query) in kept]  # the same rows, in the same order
    left = [r for r in every if _group(r, query) not in kept]
    assert page["others"]["groups"] == len(ranked) - len(kept)
    buckets = sorted({r.get("bucket") for r in left}, key=str)
    expected = [{**({"bucket": b} if granularity else {}),
                 **{m: sum((Decimal(r[m]) if isinstance(r[m], str) else r[m] for r in left if r.get("bucket") == b),
                           start=Decimal(0) if m.startswith("cost_") else 0) for m in MEASURES}}
                for b in (buckets if granularity else [None])]
    got = [{k: Decimal(v) if k.startswith("cost_") else v for k, v in r.items()} for r in page["others"]["rows"]]
    assert got == expected


async def test_ties_go_to_the_first_name_and_a_top_page_keeps_its_cursor(pg_pool: asyncpg.Pool,
                                                                          tenant: str) -> None:
    users = sorted(pseudonym(tenant, u, DEV_PSEUDONYM_KEY) for u in ("user-tie-a", "user-tie-b"))  # as stored
    for group_by, tied in (("user", users[0]), ("app", "app-tie-a")):
        query = replace(parse_usage_query(group_by=group_by, now=NOW, granularity=None, top=1, **NOV),
                        granularity=None)
        page = await usage.usage_page(pg_pool, tenant_id=tenant, query=query)
        assert [r[query.columns[0][0]] for r in page["rows"]] == [tied]
        assert page["others"]["groups"] == len(await _every_row(pg_pool, tenant, query)) - 1
    two = replace(query, top=3, limit=2)  # a top query pages like any other
    first = await usage.usage_page(pg_pool, tenant_id=tenant, query=two)
    assert first["next_cursor"] is not None
    second = await usage.usage_page(pg_pool, tenant_id=tenant,
                                    query=replace(two, after=decode_cursor(first["next_cursor"], two)))
    assert second["next_cursor"] is None and len(second["rows"]) == 1
    whole = await usage.usage_page(pg_pool, tenant_id=tenant, query=replace(two, limit=10))
    assert first["rows"] + second["rows"] == whole["rows"]
    # the others of a page of the top rows are summed in SQL, of all of them by difference: the same
    assert first["others"] == second["others"] == whole["others"] and whole["others"]["groups"] == 6
    assert {"app-tie-a", "app-tie-b"} <= {r["app_id"] for r in whole["rows"]}


@pytest.mark.parametrize(("params", "message"), [
    ({"top": 0, "group_by": "user"}, "must be from 1 to 1000"),
    ({"top": 1001, "group_by": "user"}, "must be from 1 to 1000"),
    ({"top": 5, "group_by": None}, "needs a group_by"),
])
def test_a_bad_top_is_refused_naming_it(params: dict[str, Any], message: str) -> None:
    from llmops_shared.problems import Invalid

    with pytest.raises(Invalid) as refused:
        parse_usage_query(start=None, end=None, granularity=None, now=NOW, **params)
    assert refused.value.errors[0].loc == ["query", "top"] and message in refused.value.errors[0].msg


def _others(left: list[dict[str, Any]], granularity: str | None) -> list[dict[str, Any]]:
    """The expected `others` rows: `left`'s sums per bucket (one row without a granularity)."""
    buckets = sorted({r.get("bucket") for r in left}, key=str)
    return [{**({"bucket": b} if granularity else {}),
             **{m: sum((Decimal(r[m]) if isinstance(r[m], str) else r[m] for r in left if r.get("bucket") == b),
                       start=Decimal(0) if m.startswith("cost_") else 0) for m in MEASURES}}
            for b in (buckets if granularity else [None])]


@pytest.mark.parametrize("shape", [s for s in QUERIES if "," not in s[0]])
async def test_only_named_groups_and_the_others_without_a_ranking(pg_pool: asyncpg.Pool, tenant: str,
                                                                  shape: tuple[str, str | None, datetime, datetime]
                                                                  ) -> None:
    """`only` (the console's chart, after its table ranked the month): the rows of the groups it names, as the
    full query has them, and the other groups' sums per bucket (their count is not known: None)."""
    group_by, granularity, start, end = shape
    query = parse_usage_query(start=start, end=end, granularity=granularity or "day", group_by=group_by, now=NOW,
                              limit=1_000)
    if granularity is None:
        query = replace(query, granularity=None)
    every = await _every_row(pg_pool, tenant, query)
    names = sorted({_group(r, query)[0] for r in every})
    for only in ((names[-1], names[0]), (names[1],), ()):
        page = await usage.usage_page(pg_pool, tenant_id=tenant, query=replace(query, only=only))
        assert page["rows"] == [r for r in every if _group(r, query)[0] in only]
        assert page["others"]["groups"] is None
        got = [{k: Decimal(v) if k.startswith("cost_") else v for k, v in r.items()} for r in page["others"]["rows"]]
        assert got == _others([r for r in every if _group(r, query)[0] not in only], granularity)
    with pytest.raises(ValueError, match="top or only"):
        await usage.usage_page(pg_pool, tenant_id=tenant, query=replace(query, only=(names[0],), top=2))
