"""The billing API on the real Postgres and Redis: every endpoint, its errors, and tenant isolation."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel

from llmops_billing.api import create_app
from llmops_billing.builtin_prices import builtin_catalogue
from llmops_billing.ledger import ledger_row
from llmops_billing.prices import ModelPrice, TenantDiscount
from llmops_billing.settings import BillingSettings
from llmops_billing.store.ledger import write_batch
from llmops_billing.store.prices import insert_discount, insert_prices
from llmops_shared import apikeys
from llmops_shared.clock import fixed
from llmops_shared.contract import Interaction
from llmops_shared.privacy import DEV_PSEUDONYM_KEY, pseudonym
from llmops_shared.settings import CommonSettings
from tests.support.events import make_event
from tests.support.servers import serve

pytestmark = pytest.mark.integration

D = Decimal
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOV = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
# The API's "now", inside the month of the test data, so its statement is open whatever today's date is.
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
SECRET = "zz-secret-b"  # every piece of tenant B's data carries it; tenant A must never see it


@dataclass
class World:
    url: str
    a: str
    b: str
    a_read: str
    a_admin: str
    b_read: str
    b_admin: str
    a_ingest: str
    b_budget_id: int
    pool: asyncpg.Pool

    def client(self, key: str | None) -> httpx.AsyncClient:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


def events_of(tenant: str, marker: str) -> list[dict[str, Any]]:
    out = []
    for day in (3, 4, 5):
        for hour in (1, 9, 17):
            for i, (model, provider) in enumerate((("gpt-4o-mini", "openai"), ("claude-3-5-haiku-20241022",
                                                                                "anthropic"))):
                out.append({**make_event(
                    occurred_at=f"2026-11-{day:02d}T{hour:02d}:{10 + i:02d}:00Z", model=model, provider=provider,
                    app_id=f"{marker}-app-{hour % 2}", user_id=f"{marker}-user-{day % 2}",
                    tags=[f"{marker}-tag", f"team-{i}"],
                    prompt={"name": f"{marker}-prompt", "version": str(day)},
                    usage={"input_tokens": 1000 * day + hour, "cache_read_input_tokens": 10 * hour,
                           "output_tokens": 50 + hour, "reasoning_tokens": i * 5}), "tenant_id": tenant})
    out.append({**make_event(occurred_at="2026-11-06T12:00:00Z", model=f"{marker}-unknown-model", provider="acme",
                             app_id=f"{marker}-app-0", usage={"input_tokens": 9, "output_tokens": 9}),
                "tenant_id": tenant})
    return out


@pytest_asyncio.fixture(scope="module")
async def world(stack: CommonSettings, pg_pool: asyncpg.Pool) -> AsyncIterator[World]:
    a, b = f"ta-{uuid.uuid4().hex[:8]}", f"tb-{uuid.uuid4().hex[:8]}"

    async def make_key(tenant_id: str, scopes: list[str]) -> str:
        return (await apikeys.create_key(pg_pool, tenant_id=tenant_id, scopes=scopes)).secret

    keys = {
        "a_read": await make_key(a, ["billing:read"]), "a_admin": await make_key(a, ["admin"]),
        "b_read": await make_key(b, ["billing:read"]), "b_admin": await make_key(b, ["admin"]),
        "a_ingest": await make_key(a, ["ingest:write"]),
    }
    rows = [ledger_row(Interaction.model_validate(e), builtin_catalogue(), priced_at=NOW)
            for e in events_of(a, "alpha") + events_of(b, SECRET)]
    async with pg_pool.acquire() as conn, conn.transaction():
        await write_batch(conn, rows=[r for r in rows if r is not None])
        await insert_prices(conn, prices=[ModelPrice(model=f"{SECRET}-model", provider="openai", effective_from=EPOCH,
                                              tenant_id=b, input_per_token=D("0.001"), output_per_token=D("0.002"),
                                              source="test")])
        await insert_discount(conn, discount=TenantDiscount(tenant_id=b, percent=D("12.5"), effective_from=EPOCH,
                                                   model="gpt-4o", discount_id=f"{SECRET}-discount"))
        b_budget_id = await conn.fetchval(
            "INSERT INTO budgets (tenant_id, app_id, period, amount, name) VALUES ($1, $2, 'month', 5, $3) "
            "RETURNING id",
            b, f"{SECRET}-app-0", f"{SECRET}-budget")
    settings = BillingSettings(**stack.model_dump(), api_page_max=500)
    with serve(create_app(settings, clock=fixed(NOW))) as url:
        yield World(url, a, b, pool=pg_pool, b_budget_id=b_budget_id, **keys)


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# -- usage -----------------------------------------------------------------------------------------


async def test_usage_by_model_per_day_equals_the_ledger(world: World) -> None:
    async with world.client(world.a_read) as client:
        resp = await client.get("/v1/usage", params={**NOV, "granularity": "day", "group_by": "model"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["source"] == "daily" and body["group_by"] == ["model"] and body["next_cursor"] is None
    expected = await world.pool.fetch(
        """SELECT date_trunc('day', occurred_at AT TIME ZONE 'UTC') AS day, model_key, count(*) AS n,
                  coalesce(sum(cost_total), 0) AS cost, sum(input_tokens) AS input
           FROM usage_ledger WHERE tenant_id = $1 GROUP BY 1, 2 ORDER BY 1, 2""", world.a)
    got = [(r["bucket"][:10], r["model"], r["event_count"], D(r["cost_total"]), r["input_tokens"])
           for r in body["rows"]]
    assert got == [(e["day"].strftime("%Y-%m-%d"), e["model_key"], e["n"], e["cost"], e["input"]) for e in expected]
    assert all(isinstance(r["cost_total"], str) for r in body["rows"])


async def test_every_grouping_and_granularity_gives_the_same_total(world: World) -> None:
    ledger_total = await world.pool.fetchval(
        "SELECT sum(cost_total) FROM usage_ledger WHERE tenant_id = $1", world.a)
    async with world.client(world.a_read) as client:
        for granularity in ("hour", "day", "month"):
            for group_by in ("app", "model", "provider", "prompt", "user", "app,model,prompt", "environment"):
                resp = await client.get("/v1/usage", params={**NOV, "granularity": granularity, "group_by": group_by,
                                                             "limit": 500})
                assert resp.status_code == 200, (granularity, group_by, resp.text)
                rows = resp.json()["rows"]
                assert sum(D(r["cost_total"]) for r in rows) == ledger_total, (granularity, group_by)
        # a range that is not on whole days reads the hourly rollup; not on whole hours, the ledger
        for params, source in ((
                {"from": "2026-11-03T09:00:00Z", "to": "2026-11-04T09:00:00Z"}, "hourly"),
                ({"from": "2026-11-03T09:05:00Z", "to": "2026-11-04T09:00:00Z"}, "ledger")):
            resp = await client.get("/v1/usage", params={**params, "group_by": "model"})
            assert resp.json()["source"] == source
            expected = await world.pool.fetchval(
                "SELECT sum(cost_total) FROM usage_ledger WHERE tenant_id = $1 AND occurred_at >= $2 "
                "AND occurred_at < $3",
                world.a, datetime.fromisoformat(params["from"]), datetime.fromisoformat(params["to"]))
            assert sum(D(r["cost_total"]) for r in resp.json()["rows"]) == expected


async def test_usage_by_tag_counts_an_event_under_each_of_its_tags(world: World) -> None:
    async with world.client(world.a_read) as client:
        resp = await client.get("/v1/usage", params={**NOV, "granularity": "month", "group_by": "tag"})
    rows = {r["tag"]: r for r in resp.json()["rows"]}
    assert resp.json()["source"] == "daily_tags"
    ledger = await world.pool.fetch(  # the rollup gives what the ledger gives
        "SELECT t.tag, count(*) AS n, coalesce(sum(l.cost_total), 0) AS c FROM usage_ledger l "
        "LEFT JOIN LATERAL unnest(l.tags) AS t(tag) ON true WHERE l.tenant_id = $1 AND l.occurred_at >= $2 "
        "AND l.occurred_at < $3 GROUP BY 1", world.a, datetime.fromisoformat(NOV["from"]),
        datetime.fromisoformat(NOV["to"]))
    assert {t: (r["event_count"], D(r["cost_total"])) for t, r in rows.items()} == {
        r["tag"]: (r["n"], r["c"]) for r in ledger}
    async with world.client(world.a_read) as client:  # hourly granularity reads the ledger
        hourly = await client.get("/v1/usage", params={**NOV, "granularity": "hour", "group_by": "tag"})
    assert hourly.status_code == 200, hourly.text
    assert hourly.json()["source"] == "ledger"
    assert rows["alpha-tag"]["event_count"] == 18 and rows["team-0"]["event_count"] == 9
    assert rows["test"]["event_count"] == 1  # the unknown-model event has the default tag only
    assert rows["alpha-tag"]["unpriced_count"] == 0 and rows["test"]["unpriced_count"] == 1


async def test_pages_follow_the_cursor_and_cover_every_row(world: World) -> None:
    params = {**NOV, "granularity": "hour", "group_by": "app,model"}
    async with world.client(world.a_read) as client:
        whole = (await client.get("/v1/usage", params={**params, "limit": 500})).json()["rows"]
        pages: list[dict[str, Any]] = []
        cursor = None
        while True:
            paging = {"limit": 4, **({"cursor": cursor} if cursor else {})}
            resp = await client.get("/v1/usage", params={**params, **paging})
            assert resp.status_code == 200, resp.text
            pages += resp.json()["rows"]
            cursor = resp.json()["next_cursor"]
            if cursor is None:
                break
        assert pages == whole and len(whole) > 8
        first = (await client.get("/v1/usage", params={**params, "limit": 4})).json()["next_cursor"]
        other = await client.get("/v1/usage", params={**NOV, "granularity": "day", "group_by": "app", "cursor": first})
        assert other.status_code == 422 and other.json()["errors"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "2026-11-05T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
    ({**NOV, "group_by": "model,colour"}, "group_by"),
    ({**NOV, "granularity": "week"}, "granularity"),
    ({**NOV, "limit": "0"}, "limit"),
    ({**NOV, "cursor": "not-a-cursor"}, "cursor"),
    ({"from": "2026-11-01T00:00:00", "to": "2026-12-01T00:00:00Z"}, "from"),
    ({"from": "yesterday", "to": "2026-12-01T00:00:00Z"}, "from"),
    ({**NOV, "user_id": "u" * 257}, "user_id"),
    ({**NOV, "group_by": "app", "top": "0"}, "top"),
    ({**NOV, "top": "3"}, "top"),  # top of what: no group_by
])
async def test_bad_parameters_answer_422_naming_the_field(world: World, params: dict[str, str], field: str) -> None:
    async with world.client(world.a_read) as client:
        for path in ("/v1/usage", "/v1/usage.csv"):
            if path.endswith(".csv") and field in ("limit", "cursor", "top"):
                continue
            resp = await client.get(path, params=params)
            assert resp.status_code == 422, (path, resp.text)
            assert ["query", field] in [e["loc"] for e in resp.json()["errors"]], resp.text


async def test_top_answers_the_largest_groups_and_sums_the_others(world: World) -> None:
    params = {**NOV, "granularity": "month", "group_by": "model"}
    async with world.client(world.a_read) as client:
        every = (await client.get("/v1/usage", params=params)).json()
        top = (await client.get("/v1/usage", params={**params, "top": 1})).json()
    assert every["others"] is None
    largest = max(every["rows"], key=lambda r: D(r["cost_total"]))
    assert top["rows"] == [largest] and top["others"]["groups"] == len(every["rows"]) - 1
    assert [D(r["cost_total"]) for r in top["others"]["rows"]] == [
        sum(D(r["cost_total"]) for r in every["rows"]) - D(largest["cost_total"])]


async def test_csv_export_has_the_rows_of_the_json_query(world: World) -> None:
    params = {**NOV, "granularity": "day", "group_by": "user,model"}
    async with world.client(world.a_read) as client:
        rows = (await client.get("/v1/usage", params={**params, "limit": 500})).json()["rows"]
        resp = await client.get("/v1/usage.csv", params=params)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    exported = _csv(resp.text)
    assert [r["bucket"] for r in exported] == [r["bucket"] for r in rows]
    assert [r["cost_total"] for r in exported] == [r["cost_total"] for r in rows]
    assert [r["user_id"] for r in exported] == [r["user_id"] or "" for r in rows]
    assert list(exported[0]) [:3] == ["bucket", "user_id", "model"]


async def test_users_are_shown_as_pseudonyms_and_filtered_by_the_apps_own_user_id(world: World) -> None:
    user = "alpha-user-1"  # days 3 and 5 of tenant A's events
    mine = pseudonym(world.a, user, DEV_PSEUDONYM_KEY)
    async with world.client(world.a_read) as client:
        grouped = (await client.get("/v1/usage", params={**NOV, "granularity": "month", "group_by": "user"})).json()
        filtered = await client.get("/v1/usage", params={**NOV, "granularity": "day", "user_id": user})
        by_pseudonym = await client.get("/v1/usage", params={**NOV, "granularity": "day", "user_id": mine})
        exported = await client.get("/v1/usage.csv", params={**NOV, "group_by": "user", "user_id": user})
        other_tenants = await client.get("/v1/usage", params={**NOV, "user_id": f"{SECRET}-user-1"})
    assert {r["user_id"] for r in grouped["rows"]} == {mine, pseudonym(world.a, "alpha-user-0", DEV_PSEUDONYM_KEY),
                                                       None}
    assert filtered.status_code == 200, filtered.text
    assert filtered.json()["source"] == "daily_users"
    assert [(r["bucket"][:10], r["event_count"]) for r in filtered.json()["rows"]] == [
        ("2026-11-03", 6), ("2026-11-05", 6)]
    assert by_pseudonym.json()["rows"] == filtered.json()["rows"]
    assert {r["user_id"] for r in _csv(exported.text)} == {mine} and user not in exported.text
    assert other_tenants.status_code == 200 and other_tenants.json()["rows"] == []
    stored = await world.pool.fetch("SELECT DISTINCT user_id FROM usage_ledger WHERE tenant_id = $1", world.a)
    assert {r["user_id"] for r in stored} == {mine, pseudonym(world.a, "alpha-user-0", DEV_PSEUDONYM_KEY), None}


# -- summary and statement --------------------------------------------------------------------------


async def test_summary_totals_and_top_lists(world: World) -> None:
    async with world.client(world.a_read) as client:
        resp = await client.get("/v1/summary", params=NOV)
    body = resp.json()
    assert resp.status_code == 200, resp.text
    ledger = await world.pool.fetchrow(
        "SELECT count(*) AS n, sum(cost_total) AS c FROM usage_ledger WHERE tenant_id = $1", world.a)
    assert body["totals"]["event_count"] == ledger["n"] and D(body["totals"]["cost_total"]) == ledger["c"]
    assert body["totals"]["unpriced_count"] == 1
    shown = D(body["cost_total_display"])  # for people: never 0 for a real cost, within half a percent
    assert shown > 0 and abs(shown - ledger["c"]) / ledger["c"] < D("0.005")
    assert len(body["cost_total_display"].lstrip("0.")) >= 3
    assert {m["model"] for m in body["top_models"]} == {"gpt-4o-mini", "claude-3-5-haiku-20241022",
                                                         "alpha-unknown-model"}
    assert all(b["app_id"] != f"{SECRET}-app-0" for b in body["budgets"])  # B's budget is not there


async def test_the_statement_adds_up_line_by_line_to_the_ledger(world: World) -> None:
    async with world.client(world.a_read) as client:
        resp = await client.get("/v1/statements/2026-11")
        empty = await client.get("/v1/statements/2026-02")
        bad = await client.get("/v1/statements/2026-13")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    total = D(0)
    for item in body["items"]:
        assert D(item["quantity"]) * D(item["unit_price"]) == D(item["amount"])
        total += D(item["amount"])
    ledger = await world.pool.fetchval("SELECT sum(cost_total) FROM usage_ledger WHERE tenant_id = $1", world.a)
    assert total == D(body["total"]) == D(body["ledger_total"]) == ledger
    assert {(i["model"], i["line"]) for i in body["items"]} >= {("gpt-4o-mini", "input"), ("gpt-4o-mini", "cache_read"),
                                                                ("gpt-4o-mini", "output"),
                                                                ("claude-3-5-haiku-20241022", "reasoning")}
    assert body["unpriced"] == [{"provider": "acme", "model": "alpha-unknown-model", "reason": "unknown_model",
                                 "events": 1, "input_tokens": 9, "output_tokens": 9}]
    assert body["status"] == "open" and body["events"] == 19
    assert empty.status_code == 200 and empty.json()["items"] == [] and empty.json()["total"] == "0"
    assert empty.json()["total_rounded"] == "0.00" and len(body["total_rounded"].rpartition(".")[2]) == 2
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["path", "month"]


# -- budgets ---------------------------------------------------------------------------------------


async def test_budgets_are_read_with_billing_read_and_managed_with_admin(world: World) -> None:
    async with world.client(world.a_read) as reader, world.client(world.a_admin) as admin:
        denied = await reader.post("/v1/budgets", json={"period": "month", "amount": "10"})
        assert denied.status_code == 403
        created = await admin.post("/v1/budgets", json={"period": "day", "amount": "25.50", "app_id": "alpha-app-1",
                                                        "thresholds": [100, 50, 90], "name": "daily alpha"})
        assert created.status_code == 201, created.text
        budget = created.json()
        assert budget["thresholds"] == [50, 90, 100] and budget["amount"] == "25.5"
        assert budget["current_period"]["state"] == "ok"
        again = await admin.post("/v1/budgets", json={"period": "day", "amount": "1", "app_id": "alpha-app-1"})
        assert again.status_code == 409
        for bad, field in (({"period": "week", "amount": "1"}, "period"), ({"period": "day", "amount": 1.5}, "amount"),
                           ({"period": "day", "amount": "-1"}, "amount"),
                           ({"period": "day", "amount": "1", "thresholds": [0]}, "thresholds")):
            resp = await admin.post("/v1/budgets", json=bad)
            assert resp.status_code == 422 and resp.json()["errors"][0]["loc"][:2] == ["body", field], resp.text
        listed = (await reader.get("/v1/budgets")).json()["budgets"]
        assert budget["id"] in [b["id"] for b in listed] and world.b_budget_id not in [b["id"] for b in listed]
        changed = await admin.put(f"/v1/budgets/{budget['id']}", json={"amount": "30", "enforcement": "hard"})
        assert changed.status_code == 200
        assert (changed.json()["amount"], changed.json()["enforcement"]) == ("30", "hard")
        assert (await reader.get(f"/v1/budgets/{budget['id']}")).json()["name"] == "daily alpha"
        assert (await admin.delete(f"/v1/budgets/{budget['id']}")).status_code == 204
        assert (await admin.delete(f"/v1/budgets/{budget['id']}")).status_code == 404
        assert budget["id"] not in [b["id"] for b in (await reader.get("/v1/budgets")).json()["budgets"]]
        archived = (await reader.get("/v1/budgets", params={"include_archived": "true"})).json()["budgets"]
        assert next(b for b in archived if b["id"] == budget["id"])["archived_at"] is not None


# -- prices ----------------------------------------------------------------------------------------


async def test_prices_are_listed_quoted_and_added(world: World) -> None:
    async with world.client(world.a_read) as reader, world.client(world.a_admin) as admin:
        page = (await reader.get("/v1/prices", params={"limit": 50})).json()
        assert len(page["prices"]) == 50 and page["next_cursor"]
        listed = []
        cursor = None
        while True:
            resp = (await reader.get("/v1/prices", params={"limit": 200, **({"cursor": cursor} if cursor else {})}))
            listed += resp.json()["prices"]
            cursor = resp.json()["next_cursor"]
            if not cursor:
                break
        assert len(listed) >= len(builtin_catalogue())
        mini = (await reader.get("/v1/prices", params={"model": "gpt-4o-mini", "provider": "openai"})).json()["prices"]
        assert [p["input_per_token"] for p in mini] == ["0.00000015"]

        quoted = await reader.get("/v1/prices/quote", params={"model": "openai/gpt-4o-mini-2024-07-18"})
        assert quoted.status_code == 200 and quoted.json()["override"] == "none"
        assert (await reader.get("/v1/prices/quote", params={"model": "nobody-knows"})).status_code == 404

        denied = await reader.post("/v1/prices", json={})
        assert denied.status_code == 403
        body = {"model": "alpha-special", "provider": "openai", "effective_from": "2026-01-01T00:00:00Z",
                "input_per_token": "0.000001", "output_per_token": "0.000003",
                "tiers": [{"above_input_tokens": 200000, "input_per_token": "0.000002"}]}
        created = await admin.post("/v1/prices", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["tenant_id"] == world.a and "reprice" in created.json()["note"]
        assert (await admin.post("/v1/prices", json=body)).status_code == 409
        quote = (await reader.get("/v1/prices/quote", params={"model": "alpha-special", "provider": "openai"})).json()
        assert quote["override"] == "tenant_price" and quote["price"]["input_per_token"] == "0.000001"
        floaty = await admin.post("/v1/prices", json={**body, "input_per_token": 0.000001})
        assert floaty.status_code == 422 and floaty.json()["errors"][0]["loc"] == ["body", "input_per_token"]
        too_fine = await admin.post("/v1/prices", json={**body, "effective_from": "2026-02-01T00:00:00Z",
                                                        "input_per_token": "0.000000000000000000001"})
        assert too_fine.status_code == 422 and too_fine.json()["errors"][0]["loc"] == ["body", "input_per_token"]

        discount = await admin.post("/v1/prices/discounts", json={"percent": "10", "model": "gpt-4o-mini",
                                                                  "effective_from": "2026-01-01T00:00:00Z"})
        assert discount.status_code == 201, discount.text
        bad = await admin.post("/v1/prices/discounts",
                               json={"percent": "150", "effective_from": "2026-01-01T00:00:00Z"})
        assert bad.status_code == 422
        listed_discounts = (await reader.get("/v1/prices/discounts")).json()["discounts"]
        assert "gpt-4o-mini" in [d["model_key"] for d in listed_discounts]
        discounted = (await reader.get("/v1/prices/quote", params={"model": "gpt-4o-mini"})).json()
        assert discounted["override"] == "discount" and discounted["price"]["input_per_token"] == "0.000000135"


# -- auth and tenant isolation ------------------------------------------------------------------------


USAGE_RANGE = f"from={NOV['from']}&to={NOV['to']}"
# (method, path, which of tenant A's keys, body) for every endpoint; `{b_budget}` is tenant B's budget id.
ISOLATION_CASES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("GET", f"/v1/usage?{USAGE_RANGE}&group_by=app,model,prompt,user,tag", "a_read", None),
    ("GET", f"/v1/usage?{USAGE_RANGE}&granularity=hour&group_by=app,model", "a_read", None),
    ("GET", f"/v1/usage?{USAGE_RANGE}&app_id={SECRET}-app-0", "a_read", None),
    ("GET", f"/v1/usage.csv?{USAGE_RANGE}&group_by=user,tag", "a_read", None),
    ("GET", f"/v1/summary?{USAGE_RANGE}", "a_read", None),
    ("GET", "/v1/statements/2026-11", "a_read", None),
    ("GET", "/v1/unpriced-models", "a_read", None),
    ("GET", "/v1/budgets?include_archived=true", "a_read", None),
    ("GET", "/v1/budgets/{b_budget}", "a_read", None),
    ("PUT", "/v1/budgets/{b_budget}", "a_admin", {"amount": "1"}),
    ("DELETE", "/v1/budgets/{b_budget}", "a_admin", None),
    ("POST", "/v1/budgets", "a_admin", {"period": "month", "amount": "3", "app_id": "alpha-iso"}),
    ("GET", "/v1/prices?limit=500", "a_read", None),
    ("GET", f"/v1/prices?model={SECRET}-model", "a_read", None),
    ("GET", f"/v1/prices/quote?model={SECRET}-model&provider=openai", "a_read", None),
    ("GET", "/v1/prices/quote?model=gpt-4o&provider=openai", "a_read", None),
    ("GET", "/v1/prices/discounts", "a_read", None),
    ("POST", "/v1/prices", "a_admin", {"model": "alpha-iso-model", "provider": "openai",
                                       "effective_from": "2026-03-01T00:00:00Z", "input_per_token": "0.1",
                                       "output_per_token": "0.1"}),
    ("POST", "/v1/prices/discounts", "a_admin", {"percent": "5", "provider": "anthropic",
                                                 "effective_from": "2026-03-01T00:00:00Z"}),
]


def _routes() -> set[tuple[str, str]]:
    """(path, method) of every route of the app, the routers' included (`iter_route_contexts` walks them)."""
    return {(r.path, m) for r in iter_route_contexts(create_app(BillingSettings()).routes) for m in r.methods or ()}


