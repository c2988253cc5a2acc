"""`GET /v1/recommendations` on the real stores: a cheaper model judged as good, exact repeats, and the
provider's prompt-cache reads; `billing:read` needed, the tenant's own data only."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest

from llmops_prompts.api import create_app
from llmops_shared import apikeys
from llmops_shared.clock import fixed
from llmops_shared.settings import CommonSettings
from tests.integration.prompts.test_prompts_api import prompts_settings
from tests.integration.traces.traces_support import NOW, add_score, bill, span_event, store_directly
from tests.support.servers import serve

pytestmark = pytest.mark.integration


async def test_recommendations(stack: CommonSettings, pg_pool: asyncpg.Pool) -> None:
    tenant, other = f"rs-{uuid.uuid4().hex[:8]}", f"ro-{uuid.uuid4().hex[:8]}"
    key = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["billing:read"])).secret
    other_key = (await apikeys.create_key(pg_pool, tenant_id=other, scopes=["billing:read"])).secret
    prompts_key = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["prompts:read"])).secret
    rng = random.Random(1)
    events = []
    for i in range(160):
        model = "gpt-4o" if i % 2 else "gpt-4o-mini"
        question = "What are your hours?" if i < 40 else f"question {i}"  # 40 calls, 2 distinct inputs per model
        events.append(span_event(tenant, at=NOW - timedelta(hours=3) + timedelta(seconds=30 * i), model=model,
                                 trace_id=f"t-{i}", span_id=f"s-{i}", parent_span_id=None, app_id="bot",
                                 input=[{"role": "user", "content": question}],
                                 usage={"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 250},
                                 prompt={"name": "answer"}))
    await store_directly(pg_pool, events)
    await bill(pg_pool, events)
    for event in events:
        await add_score(pg_pool, event, rng.uniform(0.7, 0.9))
    with serve(create_app(prompts_settings(stack), clock=fixed(NOW))) as url:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
            body = (await c.get("/v1/recommendations", params={"from": (NOW - timedelta(days=1)).isoformat(),
                                                               "margin": 0.05})).json()
            bad = await c.get("/v1/recommendations", params={"from": NOW.isoformat(), "to": NOW.isoformat()})
            assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "from"]
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {other_key}"}) as o:
            theirs = (await o.get("/v1/recommendations")).json()
            assert theirs["models"] == [] and theirs["exact_repeats"] == [] and theirs["prompt_cache"] == []
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {prompts_key}"}) as p:
            assert (await p.get("/v1/recommendations")).status_code == 403
    [group] = body["models"]
    assert (group["app_id"], group["prompt"]) == ("bot", "answer")
    rec = group["recommendation"]
    assert (rec["replace"], rec["with"]) == ("gpt-4o", "gpt-4o-mini") and rec["monthly_saving"] > 0
    assert {r["model"]: r["cache_read_ratio"] for r in body["prompt_cache"]} == {"gpt-4o": 0.25, "gpt-4o-mini": 0.25}
    repeats = {r["model"]: (r["calls"], r["repeats"]) for r in body["exact_repeats"]}
    assert repeats == {"gpt-4o": (80, 19), "gpt-4o-mini": (80, 19)}
