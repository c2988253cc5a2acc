"""The costs page's chart draws the table's first groups: billing ranks the month once per page (for the table),
and the chart reads only those groups' days and the others' (billing's `only`). With ties across the chart's
cut and a group of no user and no tag, the chart's series are still the table's first rows, and every number
on the page is the ledger's: per group, per group and day, and the others per day. By app, user and tag."""

from __future__ import annotations

import html
import json
import re
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

from llmops_billing.builtin_prices import builtin_catalogue
from llmops_billing.ledger import ledger_row
from llmops_billing.store.ledger import write_batch
from llmops_shared import apikeys
from llmops_shared.clock import fixed
from llmops_shared.contract import Interaction
from llmops_shared.settings import CommonSettings
from tests.support.events import make_event
from tests.support.servers import serve

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
# Thousands of input tokens per event; each group has two events (3 and 10 November). The groups of the
# 7th to 9th largest cost tie (same tokens, same model): the chart's cut (8 series) falls inside the tie.
# One event of app q has no user and no tag and costs as much as they: by user and by tag, the group ''
# ("(none)" on the page) ties with them too, and billing ranks it first of the tie; tags start with "#",
# which sorts before "(" (a page that ordered ties by the label "(none)" would disagree with billing).
GROUPS = {"q": 90, "w": 80, "e": 70, "r": 60, "t": 50, "y": 40, "z": 30, "b": 30, "m": 30, "o": 20, "p": 10,
          "a": 5}
NONE_TOKENS = 2 * GROUPS["z"]  # one event of app q without a user and without a tag, two tied groups' events


@dataclass
class Seeded:
    url: str
    key: str
    tenant: str
    database_url: str


def _events(tenant: str) -> list[dict[str, Any]]:
    out = [{**make_event(occurred_at=f"2026-11-{day:02d}T0{day % 7}:15:00Z", app_id=f"app-{name}",
                         user_id=f"user-{name}", tags=[f"#{name}"], model="gpt-4o-mini", provider="openai",
                         usage={"input_tokens": tokens * 1000, "output_tokens": 100}), "tenant_id": tenant}
           for name, tokens in GROUPS.items() for day in (3, 10)]
    out.append({**make_event(occurred_at="2026-11-05T09:00:00Z", app_id="app-q", tags=[], model="gpt-4o-mini",
                             provider="openai", usage={"input_tokens": NONE_TOKENS * 1000, "output_tokens": 200}),
                "tenant_id": tenant})
    out[-1].pop("user_id", None)
    return out


@pytest_asyncio.fixture(scope="module")
async def seeded(stack: CommonSettings, pg_pool: asyncpg.Pool) -> AsyncIterator[Seeded]:
    from llmops_console.api import create_app
    from llmops_console.settings import ConsoleSettings

    tenant = f"cc-{uuid.uuid4().hex[:8]}"
    rows = [ledger_row(Interaction.model_validate(e), builtin_catalogue(), priced_at=NOW) for e in _events(tenant)]
    async with pg_pool.acquire() as conn, conn.transaction():
        await write_batch(conn, rows=[r for r in rows if r is not None], now=NOW)
    key = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["billing:read"])).secret
    app = create_app(ConsoleSettings(**{**stack.model_dump(), "requests_per_s": None}), clock=fixed(NOW))
    with serve(app) as url:
        yield Seeded(url, key, tenant, stack.database_url)


async def _ledger(database_url: str, tenant: str, group: str) -> dict[tuple[str, str], Decimal]:
    """The ledger's cost per (stored group value, day) in November: '' for no user or no tag."""
    value = {"app": "l.app_id", "user": "coalesce(l.user_id, '')", "tag": "coalesce(t.tag, '')"}[group]
    tags = " LEFT JOIN LATERAL unnest(l.tags) AS t(tag) ON true" if group == "tag" else ""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            f"SELECT {value} AS g, to_char(l.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, "  # noqa: S608
            f"sum(l.cost_total) AS c FROM usage_ledger l{tags} WHERE l.tenant_id = $1 AND l.occurred_at >= $2 "
            "GROUP BY 1, 2", tenant, datetime(2026, 11, 1, tzinfo=UTC))
    finally:
        await conn.close()
    return {(r["g"], r["day"]): r["c"] for r in rows}


async def _page(seeded: Seeded, path: str) -> str:
    async with httpx.AsyncClient(base_url=seeded.url, timeout=30) as client:
        form = (await client.get("/login")).text
        token = form.split('name="csrf_token" value="')[1].split('"')[0]
        assert (await client.post("/login", data={"csrf_token": token, "api_key": seeded.key})).status_code == 303
        answer = await client.get(path)
        assert answer.status_code == 200, answer.text
        return answer.text


@pytest.mark.parametrize("group", ["app", "user", "tag"])
async def test_the_chart_draws_the_tables_first_groups_from_one_ranking(seeded: Seeded, group: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_console.routes import costs

    asked: list[Any] = []  # the queries the page asks billing
    usage_page = costs.usage.usage_page

    async def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        asked.append(kwargs["query"])
        return await usage_page(*args, **kwargs)

    monkeypatch.setattr(costs.usage, "usage_page", counted)
    text = await _page(seeded, f"/costs?group={group}")
    monkeypatch.undo()
    assert [q.top for q in asked if q.top is not None] == [costs.TABLE_ROWS]  # the month ranked once, for the table
    assert len(asked) == 2 and asked[1].only is not None and len(asked[1].only) == costs.CHART_SERIES

    ledger = await _ledger(seeded.database_url, seeded.tenant, group)
    per_group: dict[str, Decimal] = {}
    for (name, _), cost in ledger.items():
        per_group[name] = per_group.get(name, Decimal(0)) + cost
    label = {name: name or "(none)" for name in per_group}
    ranked = sorted(per_group, key=lambda n: (-per_group[n], n))  # billing's order: cost, then the stored value

    table = re.search(r'<table id="costs-table">.*?<tbody>(.*?)</tbody>', text, re.S)
    assert table is not None
    shown = [(html.unescape(name), float(cost)) for name, cost in
             re.findall(r'<tr><td>([^<]*)</td><td class="num">([0-9.]+)</td>', table.group(1))]
    assert shown == [(label[n], pytest.approx(float(per_group[n]), abs=1e-4)) for n in ranked]
    tie = [n for n in ranked if per_group[n] == per_group[ranked[costs.CHART_SERIES - 1]]]
    assert len(tie) == (3 if group == "app" else 4) and ("" in tie or group == "app")
    assert ranked.index(tie[0]) < costs.CHART_SERIES <= ranked.index(tie[-1])  # the chart's cut falls in the tie

    data = re.search(r'<script type="application/json" id="costs-data">(.*?)</script>', text, re.S)
    assert data is not None
    chart = json.loads(html.unescape(data.group(1)))
    first = [label[n] for n in ranked[:costs.CHART_SERIES]]
    assert sorted(chart["labels"]) == sorted([*first, "(others)"])  # the table's first rows, then the rest
    days = [datetime.fromtimestamp(x, UTC).strftime("%Y-%m-%d") for x in chart["data"][0]]
    drawn = {(name, day): value for name, series in zip(chart["labels"], chart["data"][1:], strict=True)
             for day, value in zip(days, series, strict=True) if value is not None}
    expected: dict[tuple[str, str], float] = {}
    for (name, day), cost in ledger.items():
        key = (label[name] if label[name] in first else "(others)", day)
        expected[key] = expected.get(key, 0.0) + float(cost)
    assert drawn == {k: pytest.approx(v, abs=1e-9) for k, v in expected.items()}
