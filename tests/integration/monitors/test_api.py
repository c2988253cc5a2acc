"""The monitors API on the real Postgres and Redis: define, read, replace, delete; bad definitions answer 422
naming the field; every endpoint sees the calling key's tenant only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from llmops_monitors.api import create_app
from llmops_monitors.settings import MonitorsSettings
from llmops_shared import apikeys
from llmops_shared.settings import CommonSettings
from tests.support.servers import serve

pytestmark = pytest.mark.integration

GOOD = {"name": "errors", "metric": "error_rate", "window": "5m/1m", "condition": {"op": ">", "threshold": 0.1},
        "group_by": ["model"], "min_samples": 20, "severity": "critical"}


@dataclass
class World:
    url: str
    a: str
    b: str
    keys: dict[str, str]
    b_channel: int
    a_channel: int

    def client(self, who: str | None) -> httpx.AsyncClient:
        headers = {} if who is None else {"Authorization": f"Bearer {self.keys[who]}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@pytest_asyncio.fixture(scope="module")
async def world(stack: CommonSettings, pg_pool: asyncpg.Pool) -> AsyncIterator[World]:
    a, b = f"ta-{uuid.uuid4().hex[:8]}", f"tb-{uuid.uuid4().hex[:8]}"
    keys = {}
    for tenant, name in ((a, "a"), (b, "b")):
        keys[f"{name}_admin"] = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["admin"])).secret
        keys[f"{name}_read"] = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["alerts:read"])).secret
    keys["a_ingest"] = (await apikeys.create_key(pg_pool, tenant_id=a, scopes=["ingest:write"])).secret
    channel = "INSERT INTO notification_channels (tenant_id, name, kind, url) VALUES ($1, 'pager', 'webhook', " \
              "'https://example.com/hook') RETURNING channel_id"
    a_channel, b_channel = await pg_pool.fetchval(channel, a), await pg_pool.fetchval(channel, b)
    settings = MonitorsSettings(**stack.model_dump(), max_monitors_per_tenant=3)
    with serve(create_app(settings)) as url:
        yield World(url, a, b, keys, b_channel=b_channel, a_channel=a_channel)


async def test_define_read_replace_delete(world: World) -> None:
    async with world.client("a_admin") as admin, world.client("a_read") as reader:
        created = await admin.post("/v1/monitors", json={**GOOD, "channels": [world.a_channel]})
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["metric"], body["aggregation"], body["window"], body["channels"]) == (
            "error_rate", "ratio", "5m/1m", [world.a_channel])
        monitor_id = body["monitor_id"]
        assert (await reader.get(f"/v1/monitors/{monitor_id}")).json()["name"] == "errors"
        assert [m["monitor_id"] for m in (await reader.get("/v1/monitors")).json()["monitors"]] == [monitor_id]
        assert (await admin.post("/v1/monitors", json=GOOD)).status_code == 409  # the name is taken
        replaced = await admin.put(f"/v1/monitors/{monitor_id}", json={**GOOD, "metric": "latency_p99",
                                                                       "condition": {"op": ">", "threshold": 900}})
        assert (replaced.json()["metric"], replaced.json()["aggregation"]) == ("latency", "p99")
        assert (await reader.get(f"/v1/monitors/{monitor_id}/firings")).json() == {"firings": []}
        assert (await reader.post("/v1/monitors", json={**GOOD, "name": "x"})).status_code == 403  # read only
        assert (await admin.delete(f"/v1/monitors/{monitor_id}")).status_code == 204
        assert (await reader.get(f"/v1/monitors/{monitor_id}")).status_code == 404


@pytest.mark.parametrize(("change", "loc"), [
    ({"metric": "colour"}, ["body", "metric"]),
    ({"window": "7m"}, ["body", "window"]),
    ({"window": "1m/5m"}, ["body", "window"]),
    ({"condition": {"op": ">", "threshold": "high"}}, ["body", "condition", "threshold"]),
    ({"metric": "cost", "aggregation": "p95"}, ["body", "aggregation"]),
    ({"min_samples": -1}, ["body", "min_samples"]),
    ({"severity": "apocalyptic"}, ["body", "severity"]),
])
async def test_a_bad_definition_is_a_422_naming_the_field(world: World, change: dict[str, Any],
                                                          loc: list[str]) -> None:
    async with world.client("a_admin") as admin:
        answer = await admin.post("/v1/monitors", json={**GOOD, "name": f"bad-{uuid.uuid4().hex[:6]}", **change})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert any(e["loc"][:len(loc)] == loc for e in answer.json()["errors"]), answer.json()


async def test_tenants_see_and_change_only_their_own(world: World) -> None:
    async with world.client("b_admin") as b_admin, world.client("a_admin") as a_admin, \
            world.client("a_read") as a_read:
        theirs = (await b_admin.post("/v1/monitors", json={**GOOD, "name": "b-secret-monitor"})).json()["monitor_id"]
        for answer in (await a_read.get(f"/v1/monitors/{theirs}"), await a_read.get(f"/v1/monitors/{theirs}/firings"),
                       await a_admin.put(f"/v1/monitors/{theirs}", json=GOOD),
                       await a_admin.delete(f"/v1/monitors/{theirs}")):
            assert answer.status_code == 404
        assert "b-secret-monitor" not in (await a_read.get("/v1/monitors")).text
        # another tenant's channel is not a channel of this tenant
        answer = await a_admin.post("/v1/monitors", json={**GOOD, "name": "steal", "channels": [world.b_channel]})
        assert answer.status_code == 422 and answer.json()["errors"][0]["loc"] == ["body", "channels"]
        assert (await b_admin.get(f"/v1/monitors/{theirs}")).status_code == 200


async def test_keys_and_limits(world: World) -> None:
    async with world.client(None) as anonymous, world.client("a_ingest") as ingest, \
            world.client("b_admin") as b_admin:
        assert (await anonymous.get("/v1/monitors")).status_code == 401
        assert (await ingest.get("/v1/monitors")).status_code == 403
        answers = [await b_admin.post("/v1/monitors", json={**GOOD, "name": f"n{i}"}) for i in range(4)]
        assert answers[-1].status_code == 409  # 3 per tenant here (b has one already)
        # the body cap: tests/unit/test_api_conventions.py checks it on every API, this one included
