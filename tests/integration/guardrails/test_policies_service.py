"""A stored policy change is in force within a second in every running process: the inline check of another
API process and the stream worker. Both cache policies for 30 s here, so only the change notification
(Postgres LISTEN/NOTIFY, `ConfigWatcher`) can explain it."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from llmops_guardrails.api import create_app
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.settings import GuardrailsSettings
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from tests.integration.guardrails.conftest import SALT, start_pipeline, wait_until
from tests.support.events import make_event
from tests.support.servers import serve

pytestmark = pytest.mark.integration

TTL_S = 30.0
POLICY = ("detectors: {terms: {lists: {competitors: {terms: [Globex]}}}}\n"
          "rules: [{id: competitor-alert, detector: terms, action: alert, severity: low}]\n")
TEXT = "Is Globex cheaper? Mail pat@example.com"


async def test_a_policy_changed_through_the_api_is_in_force_within_a_second_for_check_and_worker(
        *, stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, guardrails_engine: PolicyEngine,
        tenant: str, make_key) -> None:
    settings = GuardrailsSettings(**{**stack.model_dump(), "finding_hash_salt": SALT, "policy_cache_ttl_s": TTL_S,
                                     "alerts_topic": f"{TOPIC_PREFIX}gr.policy-alerts.{uuid.uuid4().hex[:8]}"})
    admin = {"Authorization": f"Bearer {await make_key(tenant, ['admin'])}"}
    loop = asyncio.get_running_loop()

    async def scanned_version(event: dict) -> str:
        """The policy version the worker scanned `event` with (its e-mail finding says so)."""
        await p.send(event)
        return await wait_until(lambda: pg_pool.fetchval(
            "SELECT policy_version FROM guardrail_findings WHERE event_id = $1::uuid LIMIT 1", event["event_id"]),
            what="the probe event scanned")

    async with start_pipeline(stack, pg_pool, redis_client, guardrails_engine, policy_cache_ttl_s=TTL_S) as p, \
            httpx.AsyncClient(timeout=30) as http:
        assert p.handler.policies.ttl_s == TTL_S
        with serve(create_app(settings, engine=guardrails_engine)) as writer, \
                serve(create_app(settings, engine=guardrails_engine)) as checker:

            async def check() -> dict:
                answer = await http.post(f"{checker}/v1/check", json={"text": TEXT}, headers=admin)
                assert answer.status_code == 200, answer.text
                return answer.json()

            # Both processes hold the tenant's (default) policy in their caches.
            assert (await check())["policy_version"] == "default"
            assert await scanned_version({**make_event(), "tenant_id": tenant,
                                          "input": [{"role": "user", "content": TEXT}]}) == "default"

            put = await http.put(f"{writer}/v1/policy", content=POLICY,
                                 headers={**admin, "content-type": "application/yaml"})
            assert put.status_code == 201, put.text
            changed_at = loop.time()

            # The other API process: poll; the first answer under the new policy must have been asked for
            # within a second of the change.
            while True:
                asked_at = loop.time()
                answer = await check()
                if answer["policy_version"] == "t1":
                    break
                assert asked_at - changed_at < 1.0, "the change was not in force for /v1/check within 1 s"
                await asyncio.sleep(0.02)
            assert asked_at - changed_at <= 1.0
            assert "competitor-alert" in {t["rule_id"] for t in answer["triggered"]}
            assert (await check())["policy_version"] == "t1"

            # The worker: an event sent a second after the change is scanned under it, whenever it is processed.
            await asyncio.sleep(max(0.0, changed_at + 1.0 - loop.time()))
            probe = {**make_event(), "tenant_id": tenant, "input": [{"role": "user", "content": TEXT}]}
            assert await scanned_version(probe) == "t1"
            kinds = {r["entity_type"] for r in await pg_pool.fetch(
                "SELECT entity_type FROM guardrail_findings WHERE event_id = $1::uuid", probe["event_id"])}
            assert kinds == {"EMAIL_ADDRESS", "competitors"}
        p.check_alive()
