"""The traces API on the real Postgres and Redis: every endpoint, its bad input, tenant isolation, erasure,
settings and retention at read time. Spans are stored by the worker's own write step; costs by billing's
code; findings, scores and feedback as their services store them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from llmops_shared import apikeys
from llmops_shared.clock import fixed
from llmops_shared.settings import CommonSettings
from llmops_traces import compaction
from llmops_traces.api import create_app
from llmops_traces.schemas import Metrics, MetricsPoint
from tests.integration.traces.traces_support import (
    NOW,
    add_finding,
    add_score,
    agent_trace,
    bill,
    span_event,
    store_directly,
    traces_settings,
)
from tests.support.servers import serve

pytestmark = pytest.mark.integration

SECRET = "zz-secret-b"  # every id of tenant B's data carries it; tenant A must never see it
RANGE = {"from": (NOW - timedelta(days=3)).isoformat(), "to": (NOW + timedelta(hours=1)).isoformat()}


@dataclass
class World:
    url: str
    a: str
    b: str
    keys: dict[str, str]
    a_agent: list[dict[str, Any]]
    a_singles: list[dict[str, Any]]
    b_agent: list[dict[str, Any]]
    pool: asyncpg.Pool

    def client(self, key: str | None) -> httpx.AsyncClient:
        headers = {} if key is None else {"Authorization": f"Bearer {self.keys[key]}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@pytest_asyncio.fixture
async def world(stack: CommonSettings, pg_pool: asyncpg.Pool) -> AsyncIterator[World]:
    a, b = f"ta-{uuid.uuid4().hex[:8]}", f"tb-{uuid.uuid4().hex[:8]}"
    keys = {}
    for tenant, name in ((a, "a"), (b, "b")):
        keys[f"{name}_read"] = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["traces:read"])).secret
        keys[f"{name}_admin"] = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["admin"])).secret
    keys["a_billing"] = (await apikeys.create_key(pg_pool, tenant_id=a, scopes=["billing:read"])).secret
    a_agent = agent_trace(a, at=NOW - timedelta(hours=1))
    a_singles = [
        span_event(a, at=NOW - timedelta(hours=2) + timedelta(minutes=i), latency_ms=latency, user_id=user,
                   session_id=session, tags=tags, **extra)
        for i, (latency, user, session, tags, extra) in enumerate((
            (100.0, "u-2", "s-2", ["vip"], {}),
            (500.0, "u-2", "s-2", ["vip", "beta"], {}),
            (900.0, None, None, [], {"status": "error", "error": {"type": "timeout", "message": "took too long"}}),
        ))]
    b_agent = agent_trace(b, at=NOW - timedelta(hours=1), user=f"{SECRET}-user", session=f"{SECRET}-session",
                          app=f"{SECRET}-app")
    everything = a_agent + a_singles + b_agent
    await store_directly(pg_pool, everything)
    await bill(pg_pool, everything)
    llm_a, llm_b = a_agent[3], b_agent[3]
    await add_finding(pg_pool, llm_a)
    await add_finding(pg_pool, llm_b, entity_type=f"{SECRET}-TYPE")
    await add_score(pg_pool, llm_a, 0.3, feedback=0.8)
    await add_score(pg_pool, llm_b, 0.1)
    settings = traces_settings(stack, api_page_max=100)
    with serve(create_app(settings, clock=fixed(NOW))) as url:
        yield World(url, a, b, keys, a_agent, a_singles, b_agent, pg_pool)


def _no_secret(payload: Any) -> None:
    assert SECRET not in str(payload)


# -- spans -------------------------------------------------------------------------------------------


async def test_spans_filter_sort_and_page_through_every_span_once(world: World) -> None:
    async with world.client("a_read") as client:
        seen: list[str] = []
        cursor = None
        while True:
            params = {**RANGE, "sort": "latency", "limit": "2", **({"cursor": cursor} if cursor else {})}
            resp = await client.get("/v1/spans", params=params)
            assert resp.status_code == 200, resp.text
            page = resp.json()
            seen += [s["event_id"] for s in page["items"]]
            latencies = [s["latency_ms"] for s in page["items"]]
            assert latencies == sorted(latencies, reverse=True)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(e["event_id"] for e in world.a_agent + world.a_singles)

        resp = await client.get("/v1/spans", params={**RANGE, "app": "support-bot", "tag": ["vip", "beta"]})
        assert [s["event_id"] for s in resp.json()["items"]] == [world.a_singles[1]["event_id"]]
        resp = await client.get("/v1/spans", params={**RANGE, "status": "error"})
        (span,) = resp.json()["items"]
        assert span["error_type"] == "timeout" and "input" not in span  # text only when asked for
        resp = await client.get("/v1/spans", params={**RANGE, "kind": "llm", "app": "agent-app", "fields": "usage,io"})
        (llm,) = resp.json()["items"]
        assert llm["input"] == "step llm asked about parcel 3" and Decimal(llm["cost_total"]) > 0
        assert "user_id" not in llm  # group `trace` not asked for
        for params, expected in ((({"has_findings": "true"}), 1), ({"score_below": "0.5"}, 1),
                                 ({"score_below": "0.2"}, 0), ({"latency_min": "600", "latency_max": "950"}, 5),
                                 ({"cost_min": "0.0001"}, 1), ({"cost_max": "0.0001"}, 3), ({"user": "u-2"}, 2),
                                 ({"session": "s-1"}, 5),
                                 ({"root": "true"}, 4), ({"name": "tool step"}, 1)):
            resp = await client.get("/v1/spans", params={**RANGE, **params})
            assert len(resp.json()["items"]) == expected, (params, resp.text)


async def test_text_search_finds_redacted_text_within_its_window(world: World) -> None:
    search = {"from": (NOW - timedelta(hours=6)).isoformat(), "to": NOW.isoformat()}
    async with world.client("a_read") as client:
        resp = await client.get("/v1/spans", params={**search, "q": "parcel 3"})
        assert [s["span_kind"] for s in resp.json()["items"]] == ["llm"]
        resp = await client.get("/v1/spans", params={**RANGE, "q": "parcel"})  # 3 days: too long for a search
        assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == ["query", "to"]


# -- traces ------------------------------------------------------------------------------------------


async def test_traces_are_one_row_each_with_their_sums(world: World) -> None:
    async with world.client("a_read") as client:
        resp = await client.get("/v1/traces", params={**RANGE, "user": "u-1"})
        assert resp.status_code == 200, resp.text
        (row,) = resp.json()["items"]
    assert row["trace_id"] == world.a_agent[0]["trace_id"] and row["span_count"] == 5
    assert row["root_name"] == "agent step" and row["app_id"] == "agent-app"
    assert row["finding_count"] == 1 and row["lowest_score"] == 0.3 and Decimal(row["cost_total"]) > 0
    assert row["duration_ms"] == pytest.approx(1000.0)
    assert (row["input_tokens"], row["output_tokens"], row["error_count"]) == (1000, 200, 0)

    async with world.client("a_read") as client:
        pages, cursor = [], None
        while True:
            resp = await client.get("/v1/traces", params={**RANGE, "sort": "cost", "limit": "1",
                                                           **({"cursor": cursor} if cursor else {})})
            pages += resp.json()["items"]
            cursor = resp.json()["next_cursor"]
            if cursor is None:
                break
    assert len(pages) == 4 and pages[0]["trace_id"] == world.a_agent[0]["trace_id"]


async def test_a_trace_reads_back_as_a_tree_with_costs_findings_scores_and_feedback(world: World) -> None:
    async with world.client("a_read") as client:
        resp = await client.get(f"/v1/traces/{world.a_agent[0]['trace_id']}")
    assert resp.status_code == 200, resp.text
    detail = resp.json()
    assert detail["span_count"] == 5 and detail["finding_count"] == 1 and detail["lowest_score"] == 0.3
    (node,) = detail["spans"]
    kinds = []
    while True:
        kinds.append(node["span_kind"])
        if not node["children"]:
            break
        (node,) = node["children"]
    assert kinds == ["agent", "chain", "retriever", "llm", "tool"]
    llm = detail["spans"][0]["children"][0]["children"][0]["children"][0]
    (line,) = llm["cost_lines"]
    assert Decimal(line["cost_total"]) == Decimal(llm["cost_total"]) > 0 and line["input_tokens"] == 1000
    assert llm["findings"] == [{"detector": "pii", "entity_type": "EMAIL", "rule_id": "pii-email", "part": "input",
                                "message_index": 1}]
    assert [s["score"] for s in llm["scores"]] == [0.3] and "reasoning" not in llm["scores"][0]
    assert [f["score"] for f in llm["feedback"]] == [0.8]
    assert "value_hash" not in resp.text and "input" not in llm


# -- sessions and users ------------------------------------------------------------------------------


async def test_sessions_and_user_summaries(world: World) -> None:
    async with world.client("a_read") as client:
        resp = await client.get("/v1/sessions", params=RANGE)
        rows = {r["session_id"]: r for r in resp.json()["items"]}
        assert set(rows) == {"s-1", "s-2"}
        assert (rows["s-1"]["trace_count"], rows["s-1"]["span_count"], rows["s-1"]["user_ids"]) == (1, 5, ["u-1"])
        assert rows["s-2"]["span_count"] == 2
        resp = await client.get("/v1/sessions/s-2")
        assert [t["span_count"] for t in resp.json()["traces"]] == [1, 1]
        resp = await client.get("/v1/users/u-2", params=RANGE)
        summary = resp.json()
        assert summary["span_count"] == 2 and [a["app_id"] for a in summary["apps"]] == ["support-bot"]


# -- metrics -----------------------------------------------------------------------------------------


async def test_metrics_by_hour_and_app_from_the_rollups(world: World) -> None:
    params = {"from": (NOW - timedelta(hours=3)).isoformat(), "to": NOW.isoformat(), "granularity": "hour",
              "group_by": "app"}
    async with world.client("a_read") as client:
        resp = await client.get("/v1/metrics", params=params)
        assert resp.status_code == 200, resp.text
        series = {s["group"]: s["points"] for s in resp.json()["series"]}
        minute = await client.get("/v1/metrics", params={**params, "granularity": "minute", "group_by": "model"})
        day = await client.get("/v1/metrics", params={"from": (NOW - timedelta(days=1)).isoformat(),
                                                       "to": NOW.isoformat(), "granularity": "day"})
    assert set(series) == {"agent-app", "support-bot"}
    (bot,) = series["support-bot"]
    assert (bot["requests"], bot["errors"], bot["error_rate"]) == (3, 1, pytest.approx(1 / 3))
    assert bot["latency_p50_ms"] == pytest.approx(500, rel=0.06)
    assert bot["latency_p99_ms"] == pytest.approx(900, rel=0.06)
    (agent,) = series["agent-app"]
    ledger = await world.pool.fetchval("SELECT sum(cost_total) FROM usage_ledger WHERE tenant_id = $1 AND app_id = $2",
                                       world.a, "agent-app")
    assert agent["requests"] == 5 and Decimal(agent["cost_total"]) == ledger
    assert sum(p["requests"] for s in minute.json()["series"] for p in s["points"]) == 8
    assert [p["requests"] for s in day.json()["series"] for p in s["points"]] == [8]


async def test_metrics_answers_have_the_shape_the_route_declares(world: World) -> None:
    """`GET /v1/metrics` renders its answer as it is (FastAPI does not validate it at run time): each answer
    validates against `Metrics` and dumps back to itself, its points' keys in the model's order; one app's
    series from its compacted day too."""
    await compaction.compact(world.pool, now=NOW + timedelta(days=1), tenant_id=world.a)
    assert await world.pool.fetchval("SELECT count(*) FROM trace_metrics_app_days WHERE tenant_id = $1", world.a)
    day = {"from": (NOW - timedelta(days=1)).isoformat(), "to": (NOW + timedelta(hours=1)).isoformat()}
    cases: list[dict[str, str]] = [
        {}, {"group_by": "model"}, {"group_by": "app"}, {"app": "support-bot"},
        {"app": "support-bot", "group_by": "model"}, {"app": "agent-app", "granularity": "day"},
        {"granularity": "minute", "group_by": "environment"}, {"granularity": "day", "group_by": "prompt_version"}]
    async with world.client("a_read") as client:
        for params in cases:
            resp = await client.get("/v1/metrics", params={**day, **params})
            assert resp.status_code == 200, (params, resp.text)
            answer = resp.json()
            assert Metrics.model_validate(answer).model_dump(mode="json", by_alias=True) == answer, params
            points = [p for s in answer["series"] for p in s["points"]]
            assert points and sum(p["requests"] for p in points) > 0, params
            assert all(list(p) == list(MetricsPoint.model_fields) for p in points), params
            assert list(answer) == ["from", "to", "granularity", "group_by", "histogram", "series"]


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/v1/spans", {"to": RANGE["to"]}, "from"),
    ("/v1/spans", {"from": RANGE["from"]}, "to"),
    ("/v1/spans", {"from": "2026-11-01T00:00:00", "to": RANGE["to"]}, "from"),
    ("/v1/spans", {"from": "2026-09-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
    ("/v1/spans", {**RANGE, "colour": "red"}, "colour"),
    ("/v1/spans", {**RANGE, "sort": "colour"}, "sort"),
    ("/v1/spans", {**RANGE, "cursor": "!!not-a-cursor"}, "cursor"),
    ("/v1/spans", {**RANGE, "status": "maybe"}, "status"),
    ("/v1/spans", {**RANGE, "latency_min": "fast"}, "latency_min"),
    ("/v1/spans", {**RANGE, "fields": "core,secrets"}, "fields"),
    ("/v1/spans", {**RANGE, "limit": "0"}, "limit"),
    ("/v1/traces", {**RANGE, "sort": "name"}, "sort"),
    ("/v1/traces", {"from": RANGE["from"]}, "to"),
    ("/v1/sessions", {**RANGE, "order": "sideways"}, "order"),
    ("/v1/users/u-1", {"from": RANGE["from"], "to": RANGE["to"], "app": "x"}, "app"),
    ("/v1/metrics", {**RANGE, "granularity": "minute"}, "to"),
    ("/v1/metrics", {**RANGE, "group_by": "user"}, "group_by"),
    ("/v1/traces/some-trace", {"fields": "nope"}, "fields"),
    ("/v1/spans", {**RANGE, "app": "bad\x00app"}, "app"),
    ("/v1/metrics", {**RANGE, "model": "bad\x00model"}, "model"),
])
async def test_bad_input_answers_422_naming_the_parameter(world: World, path: str, params: dict[str, str],
                                                          field: str) -> None:
    async with world.client("a_read") as client:
        resp = await client.get(path, params=params)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["errors"][0]["loc"] == ["query", field]


@pytest.mark.parametrize("path", ["/v1/traces/a%00b", "/v1/sessions/a%00b", "/v1/users/a%00b"])
async def test_an_id_with_a_control_character_is_refused_naming_it(world: World, path: str) -> None:
    async with world.client("a_admin") as client:
        resp = await client.get(path, params=RANGE if "users" in path else {})
        assert resp.status_code == 422 and resp.json()["errors"][0]["loc"][0] == "path", resp.text
        if "sessions" not in path:
            assert (await client.delete(path)).status_code == 422


async def test_a_cursor_of_another_query_or_tenant_is_refused(world: World) -> None:
    async with world.client("a_read") as client:
        first = await client.get("/v1/spans", params={**RANGE, "limit": "1"})
        cursor = first.json()["next_cursor"]
        resp = await client.get("/v1/spans", params={**RANGE, "limit": "1", "app": "agent-app", "cursor": cursor})
        assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == ["query", "cursor"]
    async with world.client("b_read") as client:
        resp = await client.get("/v1/spans", params={**RANGE, "limit": "1", "cursor": cursor})
        assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == ["query", "cursor"]


async def test_keys_need_the_scope(world: World) -> None:
    async with world.client("a_billing") as client:
        assert (await client.get("/v1/spans", params=RANGE)).status_code == 403
    async with world.client(None) as client:
        assert (await client.get("/v1/spans", params=RANGE)).status_code == 401
    async with world.client("a_read") as client:
        assert (await client.delete(f"/v1/traces/{world.a_agent[0]['trace_id']}")).status_code == 403
        assert (await client.put("/v1/settings", json={"metadata_only": True})).status_code == 403


# -- tenant isolation, every endpoint ----------------------------------------------------------------


async def test_tenant_a_sees_nothing_of_tenant_b_on_any_endpoint(world: World) -> None:
    b_trace, b_user, b_session = world.b_agent[0]["trace_id"], f"{SECRET}-user", f"{SECRET}-session"
    async with world.client("a_read") as client:
        for path, params in (("/v1/spans", {**RANGE, "fields": ",".join(("model", "usage", "prompt", "trace",
                                                                         "findings", "error", "io"))}),
                             ("/v1/traces", RANGE), ("/v1/sessions", RANGE),
                             ("/v1/metrics", {**RANGE, "group_by": "app"}),
                             ("/v1/spans", {**RANGE, "app": f"{SECRET}-app"}),
                             ("/v1/traces", {**RANGE, "user": b_user}),
                             ("/v1/sessions", {**RANGE, "session": b_session}),
                             ("/v1/metrics", {**RANGE, "app": f"{SECRET}-app"}), ("/v1/settings", {})):
            resp = await client.get(path, params=params)
            assert resp.status_code == 200, (path, resp.text)
            _no_secret(resp.json())
            if "app" in params or "user" in params or "session" in params:
                body = resp.json()
                assert body.get("items", body.get("series")) == [], path
        for path in (f"/v1/traces/{b_trace}", f"/v1/sessions/{b_session}"):
            resp = await client.get(path)
            assert resp.status_code == 404, path
            _no_secret(resp.json())
        resp = await client.get(f"/v1/users/{b_user}", params=RANGE)
        assert resp.status_code == 404
    async with world.client("a_admin") as client:
        assert (await client.delete(f"/v1/traces/{b_trace}")).status_code == 404
        resp = await client.delete(f"/v1/users/{b_user}")
        assert resp.status_code == 200 and resp.json()["removed"] == {"spans": 0}
        resp = await client.put("/v1/settings", json={"metadata_only": True, "retention_days": 1})
        assert resp.status_code == 200
    assert await world.pool.fetchval("SELECT count(*) FROM trace_spans WHERE tenant_id = $1", world.b) == 5
    async with world.client("b_read") as client:
        resp = await client.get(f"/v1/traces/{b_trace}")
        assert resp.status_code == 200 and resp.json()["span_count"] == 5
        settings = (await client.get("/v1/settings")).json()
        assert settings["metadata_only"] is False and settings["retention_days"] is None


# -- erasure, settings, retention at read time -------------------------------------------------------


async def test_erasing_a_trace_or_a_user_removes_their_spans_for_good(world: World) -> None:
    trace = world.a_agent[0]["trace_id"]
    async with world.client("a_admin") as client:
        resp = await client.delete(f"/v1/traces/{trace}")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["trace_id"] == trace and body["removed"] == {"spans": 5}
        assert any(k["store"] == "billing usage_ledger" for k in body["kept_elsewhere"])
        assert (await client.get(f"/v1/traces/{trace}")).status_code == 404
        assert (await client.delete(f"/v1/traces/{trace}")).status_code == 404
        await store_directly(world.pool, world.a_agent)  # a redelivery does not bring it back
        assert (await client.get(f"/v1/traces/{trace}")).status_code == 404

        resp = await client.delete("/v1/users/u-2")
        assert resp.json()["removed"] == {"spans": 2}
        await store_directly(world.pool, world.a_singles)
        resp = await client.get("/v1/spans", params={**RANGE, "user": "u-2"})
        assert resp.json()["items"] == []
        later = span_event(world.a, at=NOW + timedelta(minutes=1), user_id="u-2")  # after the erasure: stored
        await store_directly(world.pool, [later])
        resp = await client.get("/v1/spans", params={**RANGE, "user": "u-2"})
        assert [s["event_id"] for s in resp.json()["items"]] == [later["event_id"]]


async def test_settings_metadata_only_and_a_shorter_retention_hide_what_they_should(world: World) -> None:
    old = span_event(world.a, at=NOW - timedelta(days=2))
    await store_directly(world.pool, [old])
    async with world.client("a_admin") as client:
        assert len((await client.get("/v1/spans", params={**RANGE, "app": "support-bot"})).json()["items"]) == 4
        resp = await client.put("/v1/settings", json={"metadata_only": True, "retention_days": 1})
        assert resp.status_code == 200, resp.text
        assert resp.json()["effective_retention_days"] == 1
        resp = await client.get("/v1/spans", params={**RANGE, "app": "support-bot"})
        assert old["event_id"] not in [s["event_id"] for s in resp.json()["items"]]
        assert resp.json()["from"] == (NOW - timedelta(days=1)).isoformat().replace("+00:00", "Z")
        resp = await client.put("/v1/settings", json={"retention_days": 10_000})
        assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == ["body", "retention_days"]
        resp = await client.put("/v1/settings", json={"metadata_only": "yes please"})
        assert resp.status_code == 422
    fresh = span_event(world.a, at=NOW - timedelta(minutes=5), input="my secret words")
    await store_directly(world.pool, [fresh])
    row = await world.pool.fetchrow("SELECT input, text_stored FROM trace_spans WHERE event_id = $1::uuid",
                                    fresh["event_id"])
    assert (row["input"], row["text_stored"]) == (None, False)
