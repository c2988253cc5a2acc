"""Each process keeps the key answers Postgres gave it while its `ConfigWatcher` listens: a known key costs no
round trip, and a change to `api_keys` (a revocation by any means, plain SQL included) empties every
process's answers at once, so a revoked key is refused by every running API within a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from fastapi import FastAPI

from llmops_devtools.testing import free_port
from llmops_shared import apikeys, problems
from llmops_shared.apikeys import KEY_TABLES, KeyStore, KeyStoreUnavailable
from llmops_shared.config_changes import ConfigWatcher
from llmops_shared.deps import BillingReader
from llmops_shared.http import api_backends
from llmops_shared.settings import ApiSettings, CommonSettings
from tests.support.servers import serve

pytestmark = pytest.mark.integration


def keyed_app(settings: CommonSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with api_backends(app, ApiSettings(**settings.model_dump(), requests_per_s=None)):
            yield

    app = FastAPI(title="keyed", lifespan=lifespan)
    problems.install(app)

    @app.get("/v1/thing")
    async def thing(principal: BillingReader) -> dict[str, str]:
        return {"tenant": principal.tenant_id}

    return app


@pytest_asyncio.fixture
async def watcher(stack: CommonSettings) -> AsyncIterator[ConfigWatcher]:
    listening = ConfigWatcher(stack.database_url)
    await listening.start()
    assert listening.connected
    yield listening
    await listening.close()


@pytest_asyncio.fixture
async def dead_pool() -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/gone", min_size=0)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def dead_backends(dead_pool: asyncpg.Pool) -> AsyncIterator[tuple[asyncpg.Pool, aioredis.Redis]]:
    """A pool and a Redis client pointed at ports nothing listens on (as when both are stopped)."""
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1)
    yield dead_pool, client
    await client.aclose()


async def test_a_key_revoked_by_plain_sql_is_refused_by_two_running_apis_within_a_second(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, make_key) -> None:
    """Plain SQL writes no Redis tombstone: before the watcher, each API kept accepting the key for as long as
    its Redis entry was fresh (`key_cache_ttl_s`, 30 s)."""
    key, other = await make_key(tenant, ["billing:read"]), await make_key(tenant, ["billing:read"])
    bearer = {"Authorization": f"Bearer {key}"}
    with serve(keyed_app(stack)) as first_url, serve(keyed_app(stack)) as second_url:
        async with httpx.AsyncClient(timeout=10) as client:
            for url in (first_url, second_url):  # each has verified the key (and cached it, in Redis too)
                assert (await client.get(f"{url}/v1/thing", headers=bearer)).status_code == 200
            await pg_pool.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1", key.split("_")[1])
            revoked_at = time.monotonic()
            refused: dict[str, float] = {}
            while len(refused) < 2 and time.monotonic() - revoked_at < 1.0:
                for url in (first_url, second_url):
                    if url not in refused and (await client.get(f"{url}/v1/thing", headers=bearer)).status_code == 401:
                        refused[url] = time.monotonic() - revoked_at
                await asyncio.sleep(0.01)
            assert set(refused) == {first_url, second_url}, refused
            for url in (first_url, second_url):  # the other key of the tenant is unaffected
                assert (await client.get(f"{url}/v1/thing",
                                         headers={"Authorization": f"Bearer {other}"})).status_code == 200


async def test_a_verified_key_is_answered_from_memory_until_api_keys_changes(
        pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, watcher: ConfigWatcher,
        dead_backends: tuple[asyncpg.Pool, aioredis.Redis], tenant: str) -> None:
    key = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["billing:read"])
    store = KeyStore(pg_pool, redis_client, outage_ttl_s=0, watcher=watcher)  # no last-known-good to fall back on
    assert (await store.resolve(key.secret)).key_id == key.key_id
    store.pool, store.redis = dead_backends  # nothing to ask any more: only the process's answer is left
    principal = await store.resolve(key.secret)
    assert principal is not None and principal.tenant_id == tenant

    stamp = watcher.stamp(KEY_TABLES)
    await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["billing:read"])  # any change to the table
    assert await watcher.wait_for_change(KEY_TABLES, stamp, timeout_s=1.0)
    with pytest.raises(KeyStoreUnavailable):  # the answer is gone: Postgres must be asked again
        await store.resolve(key.secret)


async def test_an_answer_read_while_api_keys_changed_is_not_kept(
        pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, watcher: ConfigWatcher, dead_pool: asyncpg.Pool,
        tenant: str) -> None:
    """A look-up whose Postgres read overlaps a revocation may answer with the key, once; it must not keep
    that answer past the change it could not see."""
    key = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["billing:read"])

    class ChangeDuringRead:
        """A pool whose read commits a change to `api_keys` (from another connection) before it answers."""

        async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
            row = await pg_pool.fetchrow(query, *args)
            stamp = watcher.stamp(KEY_TABLES)
            await pg_pool.execute("UPDATE api_keys SET name = 'touched' WHERE key_id = $1", key.key_id)
            assert await watcher.wait_for_change(KEY_TABLES, stamp, timeout_s=1.0)
            return row

    store = KeyStore(ChangeDuringRead(), redis_client, outage_ttl_s=0, watcher=watcher)  # type: ignore[arg-type]
    assert await store.resolve(key.secret) is not None
    store.pool = dead_pool
    with pytest.raises(KeyStoreUnavailable):
        await store.resolve(key.secret)


async def test_without_a_listening_watcher_a_process_keeps_nothing_of_its_own(
        pg_pool: asyncpg.Pool, redis_client: aioredis.Redis, dead_backends: tuple[asyncpg.Pool, aioredis.Redis],
        tenant: str) -> None:
    """No watcher (or its connection lost): a change could go unseen, so every look-up asks Redis, then
    Postgres, as before."""
    key = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["billing:read"])
    unheard = ConfigWatcher("postgresql://postgres@127.0.0.1:1/none")  # never connected
    store = KeyStore(pg_pool, redis_client, outage_ttl_s=0, watcher=unheard)
    assert await store.resolve(key.secret) is not None
    store.pool, store.redis = dead_backends
    with pytest.raises(KeyStoreUnavailable):
        await store.resolve(key.secret)
