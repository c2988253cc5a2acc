"""Migrations and API keys on the real Postgres and Redis, and the `llmops keys` command."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from llmops_shared import apikeys, db, migrations
from llmops_shared.settings import CommonSettings

pytestmark = pytest.mark.integration


async def test_migrate_is_idempotent_and_refuses_an_edited_migration(stack: CommonSettings, tmp_path: Path) -> None:
    url = db.with_database(stack.database_url, f"llmops_mig_{uuid.uuid4().hex[:8]}")
    await db.ensure_database(url)
    try:
        root = tmp_path / "migrations"
        (root / "shared").mkdir(parents=True)
        (root / "zeta").mkdir()
        (root / "shared" / "0001_first.sql").write_text("CREATE TABLE first (id int PRIMARY KEY);")
        (root / "zeta" / "0001_other.sql").write_text("CREATE TABLE other (id int REFERENCES first (id));")
        applied = await migrations.migrate(url, root)
        assert [(m.component, m.version) for m in applied] == [("shared", "0001"), ("zeta", "0001")]
        assert await migrations.migrate(url, root) == []

        (root / "shared" / "0002_second.sql").write_text("ALTER TABLE first ADD COLUMN name text;")
        assert [m.name for m in await migrations.migrate(url, root)] == ["second"]

        (root / "shared" / "0001_first.sql").write_text("CREATE TABLE first (id bigint PRIMARY KEY);")
        with pytest.raises(migrations.MigrationError, match="changed after it was applied"):
            await migrations.migrate(url, root)
    finally:
        await db.drop_database(url)


async def test_a_failing_migration_leaves_nothing_half_applied(stack: CommonSettings, tmp_path: Path) -> None:
    url = db.with_database(stack.database_url, f"llmops_mig_{uuid.uuid4().hex[:8]}")
    await db.ensure_database(url)
    try:
        root = tmp_path / "migrations"
        (root / "shared").mkdir(parents=True)
        (root / "shared" / "0001_broken.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await migrations.migrate(url, root)
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT to_regclass('half')") is None
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
        finally:
            await conn.close()
    finally:
        await db.drop_database(url)


async def test_keys_are_stored_hashed_scoped_and_revocable(stack: CommonSettings, pg_pool, redis_client) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    new = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["ingest:write", "billing:read"])
    stored = await pg_pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", new.key_id)
    assert new.secret.encode() not in bytes(stored["key_hash"])
    assert new.secret not in str(dict(stored))

    store = apikeys.KeyStore(pg_pool, redis_client, cache_ttl_s=30)
    principal = await store.resolve(new.secret)
    assert principal is not None and principal.tenant_id == tenant
    assert principal.allows(apikeys.Scope.BILLING_READ) and not principal.allows(apikeys.Scope.ALERTS_WRITE)
    assert await store.resolve(new.secret) == principal  # from the cache now

    assert await apikeys.revoke_key(pg_pool, new.key_id, redis_client)
    assert await store.resolve(new.secret) is None
    assert not await apikeys.revoke_key(pg_pool, new.key_id, redis_client)


async def test_a_key_revoked_while_its_look_up_is_in_flight_is_not_cached_back(
        stack: CommonSettings, pg_pool, redis_client) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    new = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["ingest:write"])

    class RevokedMidLookUp:
        """The pool as the key store sees it: the row is read, then the key is revoked before the cache write."""

        async def fetchrow(self, *args: object) -> object:
            row = await pg_pool.fetchrow(*args)
            assert await apikeys.revoke_key(pg_pool, new.key_id, redis_client)
            return row

    racing = apikeys.KeyStore(RevokedMidLookUp(), redis_client, cache_ttl_s=30)  # type: ignore[arg-type]
    assert await racing.resolve(new.secret) is not None  # it started before the revocation
    assert await apikeys.KeyStore(pg_pool, redis_client, cache_ttl_s=30).resolve(new.secret) is None


async def test_a_key_works_when_redis_is_unreachable(stack: CommonSettings, pg_pool) -> None:
    import redis.asyncio as aioredis

    tenant = f"t-{uuid.uuid4().hex[:8]}"
    new = await apikeys.create_key(pg_pool, tenant_id=tenant, scopes=["ingest:write"])
    dead_redis = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    store = apikeys.KeyStore(pg_pool, dead_redis)
    principal = await store.resolve(new.secret)
    assert principal is not None and principal.tenant_id == tenant
    await dead_redis.aclose()


def test_keys_create_prints_the_key_once_as_the_last_word(stack: CommonSettings) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "LLMOPS_DATABASE_URL": stack.database_url}
    out = subprocess.run([sys.executable, "-m", "llmops_shared.cli", "keys", "create", "--tenant", tenant,
                          "--scopes", "ingest:write,alerts:read"], env=env, capture_output=True, text=True,
                         check=True).stdout
    key = out.split()[-1]
    assert key.startswith("lk_")
    listed = subprocess.run([sys.executable, "-m", "llmops_shared.cli", "keys", "list", "--tenant", tenant],
                            env=env, capture_output=True, text=True, check=True).stdout
    assert tenant in listed and key not in listed
    bad = subprocess.run([sys.executable, "-m", "llmops_shared.cli", "keys", "create", "--tenant", tenant,
                          "--scopes", "ingest:write,root"], env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "unknown scope(s) root" in bad.stderr
