"""Postgres stopped under every API: a route that needs the database answers 503 with Retry-After (problem
details), never a 500; a key the API has seen still passes authentication (its last-known-good answer), an
unknown one is a 503 too. On a Postgres server of the test's own: never the shared stack's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from llmops_billing.api import create_app as billing_app
from llmops_billing.settings import BillingSettings
from llmops_devtools.stack.postgres import PostgresServer
from llmops_evaluator.api import create_app as evaluator_app
from llmops_evaluator.settings import EvaluatorSettings
from llmops_guardrails.api import create_app as guardrails_app
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.policy import default_policy
from llmops_guardrails.settings import GuardrailsSettings
from llmops_shared import apikeys, db
from llmops_shared.settings import CommonSettings
from tests.support.postgres import migrated_database, own_postgres
from tests.support.servers import serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SALT = "outage-test-salt"
# A route of each API that reads Postgres once the key is checked.
READS = {"guardrails": "/v1/alerts", "billing": "/v1/budgets", "evaluator": "/v1/evaluators"}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with own_postgres() as server:
        yield server


async def test_every_api_answers_503_with_retry_after_while_postgres_is_down(
        stack: CommonSettings, postgres: PostgresServer, tenant: str) -> None:
    await asyncio.to_thread(postgres.start)
    database_url = await migrated_database(postgres, "llmops_outage_apis")
    pool = await db.create_pool(database_url, max_size=2)
    try:
        key = (await apikeys.create_key(pool, tenant_id=tenant, scopes=["admin"])).secret
        unseen = (await apikeys.create_key(pool, tenant_id=tenant, scopes=["admin"])).secret
    finally:
        await pool.close()
    # key_cache_ttl_s=1: past its freshness at once, so during the outage the key passes on its last-known-good
    common = {**stack.model_dump(), "database_url": database_url, "key_cache_ttl_s": 1}
    engine = PolicyEngine(GuardrailsSettings(finding_hash_salt=SALT))  # type: ignore[arg-type]
    await asyncio.to_thread(engine.warm_up, default_policy())
    apps = {
        "guardrails": guardrails_app(GuardrailsSettings(**{**common, "finding_hash_salt": SALT}), engine=engine),
        "billing": billing_app(BillingSettings(**common)),
        "evaluator": evaluator_app(EvaluatorSettings(**common)),
    }
    auth = {"Authorization": f"Bearer {key}"}
    with ExitStack() as running:
        urls = {name: running.enter_context(serve(app)) for name, app in apps.items()}
        async with httpx.AsyncClient(timeout=30) as client:
            for name, path in READS.items():
                resp = await client.get(urls[name] + path, headers=auth)
                assert resp.status_code == 200, (name, resp.text)

            await asyncio.sleep(1.1)
            await asyncio.to_thread(postgres.stop, "immediate")
            for name, path in READS.items():
                for attempt in range(3):  # the pool's broken connections, then new ones refused
                    resp = await client.get(urls[name] + path, headers=auth)
                    assert resp.status_code == 503, (name, attempt, resp.status_code, resp.text)
                    assert resp.headers["retry-after"] == "5", name
                    assert resp.headers["content-type"] == "application/problem+json", name
                    assert resp.json()["detail"] == "a backend of this API is unavailable; retry later"
                unknown = await client.get(urls[name] + path, headers={"Authorization": f"Bearer {unseen}"})
                assert unknown.status_code == 503 and unknown.headers["retry-after"] == "5", (name, unknown.text)
                assert unknown.json()["detail"] == "the key store is unavailable; retry later"
