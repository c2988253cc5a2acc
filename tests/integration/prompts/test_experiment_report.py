"""An experiment's report on the real stores: events stored by the trace writer's and billing's own code,
judge scores and guardrail findings as their services store them; a planted cost and quality difference."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest

from llmops_prompts.api import create_app
from llmops_prompts.store import calls
from llmops_shared import apikeys
from llmops_shared.clock import fixed
from llmops_shared.settings import CommonSettings
from tests.integration.prompts.test_prompts_api import prompts_settings
from tests.integration.traces.traces_support import NOW, add_finding, add_score, bill, span_event, store_directly
from tests.support.servers import serve

pytestmark = pytest.mark.integration


async def test_the_report_finds_the_planted_differences_and_is_the_tenants_own(
        stack: CommonSettings, pg_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant, other = f"pr-{uuid.uuid4().hex[:8]}", f"po-{uuid.uuid4().hex[:8]}"
    write = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["prompts:write"])).secret
    read = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["prompts:read"])).secret
    other_read = (await apikeys.create_key(pg_pool, tenant_id=other, scopes=["prompts:read"])).secret
    rng = random.Random(5)
    events = []
    for i in range(240):
        variant = "short" if i % 2 else "long"
        at = NOW - timedelta(hours=2) + timedelta(seconds=10 * i)
        output_tokens = rng.randint(150, 250) if variant == "short" else rng.randint(300, 500)  # half the cost
        events.append(span_event(tenant, at=at, model="gpt-4o-mini", user_id=f"u-{i}", trace_id=f"t-{i}",
                                 span_id=f"s-{i}", parent_span_id=None, session_id=f"sess-{i // 4}",
                                 latency_ms=float(rng.randint(300, 900)),
                                 usage={"input_tokens": 400, "output_tokens": output_tokens},
                                 prompt={"name": "answer", "version": "1" if variant == "long" else "2",
                                         "variant": variant},
                                 status="error" if i % 40 == 0 else "ok",
                                 **({"error": {"type": "timeout"}} if i % 40 == 0 else {})))
    await store_directly(pg_pool, events)
    await bill(pg_pool, events)
    for i, event in enumerate(events):
        await add_score(pg_pool, event, rng.uniform(0.6, 0.9) if i % 2 else rng.uniform(0.7, 1.0))
    await add_finding(pg_pool, events[0])
    with serve(create_app(prompts_settings(stack, report_bootstrap_samples=500), clock=fixed(NOW))) as url:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {write}"}) as w:
            await w.post("/v1/prompts", json={"name": "answer", "type": "text", "template": "long {{ q }}",
                                              "labels": ["production"]})
            await w.post("/v1/prompts", json={"name": "answer", "type": "text", "template": "short {{ q }}"})
            created = await w.post("/v1/experiments", json={"id": "len", "prompt": "answer", "variants": [
                {"name": "long", "version": 1, "weight": 1}, {"name": "short", "version": 2, "weight": 1}]})
            assert created.status_code == 201
            by_session = await w.post("/v1/experiments", json={"id": "len-s", "prompt": "answer", "unit": "session",
                                                               "variants": [{"name": "long", "version": 1, "weight": 1},
                                                                            {"name": "short", "version": 2,
                                                                             "weight": 1}]})
            assert by_session.status_code == 201
        window = {"from": (NOW - timedelta(days=1)).isoformat(), "to": NOW.isoformat()}
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {read}"}) as r:
            not_started = await r.get("/v1/experiments/len/report")
            assert not_started.status_code == 422 and not_started.json()["errors"][0]["loc"] == ["query", "from"]
            too_long = await r.get("/v1/experiments/len/report",
                                   params={"from": (NOW - timedelta(days=401)).isoformat(), "to": NOW.isoformat()})
            assert too_long.status_code == 422 and too_long.json()["errors"][0]["loc"] == ["query", "from"]
            report = (await r.get("/v1/experiments/len/report", params=window)).json()
            sessions = (await r.get("/v1/experiments/len-s/report", params=window)).json()
            # a variant over the bootstrap's limit: its costs stay in Postgres, the interval is Welch's from the
            # moments the SQL aggregates (the limit lowered here to 50 so that 120 calls a side are "large")
            monkeypatch.setattr(calls, "BOOTSTRAP_MAX_VALUES", 50)
            large = (await r.get("/v1/experiments/len/report", params=window)).json()
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {other_read}"}) as o:
            assert (await o.get("/v1/experiments/len/report", params=window)).status_code == 404
    assert report["control"] == "long" and report["trustworthy"] is True
    assert report["sample_ratio"]["observed_units"] == [120, 120]
    # sessions of four calls alternate variants, so each session has calls in both: 60 in each variant
    assert sessions["sample_ratio"]["observed_units"] == [60, 60]
    assert sessions["variants"]["short"]["calls"] == 120
    long, short = report["variants"]["long"], report["variants"]["short"]
    assert (long["calls"], short["calls"]) == (120, 120)
    assert long["error_rate"] == pytest.approx(6 / 120) and short["error_rate"] == 0
    assert long["guardrail_finding_rate"] == pytest.approx(1 / 120)
    assert short["cost_per_call"] < long["cost_per_call"] and set(long["scores"]) == {"relevance"}
    verdicts = {m["metric"]: m["verdict"] for m in report["comparisons"]["short"]}
    assert verdicts["cost_per_call"] == "better"  # cheaper
    assert verdicts["score:relevance"] == "worse"  # and judged worse
    assert verdicts["latency_p50_ms"] == "inconclusive"  # no latency difference was planted
    cost = next(m for m in report["comparisons"]["short"] if m["metric"] == "cost_per_call")
    assert cost["ci95"][0] < cost["difference"] < cost["ci95"][1] < 0
    large_cost = next(m for m in large["comparisons"]["short"] if m["metric"] == "cost_per_call")
    assert large_cost["difference"] == pytest.approx(cost["difference"], rel=1e-9)  # every call, exact means
    assert large_cost["verdict"] == "better" and large_cost["ci95"][1] < 0
    assert large_cost["ci95"] != cost["ci95"]  # Welch's interval, not the bootstrap's
    assert {m["metric"]: m["verdict"] for m in large["comparisons"]["short"]} == verdicts