def _route_of(method: str, path: str) -> tuple[str, str]:
    return next((p, m) for p, m in _routes() if m == method and _matches(p, path.split("?", maxsplit=1)[0]))


def test_every_endpoint_has_an_isolation_case() -> None:
    routes = {(p, m) for p, m in _routes() if p.startswith("/v1/")}
    covered = {_route_of(method, path) for method, path, _key, _body in ISOLATION_CASES}
    assert covered == routes, routes - covered


@pytest.mark.parametrize(("method", "path", "key", "body"), ISOLATION_CASES,
                         ids=[f"{m} {p.split('?')[0]}" for m, p, _k, _b in ISOLATION_CASES])
async def test_a_key_of_tenant_a_gets_nothing_of_tenant_b(world: World, method: str, path: str, key: str,
                                                          body: dict[str, Any] | None) -> None:
    b_before = await world.pool.fetch("SELECT * FROM budgets WHERE tenant_id = $1 ORDER BY id", world.b)
    b_prices = await world.pool.fetch("SELECT price_version FROM model_prices WHERE tenant_id = $1", world.b)
    async with world.client(getattr(world, key)) as client:
        resp = await client.request(method, path.format(b_budget=world.b_budget_id), json=body)
    assert resp.status_code in (200, 201, 404), resp.text
    assert SECRET not in resp.text, resp.text[:500]
    assert world.b not in resp.text
    if "{b_budget}" in path:
        assert resp.status_code == 404
    # Nothing of B's changed, and B still sees its own data.
    assert await world.pool.fetch("SELECT * FROM budgets WHERE tenant_id = $1 ORDER BY id", world.b) == b_before
    assert await world.pool.fetch("SELECT price_version FROM model_prices WHERE tenant_id = $1", world.b) == b_prices
    async with world.client(world.b_read) as client:
        quote = (await client.get("/v1/prices/quote", params={"model": f"{SECRET}-model", "provider": "openai"})).json()
        assert quote["price"]["tenant_id"] == world.b and quote["price"]["input_per_token"] == "0.001"
        b_usage = (await client.get("/v1/usage", params={**NOV, "group_by": "app"})).json()["rows"]
        assert b_usage and all(r["app_id"].startswith(SECRET) for r in b_usage)


