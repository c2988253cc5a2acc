"""API keys: created once and shown once, stored hashed, scoped to one tenant, revocable.

A key looks like `lk_<key_id>_<secret>`. `key_id` is public (it names the key in lists and logs);
only the SHA-256 of the whole key is stored. Look-ups are cached in Redis for `cache_ttl_s` seconds;
revoking a key deletes its cache entry, so revocation is immediate on a healthy Redis and takes at
most the TTL otherwise. When Redis is unreachable, look-ups go to Postgres.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

import asyncpg
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_KEY = re.compile(r"^lk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")


class Scope(StrEnum):
    INGEST_WRITE = "ingest:write"
    GUARDRAILS_CHECK = "guardrails:check"
    ALERTS_READ = "alerts:read"
    ALERTS_WRITE = "alerts:write"
    BILLING_READ = "billing:read"
    EVAL_WRITE = "eval:write"
    TRACES_READ = "traces:read"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant a key belongs to and what it may do."""

    key_id: str
    tenant_id: str
    scopes: frozenset[str]
    rate_limit_per_s: int | None = None

    def allows(self, scope: Scope) -> bool:
        return scope.value in self.scopes or Scope.ADMIN.value in self.scopes


@dataclass(frozen=True)
class NewKey:
    key_id: str
    tenant_id: str
    secret: str  # the whole key, to show once


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def generate_key() -> tuple[str, str]:
    """A fresh `(key_id, key)`."""
    key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    return key_id, f"lk_{key_id}_{secrets.token_urlsafe(32)}"


def parse_scopes(values: list[str]) -> list[str]:
    known = {s.value for s in Scope}
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if not values:
        raise ValueError("a key needs at least one scope")
    return sorted(set(values))


async def create_key(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    tenant_id: str,
    scopes: list[str],
    name: str = "",
    rate_limit_per_s: int | None = None,
) -> NewKey:
    scopes = parse_scopes(scopes)
    key_id, key = generate_key()
    await conn.execute(
        "INSERT INTO tenants (tenant_id, name) VALUES ($1, $1) ON CONFLICT (tenant_id) DO NOTHING", tenant_id
    )
    await conn.execute(
        """INSERT INTO api_keys (key_id, tenant_id, key_hash, scopes, name, rate_limit_per_s)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        key_id, tenant_id, hash_key(key), scopes, name, rate_limit_per_s,
    )
    return NewKey(key_id=key_id, tenant_id=tenant_id, secret=key)


async def revoke_key(conn: asyncpg.Connection | asyncpg.Pool, key_id: str, redis: aioredis.Redis | None) -> bool:
    row = await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING key_hash", key_id
    )
    if row is None:
        return False
    if redis is not None:
        try:
            # A tombstone, not a delete: a look-up that read the key from Postgres just before this
            # revocation must not put it back in the cache (its write is set-if-absent).
            await redis.set(_cache_key(bytes(row["key_hash"])), orjson.dumps(None), ex=REVOKED_TOMBSTONE_TTL_S)
        except RedisError:
            log.warning("could not drop a revoked key from the cache; it expires with its TTL",
                        extra={"key_id": key_id})
    return True


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT key_id, tenant_id, scopes, name, created_at, revoked_at FROM api_keys
           WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY created_at""",
        tenant_id,
    )


REVOKED_TOMBSTONE_TTL_S = 3600  # longer than any process's key cache TTL


def _cache_key(key_hash: bytes) -> str:
    return "llmops:apikey:" + key_hash.hex()


class KeyStore:
    """Resolves a presented key to a `Principal` (or None), Redis first, then Postgres."""

    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis | None, *, cache_ttl_s: int = 30) -> None:
        self.pool = pool
        self.redis = redis
        self.cache_ttl_s = cache_ttl_s

    async def resolve(self, presented: str) -> Principal | None:
        if not _KEY.match(presented):
            return None
        key_hash = hash_key(presented)
        cached = await self._cache_get(key_hash)
        if cached is not None:
            return _principal_from_cache(cached)
        row = await self.pool.fetchrow(
            """SELECT key_id, tenant_id, scopes, rate_limit_per_s FROM api_keys
               WHERE key_hash = $1 AND revoked_at IS NULL""",
            key_hash,
        )
        principal = (
            Principal(row["key_id"], row["tenant_id"], frozenset(row["scopes"]), row["rate_limit_per_s"])
            if row
            else None
        )
        await self._cache_put(key_hash, principal)
        return principal

    async def _cache_get(self, key_hash: bytes) -> bytes | None:
        if self.redis is None:
            return None
        try:
            cached = await self.redis.get(_cache_key(key_hash))
            return cached.encode() if isinstance(cached, str) else cached
        except RedisError:
            return None

    async def _cache_put(self, key_hash: bytes, principal: Principal | None) -> None:
        if self.redis is None:
            return
        value = orjson.dumps(
            None
            if principal is None
            else {"k": principal.key_id, "t": principal.tenant_id, "s": sorted(principal.scopes),
                  "r": principal.rate_limit_per_s}
        )
        # Unknown keys are cached briefly too, so a flood of bad keys does not reach Postgres.
        ttl = self.cache_ttl_s if principal else min(5, self.cache_ttl_s)
        with contextlib.suppress(RedisError):  # the cache is an optimisation; Postgres answered
            # Set-if-absent: a revocation's tombstone, written while this look-up was in flight, wins.
            await self.redis.set(_cache_key(key_hash), value, ex=ttl, nx=True)


def _principal_from_cache(raw: bytes) -> Principal | None:
    data = orjson.loads(raw)
    if data is None:
        return None
    return Principal(data["k"], data["t"], frozenset(data["s"]), data["r"])
