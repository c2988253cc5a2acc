"""The prompts API on the real Postgres and Redis: versions, labels and their history, diffs, rendering,
experiments, bad input, and tenant isolation on every endpoint."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from llmops_prompts.api import create_app
from llmops_prompts.assignment import assign
from llmops_prompts.settings import PromptsSettings
from llmops_shared import apikeys
from llmops_shared.settings import CommonSettings
from tests.support.servers import serve

pytestmark = pytest.mark.integration


def prompts_settings(stack: CommonSettings, **overrides: Any) -> PromptsSettings:
    # the report's warmer is off unless a test turns it on (it would warm other tests' running experiments)
    return PromptsSettings(**{**stack.model_dump(), "requests_per_s": None, "report_warmer": False, **overrides})


@dataclass
class World:
    url: str
    a: str
    b: str
    keys: dict[str, str]
    key_ids: dict[str, str]

    def client(self, key: str | None) -> httpx.AsyncClient:
        headers = {} if key is None else {"Authorization": f"Bearer {self.keys[key]}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def api_url(stack: CommonSettings) -> Iterator[str]:
    with serve(create_app(prompts_settings(stack))) as url:
        yield url


@pytest_asyncio.fixture
async def world(api_url: str, pg_pool: asyncpg.Pool) -> AsyncIterator[World]:
    a, b = f"pa-{uuid.uuid4().hex[:8]}", f"pb-{uuid.uuid4().hex[:8]}"
    keys, key_ids = {}, {}
    for tenant, name in ((a, "a"), (b, "b")):
        for scope in ("prompts:read", "prompts:write"):
            new = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=[scope])
            keys[f"{name}_{scope.split(':')[1]}"], key_ids[f"{name}_{scope.split(':')[1]}"] = new.secret, new.key_id
    new = await apikeys.create_key(pg_pool, tenant_id=a, scopes=["traces:read"])
    keys["a_traces"] = new.secret
    yield World(api_url, a, b, keys, key_ids)


TEXT = {"name": "support-answer", "type": "text", "template": "Answer {{ customer }} briefly: {{question}}",
        "config": {"model": "gpt-4o-mini", "temperature": 0.2}, "commit_message": "first"}


async def _push(world: World, key: str = "a_write", **changes: Any) -> httpx.Response:
    async with world.client(key) as c:
        return await c.post("/v1/prompts", json={**TEXT, **changes})


async def test_versions_are_numbered_in_turn_and_unchanged_content_makes_none(world: World) -> None:
    first = await _push(world, labels=["production"])
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["version"], body["created"], body["variables"]) == (1, True, ["customer", "question"])
    assert body["author"] == world.key_ids["a_write"] and body["labels"] == ["latest", "production"]
    again = await _push(world, config={"temperature": 0.2, "model": "gpt-4o-mini"})  # same content, keys reordered
    assert again.status_code == 200 and again.json()["version"] == 1 and again.json()["created"] is False
    second = await _push(world, template="Answer {{ customer }}: {{ question }} in {{ language }}",
                         commit_message="language")
    assert second.status_code == 201 and second.json()["version"] == 2
    async with world.client("a_read") as c:
        served = (await c.get("/v1/prompts/support-answer")).json()  # production by default
        assert (served["version"], served["experiment"]) == (1, None)
        assert (await c.get("/v1/prompts/support-answer", params={"label": "latest"})).json()["version"] == 2
        assert (await c.get("/v1/prompts/support-answer", params={"version": 2})).json()["commit_message"] == "language"
        versions = (await c.get("/v1/prompts/support-answer/versions")).json()["items"]
        assert [v["version"] for v in versions] == [2, 1]
        listed = (await c.get("/v1/prompts")).json()["items"]
        assert listed == [{"name": "support-answer", "type": "text", "latest_version": 2,
                           "labels": {"production": 1, "latest": 2}, "created_at": listed[0]["created_at"]}]


async def test_labels_move_with_an_audited_history_and_latest_cannot_be_set(world: World) -> None:
    await _push(world, labels=["production"])
    await _push(world, template="v2 {{ question }}")
    async with world.client("a_write") as c:
        moved = await c.put("/v1/prompts/support-answer/labels/production", json={"version": 2})
        assert moved.json() == {"name": "support-answer", "label": "production", "version": 2}
        await c.put("/v1/prompts/support-answer/labels/staging", json={"version": 1})
        await c.put("/v1/prompts/support-answer/labels/staging", json={"version": None})
        latest = await c.put("/v1/prompts/support-answer/labels/latest", json={"version": 1})
        assert latest.status_code == 422 and latest.json()["errors"][0]["loc"] == ["path", "label"]
        pushed = await c.post("/v1/prompts", json={**TEXT, "labels": ["latest"]})
        assert pushed.status_code == 422 and pushed.json()["errors"][0]["loc"] == ["body", "labels"]
        missing = await c.put("/v1/prompts/support-answer/labels/production", json={"version": 9})
        assert missing.status_code == 422 and missing.json()["errors"][0]["loc"] == ["body", "version"]
    async with world.client("a_read") as c:
        history = (await c.get("/v1/prompts/support-answer/labels/history")).json()["items"]
    assert [(h["label"], h["from_version"], h["to_version"]) for h in history] == [
        ("staging", 1, None), ("staging", None, 1), ("production", 1, 2), ("production", None, 1)]
    assert {h["moved_by"] for h in history} == {world.key_ids["a_write"]}
    async with world.client("a_read") as c:
        assert (await c.get("/v1/prompts/support-answer")).json()["version"] == 2
        assert (await c.get("/v1/prompts/support-answer", params={"label": "staging"})).status_code == 404


async def test_diff_of_two_versions(world: World) -> None:
    await _push(world)
    await _push(world, template="Answer {{ customer }} briefly: {{ question }}\nBe kind.",
                config={"model": "gpt-4o", "temperature": 0.2, "max_tokens": 300})
    async with world.client("a_read") as c:
        diff = (await c.get("/v1/prompts/support-answer/diff", params={"from": 1, "to": 2})).json()
        bad = await c.get("/v1/prompts/support-answer/diff", params={"from": 1, "to": 7})
    assert "+Be kind." in diff["template_diff"]
    assert "-Answer {{ customer }} briefly: {{question}}" in diff["template_diff"]
    assert diff["config_changes"] == [{"key": "max_tokens", "old": None, "new": 300},
                                      {"key": "model", "old": "gpt-4o-mini", "new": "gpt-4o"}]
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "to"]


async def test_templates_fail_cleanly(world: World) -> None:
    chat = {"name": "triage", "type": "chat", "labels": ["production"],
            "template": [{"role": "system", "content": "You triage for {{ team }}."},
                         {"role": "user", "content": "{{ ticket }} {{ not.a.variable }} {{}}"}]}
    async with world.client("a_write") as c:
        created = await c.post("/v1/prompts", json=chat)
        assert created.status_code == 201 and created.json()["variables"] == ["team", "ticket"]
        wrong_type = await c.post("/v1/prompts", json={**chat, "type": "text"})
        assert wrong_type.status_code == 422 and wrong_type.json()["errors"][0]["loc"] == ["body", "template"]
        changed_type = await c.post("/v1/prompts", json={**chat, "name": "triage", "type": "text", "template": "x"})
        assert changed_type.status_code == 409
        bad_role = await c.post("/v1/prompts", json={**chat, "template": [{"role": "wizard", "content": "x"}]})
        assert bad_role.status_code == 422
    async with world.client("a_read") as c:
        missing = await c.post("/v1/prompts/triage/render", json={"variables": {"team": "billing"}})
        assert missing.status_code == 422, missing.text
        assert missing.json()["errors"][0]["loc"] == ["body", "variables", "ticket"]
        assert "ticket" in missing.json()["detail"]
        rendered = (await c.post("/v1/prompts/triage/render",
                                 json={"variables": {"team": "billing", "ticket": "{{ team }}"}})).json()
    assert rendered["rendered"] == [{"role": "system", "content": "You triage for billing."},
                                    {"role": "user", "content": "{{ team }} {{ not.a.variable }} {{}}"}]


async def test_bad_input_names_the_field(world: World) -> None:
    async with world.client("a_write") as c:
        for body, loc in (({**TEXT, "name": "has/slash"}, ["body", "name"]),
                          ({**TEXT, "type": "image"}, ["body", "type"]),
                          ({**TEXT, "surprise": 1}, ["body", "surprise"])):
            resp = await c.post("/v1/prompts", json=body)
            assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == loc, (body, resp.text)
    async with world.client("a_read") as c:
        both = await c.get("/v1/prompts/support-answer", params={"label": "production", "version": 1})
        assert both.status_code == 422 and both.json()["errors"][0]["loc"] == ["query", "version"]


async def test_scopes(world: World) -> None:
    async with world.client("a_read") as c:
        assert (await c.post("/v1/prompts", json=TEXT)).status_code == 403
    async with world.client("a_traces") as c:
        assert (await c.get("/v1/prompts")).status_code == 403
    async with world.client(None) as c:
        assert (await c.get("/v1/prompts")).status_code == 401


async def test_experiments_split_the_label_deterministically(world: World) -> None:
    await _push(world, labels=["production"])
    await _push(world, template="B: {{ question }}")
    experiment = {"id": "exp-1", "prompt": "support-answer", "unit": "user", "holdout": 0.1,
                  "variants": [{"name": "control", "label": "production", "weight": 1},
                               {"name": "short", "version": 2, "weight": 1}]}
    async with world.client("a_write") as c:
        bad = await c.post("/v1/experiments", json={**experiment, "variants": [
            {"name": "x", "version": 7, "weight": 1}, {"name": "x", "label": "nope", "weight": 1}]})
        assert bad.status_code == 422
        assert [e["loc"] for e in bad.json()["errors"]] == [["body", "variants", 0, "version"],
                                                             ["body", "variants", 1, "name"],
                                                             ["body", "variants", 1, "label"]]
        created = await c.post("/v1/experiments", json=experiment)
        assert created.status_code == 201 and created.json()["status"] == "draft"
        assert (await c.post("/v1/experiments", json=experiment)).status_code == 409
        async with world.client("a_read") as r:
            assert (await r.get("/v1/prompts/support-answer")).json()["experiment"] is None
        assert (await c.post("/v1/experiments/exp-1/start")).json()["status"] == "running"
        assert (await c.post("/v1/experiments/exp-1/start")).status_code == 409
        second = await c.post("/v1/experiments", json={**experiment, "id": "exp-2"})
        assert (await c.post(f"/v1/experiments/{second.json()['id']}/start")).status_code == 409  # one per label
    async with world.client("a_read") as r:
        served = (await r.get("/v1/prompts/support-answer")).json()
        assert served["experiment"]["id"] == "exp-1"
        assert [(v["name"], v["prompt"]["version"]) for v in served["experiment"]["variants"]] == [("control", 1),
                                                                                                   ("short", 2)]
        for user in ("u-1", "u-2", "u-3", "u-4", "u-5"):
            one = (await r.get("/v1/prompts/support-answer", params={"unit_id": user})).json()
            expected = assign("exp-1", user, [("control", 1), ("short", 1)], 0.1)
            assert one["variant"] == expected
            assert one["version"] == {"control": 1, "short": 2, "holdout": 1}[expected]
    async with world.client("a_write") as c:
        assert (await c.post("/v1/experiments/exp-1/stop")).json()["status"] == "stopped"
    async with world.client("a_read") as r:
        assert (await r.get("/v1/prompts/support-answer")).json()["experiment"] is None


async def test_another_tenants_prompts_are_not_found_on_any_endpoint(world: World) -> None:
    await _push(world, labels=["production"])
    await _push(world, template="two {{ x }}")
    async with world.client("a_write") as c:
        await c.post("/v1/experiments", json={"id": "exp-a", "prompt": "support-answer", "variants": [
            {"name": "one", "version": 1, "weight": 1}, {"name": "two", "version": 2, "weight": 1}]})
    async with world.client("b_read") as r:
        assert (await r.get("/v1/prompts")).json()["items"] == []
        assert (await r.get("/v1/experiments")).json()["items"] == []
        for path in ("/v1/prompts/support-answer", "/v1/prompts/support-answer/versions",
                     "/v1/prompts/support-answer/versions/1", "/v1/prompts/support-answer/labels/history",
                     "/v1/prompts/support-answer/diff?from=1&to=2", "/v1/experiments/exp-a"):
            assert (await r.get(path)).status_code == 404, path
        assert (await r.post("/v1/prompts/support-answer/render", json={"variables": {}})).status_code == 404
    async with world.client("b_write") as w:
        assert (await w.put("/v1/prompts/support-answer/labels/production", json={"version": 1})).status_code == 404
        assert (await w.post("/v1/experiments/exp-a/start")).status_code == 404
        assert (await w.post("/v1/experiments/exp-a/stop")).status_code == 404
        made = await w.post("/v1/experiments", json={"id": "exp-b", "prompt": "support-answer", "variants": [
            {"name": "one", "version": 1, "weight": 1}, {"name": "two", "version": 2, "weight": 1}]})
        assert made.status_code == 422 and made.json()["errors"][0]["loc"] == ["body", "prompt"]
        # the same name in tenant B is B's own prompt, numbered from 1
        own = await w.post("/v1/prompts", json={**TEXT, "template": "B's {{ q }}"})
        assert own.status_code == 201 and own.json()["version"] == 1
    async with world.client("a_read") as c:
        assert (await c.get("/v1/prompts/support-answer", params={"label": "latest"})).json()["version"] == 2


async def test_a_label_moved_by_another_process_is_served_within_a_second(world: World, stack: CommonSettings) -> None:
    await _push(world, labels=["production"])
    await _push(world, template="v2 {{ question }}")
    with serve(create_app(prompts_settings(stack))) as other:
        async with httpx.AsyncClient(base_url=other, headers={"Authorization": f"Bearer {world.keys['a_read']}"},
                                     timeout=30) as r:
            assert (await r.get("/v1/prompts/support-answer")).json()["version"] == 1  # cached in that process
            async with world.client("a_write") as c:
                await c.put("/v1/prompts/support-answer/labels/production", json={"version": 2})
            for _ in range(50):
                if (await r.get("/v1/prompts/support-answer")).json()["version"] == 2:
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the other process kept serving the old version")