def _matches(template: str, path: str) -> bool:
    parts, wanted = template.strip("/").split("/"), path.strip("/").split("/")
    return len(parts) == len(wanted) and all(p.startswith("{") or p == w for p, w in zip(parts, wanted, strict=True))


def _response_model(method: str, path: str) -> type[BaseModel]:
    template, _ = _route_of(method, path)
    route = next(r for r in iter_route_contexts(create_app(BillingSettings()).routes)
                 if r.path == template and method in (r.methods or ()))
    model = route.original_route.response_model
    assert isinstance(model, type) and issubclass(model, BaseModel), (method, path)
    return model


SHAPE_CASES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", f"/v1/usage?{USAGE_RANGE}&group_by=app,model,prompt,user,tag", None),
    ("GET", f"/v1/usage?{USAGE_RANGE}&granularity=hour&group_by=model&limit=3", None),
    ("GET", f"/v1/usage?{USAGE_RANGE}&granularity=month", None),
    ("GET", f"/v1/summary?{USAGE_RANGE}", None),
    ("GET", "/v1/statements/2026-11", None),
    ("GET", "/v1/unpriced-models", None),
    ("GET", "/v1/budgets?include_archived=true", None),
    ("POST", "/v1/budgets", {"period": "month", "amount": "0.0001", "app_id": "alpha-shape", "thresholds": [50]}),
    ("PUT", "/v1/budgets/{created}", {"name": "shape", "enforcement": "hard"}),
    ("GET", "/v1/budgets/{created}", None),
    ("GET", "/v1/prices?limit=20", None),
    ("GET", "/v1/prices/quote?model=gpt-4o-mini&provider=openai", None),
    ("GET", "/v1/prices/discounts", None),
    ("POST", "/v1/prices", {"model": "alpha-shape-model", "effective_from": "2027-01-01T00:00:00Z",
                            "input_per_token": "0.1", "output_per_token": "0.2",
                            "tiers": [{"above_input_tokens": 10, "input_per_token": "0.3"}]}),
    ("POST", "/v1/prices/discounts", {"percent": "7.5", "model": "alpha-shape-model",
                                      "effective_from": "2027-01-01T00:00:00Z"}),
]


