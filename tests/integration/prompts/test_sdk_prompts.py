"""The SDK's `get_prompt` against the real prompts API: served from the API, then from its cache once the
API is stopped, and the app's fallback when nothing was cached."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from llmops_prompts.api import create_app
from llmops_sdk import PromptClient, trace
from llmops_shared import apikeys
from llmops_shared.settings import CommonSettings
from tests.integration.prompts.test_prompts_api import prompts_settings
from tests.support.servers import serve

pytestmark = pytest.mark.integration


async def test_the_sdk_keeps_serving_its_cached_prompt_with_the_api_stopped_and_the_fallback_with_nothing_cached(
        stack: CommonSettings, pg_pool: asyncpg.Pool) -> None:
    tenant = f"ps-{uuid.uuid4().hex[:8]}"
    write = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["prompts:write"])).secret
    read = (await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["prompts:read"])).secret
    with serve(create_app(prompts_settings(stack))) as url:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {write}"}) as c:
            created = await c.post("/v1/prompts", json={"name": "greet", "type": "text", "labels": ["production"],
                                                        "template": "Hello {{ name }}"})
            assert created.status_code == 201
            await c.post("/v1/prompts", json={"name": "greet", "type": "text", "template": "Hi {{ name }}"})
            await c.post("/v1/experiments", json={"id": "e1", "prompt": "greet", "variants": [
                {"name": "hello", "version": 1, "weight": 1}, {"name": "hi", "version": 2, "weight": 1}]})
            await c.post("/v1/experiments/e1/start")
        prompts = PromptClient(url, read, ttl_s=0, timeout_s=2)  # every call past the first refreshes
        served = prompts.get_prompt("greet")
        assert (served.version, served.is_fallback, served.compile(name="Ada")) == (1, False, "Hello Ada")
        with trace(user_id="user-7"):
            in_experiment = prompts.get_prompt("greet")
        assert in_experiment.variant in {"hello", "hi"} and in_experiment.experiment_id == "e1"
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {read}"}) as r:
            server_side = (await r.get("/v1/prompts/greet", params={"unit_id": "user-7"})).json()
        assert server_side["variant"] == in_experiment.variant  # the SDK and the API assign alike
        assert prompts.get_prompt("nope", fallback="Fallback {{ name }}").is_fallback  # 404: the fallback
    # the API is stopped now
    for _ in range(3):
        again = prompts.get_prompt("greet", fallback="unused {{ name }}")
        assert (again.version, again.is_fallback) == (1, False)
        assert prompts.wait_idle()
    cold = PromptClient(url, read, timeout_s=1).get_prompt("greet", fallback="Hey {{ name }}")
    assert cold.is_fallback and cold.compile(name="Bo") == "Hey Bo"
