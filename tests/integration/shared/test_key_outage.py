"""Key look-ups while Postgres is unreachable (real Redis, a pool pointed at a port nothing listens on):
a key verified within `outage_ttl_s` is still accepted, from Redis or, with Redis down too, from the
process's memory; a key revoked before the outage stays refused; any other key is `KeyStoreUnavailable`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from llmops_devtools.testing import free_port
from llmops_shared import apikeys
from llmops_shared.apikeys import KeyStore, KeyStoreUnavailable

pytestmark = pytest.mark.integration

DAY = 86_400


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def dead_pool() -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/gone", min_size=0)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def dead_redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1)
    yield client
    await client.aclose()


async def test_a_known_key_is_accepted_through_an_outage_for_its_ttl_and_no_longer(
        pg_pool, redis_client, dead_pool, tenant) -> None:
    clock = Clock()
    key = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["ingest:write"])
    healthy = KeyStore(pg_pool, redis_client, clock=clock)
    assert (await healthy.resolve(key.secret)).tenant_id == tenant

    # another replica, Postgres gone: the key's Redis entry vouches for it (past its 30 s freshness)
    outage = KeyStore(dead_pool, redis_client, clock=clock)
    clock.now += 3600
    principal = await outage.resolve(key.secret)
    assert principal is not None and principal.key_id == key.key_id and principal.tenant_id == tenant

    clock.now += DAY  # a day after Postgres last said so: nothing vouches for it any more
    with pytest.raises(KeyStoreUnavailable):
        await outage.resolve(key.secret)


async def test_an_unknown_key_during_an_outage_is_unavailable_not_refused_nor_accepted(
        redis_client, dead_pool) -> None:
    _key_id, never_issued = apikeys.generate_key()
    with pytest.raises(KeyStoreUnavailable) as raised:
        await KeyStore(dead_pool, redis_client).resolve(never_issued)
    assert raised.value.status == 503 and raised.value.headers == {"Retry-After": "5"}


async def test_a_key_revoked_before_the_outage_stays_refused(pg_pool, redis_client, dead_pool, tenant) -> None:
    clock = Clock()
    key = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["ingest:write"])
    assert await KeyStore(pg_pool, redis_client, clock=clock).resolve(key.secret) is not None
    assert await apikeys.revoke_key(pg_pool, key.key_id, redis_client)

    clock.now += 2 * 3600  # longer than the tombstone lived before (1 h)
    assert await KeyStore(dead_pool, redis_client, clock=clock).resolve(key.secret) is None


async def test_a_key_refused_by_postgres_loses_its_last_known_good_answer(
        pg_pool, redis_client, dead_pool, tenant) -> None:
    """Revoked while Redis was down (no tombstone written): the next look-up that Postgres refuses turns
    the key's entry into a tombstone, so the outage after it does not bring the key back."""
    clock = Clock()
    key = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["ingest:write"])
    store = KeyStore(pg_pool, redis_client, clock=clock)
    assert await store.resolve(key.secret) is not None
    assert await apikeys.revoke_key(pg_pool, key.key_id, None)  # no Redis: no tombstone
    clock.now += 60
    assert await store.resolve(key.secret) is None

    clock.now += 3600
    assert await KeyStore(dead_pool, redis_client, clock=clock).resolve(key.secret) is None


async def test_a_look_up_in_flight_during_a_revocation_cannot_bring_the_key_back(
        pg_pool, redis_client, dead_pool, tenant) -> None:
    clock = Clock()
    key = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["ingest:write"])
    store = KeyStore(pg_pool, redis_client, clock=clock)
    assert await store.resolve(key.secret) is not None
    assert await apikeys.revoke_key(pg_pool, key.key_id, redis_client)
    # the look-up that read the key from Postgres just before the revocation writes its answer now
    principal = apikeys.Principal(key.key_id, tenant, frozenset({"ingest:write"}))
    await store._cache_put(apikeys.hash_key(key.secret), apikeys.Verified(principal, clock()))

    clock.now += 60
    assert await KeyStore(dead_pool, redis_client, clock=clock).resolve(key.secret) is None


async def test_with_redis_down_too_a_process_serves_the_keys_it_verified_itself(
        pg_pool, dead_redis, tenant) -> None:
    clock = Clock()
    key = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["ingest:write"])
    revoked = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["ingest:write"])
    store = KeyStore(pg_pool, dead_redis, clock=clock)
    assert await store.resolve(key.secret) is not None
    assert await store.resolve(revoked.secret) is not None
    await apikeys.revoke_key(pg_pool, revoked.key_id, None)
    clock.now += 1
    assert await store.resolve(revoked.secret) is None  # seen refused: remembered as refused

    store.pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/gone", min_size=0)
    try:
        clock.now += 3600
        assert (await store.resolve(key.secret)).key_id == key.key_id
        assert await store.resolve(revoked.secret) is None
        clock.now += DAY
        assert await _unavailable(store, key.secret)
    finally:
        await store.pool.close()


async def test_no_outage_ttl_means_every_look_up_needs_postgres(pg_pool, redis_client, dead_pool, tenant) -> None:
    clock = Clock()
    key = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["ingest:write"])
    assert await KeyStore(pg_pool, redis_client, clock=clock, outage_ttl_s=0).resolve(key.secret) is not None
    clock.now += 31
    assert await _unavailable(KeyStore(dead_pool, redis_client, clock=clock, outage_ttl_s=0), key.secret)


async def test_a_postgres_that_does_not_answer_is_down_after_the_look_up_time_out(
        pg_pool, redis_client, tenant) -> None:
    """A server that takes the connection and never answers (a hung host, a black-holed route) would hold
    each request for asyncpg's 60 s connect time-out: the look-up gives up after `lookup_timeout_s`."""
    clock = Clock()
    key = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["ingest:write"])
    assert await KeyStore(pg_pool, redis_client, clock=clock).resolve(key.secret) is not None
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections queue in the backlog; nothing ever answers them
        hung = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/x", min_size=0)
        try:
            store = KeyStore(hung, redis_client, clock=clock, lookup_timeout_s=0.3)
            clock.now += 60
            async with asyncio.timeout(20):  # not a timing assertion: a guard against hanging for a minute
                assert (await store.resolve(key.secret)).key_id == key.key_id
                assert await _unavailable(store, apikeys.generate_key()[1])
        finally:
            hung.terminate()


async def _unavailable(store: KeyStore, secret: str) -> bool:
    try:
        await store.resolve(secret)
    except KeyStoreUnavailable:
        return True
    return False
