"""Postgres stopped under the ingest API: events of keys it has seen keep being accepted, durably in Kafka;
an unknown key gets 503 with Retry-After; a key revoked before the outage stays refused; nothing is a 500.

Uses a Postgres server of its own (a free port, a folder of its own), so stopping it disturbs no other
test and never the shared stack's. Redis and Kafka are the shared ones, or, for the second case, Redis
at a port nothing listens on (the process's own memory of the keys it verified then vouches for them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from llmops_devtools.stack.postgres import PostgresServer
from llmops_ingest.api import create_app
from llmops_ingest.settings import IngestSettings
from llmops_shared import apikeys, db
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import INTERACTIONS_RAW
from tests.support.events import collect, end_offsets, make_event
from tests.support.postgres import migrated_database, own_postgres
from tests.support.servers import free_port, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with own_postgres() as server:
        yield server


@pytest.mark.parametrize("redis", ["shared", "down"])
async def test_known_keys_keep_ingesting_while_postgres_is_down(
        stack: CommonSettings, postgres: PostgresServer, tenant: str, redis: str) -> None:
    await asyncio.to_thread(postgres.start)
    database_url = await migrated_database(postgres)
    pool = await db.create_pool(database_url, max_size=2)
    try:
        known = await apikeys.create_key(pool, tenant_id=tenant, scopes=["ingest:write"])
        revoked = await apikeys.create_key(pool, tenant_id=tenant, scopes=["ingest:write"])
        never_used = await apikeys.create_key(pool, tenant_id=tenant, scopes=["ingest:write"])
    finally:
        await pool.close()
    redis_url = stack.redis_url if redis == "shared" else f"redis://127.0.0.1:{free_port()}/0"
    settings = IngestSettings(**{**stack.model_dump(), "database_url": database_url, "redis_url": redis_url},
                              key_cache_ttl_s=1)  # past its freshness at once: every look-up needs Postgres

    sent: list[str] = []
    statuses: list[int] = []

    async def post(client: httpx.AsyncClient, key: str) -> httpx.Response:
        event = make_event()
        resp = await client.post("/v1/interactions", json=event, headers={"Authorization": f"Bearer {key}"})
        statuses.append(resp.status_code)
        if resp.status_code == 202:
            sent.append(event["event_id"])
        return resp

    since = await end_offsets(stack.kafka_bootstrap, INTERACTIONS_RAW)
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await post(client, known.secret)).status_code == 202
            assert (await post(client, revoked.secret)).status_code == 202
            await _revoke(database_url, revoked.key_id, redis_url if redis == "shared" else None)
            await asyncio.sleep(1.1)  # every answer past its freshness
            assert (await post(client, revoked.secret)).status_code == 401  # seen refused before the outage

            await asyncio.to_thread(postgres.stop, "immediate")
            for _ in range(20):
                resp = await post(client, known.secret)
                assert resp.status_code == 202, resp.text
            unknown = await post(client, never_used.secret)  # issued, but never seen by this API
            assert unknown.status_code == 503, unknown.text
            assert unknown.headers["retry-after"] == "5"
            assert unknown.headers["content-type"] == "application/problem+json"
            _id, never_issued = apikeys.generate_key()
            assert (await post(client, never_issued)).status_code == 503
            assert (await post(client, revoked.secret)).status_code == 401
            assert (await client.get("/readyz")).status_code == 503
            for _ in range(5):
                assert (await post(client, known.secret)).status_code == 202

    assert not [s for s in statuses if s >= 500 and s != 503], statuses
    assert len(sent) == 27
    ids = set(sent)
    records = await collect(stack.kafka_bootstrap, INTERACTIONS_RAW, since,
                            keep=lambda r: orjson.loads(r.value)["event_id"] in ids,
                            until=lambda found: {orjson.loads(r.value)["event_id"] for r in found} >= ids)
    assert {orjson.loads(r.value)["event_id"] for r in records} == ids
    assert {orjson.loads(r.value)["tenant_id"] for r in records} == {tenant}


async def _revoke(database_url: str, key_id: str, redis_url: str | None) -> None:
    """`llmops keys revoke`, as the operator runs it: Postgres, and the tombstone in Redis when there is one."""
    pool = await db.create_pool(database_url, max_size=1)
    cache = aioredis.from_url(redis_url) if redis_url else None
    try:
        assert await apikeys.revoke_key(pool, key_id, cache)
    finally:
        await pool.close()
        if cache is not None:
            await cache.aclose()