async def test_every_answer_has_the_shape_its_route_declares(world: World) -> None:
    """Each answer validates against its route's response model, and the model, dumped again, gives the
    answer back: no field undeclared, none missing (the usage page and summary are not validated by FastAPI
    at run time, so this is what keeps their models true)."""
    created: int | None = None
    async with world.client(world.a_admin) as client:
        for method, path, body in SHAPE_CASES:
            resp = await client.request(method, path.format(created=created), json=body)
            assert resp.status_code in (200, 201), (method, path, resp.text)
            model = _response_model(method, path.format(created=created or 1))
            answer = resp.json()
            parsed = model.model_validate(answer)
            assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == answer, (method, path)
            if method == "POST" and path == "/v1/budgets":
                created = answer["id"]
    assert created is not None


async def test_keys_are_required_and_scoped(world: World) -> None:
    async with world.client(None) as anonymous, world.client(world.a_ingest) as ingest_key, \
            world.client(world.a_read) as reader:
        assert (await anonymous.get("/v1/usage")).status_code == 401
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/readyz")).json()["status"] == "ready"
        assert (await ingest_key.get("/v1/summary")).status_code == 403
        assert (await reader.delete("/v1/budgets/1")).status_code == 403
        assert (await reader.post("/v1/prices/discounts", json={})).status_code == 403
