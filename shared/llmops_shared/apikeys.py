"""API keys: created once and shown once, stored hashed, scoped to one tenant, revocable.

A key looks like `lk_<key_id>_<secret>`. `key_id` is public (it names the key in lists and logs);
only the SHA-256 of the whole key is stored.

Look-ups (`KeyStore`): each process keeps the answers Postgres gave it, by key hash, for `cache_ttl_s` (30 s)
and only while its `ConfigWatcher` listens: a change to `api_keys` (a key created, revoked, changed, by any
means: migration shared/0006 notifies it) empties them at once, so a revocation is in force in every process
within a second, and a known key costs no round trip at all. A look-up they cannot answer asks Postgres.
Without a listening watcher (none given, or its connection lost), a Redis entry per key hash says who the
key is and when Postgres last said so: for `cache_ttl_s` after that it is the answer; after that Postgres is
asked again. When Postgres
cannot be reached, a key Postgres accepted within the last `outage_ttl_s` (24 h) is still accepted: its
Redis entry lives that long (its *last-known-good* answer), and each process also remembers the keys it
verified itself, for when Redis is down too. A key this cannot vouch for is `KeyStoreUnavailable` (503
with `Retry-After`), never a 500 and never a guess.

Revocation stays in force through an outage when it happened before it: revoking writes a tombstone
over the key's entry for as long as any last-known-good answer can live, a look-up never writes over a
tombstone (so one in flight during the revocation cannot put the key back), and Postgres refusing a key
turns its entry into a tombstone. The price, written down in docs/security.md: a key revoked *during*
an outage keeps working until Postgres is back; and with Redis down too, a process accepts a key it
verified itself until it sees the key refused, so a revocation that process has not seen (the key not
used against it since) is not in force there during the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import asyncpg
import orjson
import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from llmops_shared import db
from llmops_shared.config_changes import ConfigWatcher
from llmops_shared.problems import Unavailable

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
    PROMPTS_READ = "prompts:read"
    PROMPTS_WRITE = "prompts:write"
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
            # It outlives any last-known-good entry of the key, so an outage does not bring the key back.
            await redis.set(_cache_key(bytes(row["key_hash"])), TOMBSTONE, ex=REVOKED_TOMBSTONE_TTL_S)
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


MAX_OUTAGE_TTL_S = 86_400
"""The longest a key's last-known-good answer may serve during a Postgres outage (`key_outage_ttl_s`)."""
REVOKED_TOMBSTONE_TTL_S = MAX_OUTAGE_TTL_S  # as long as any entry it must stand over
KEY_TABLES = ("api_keys",)
"""What a key's look-up reads: a change to it (notified, migration shared/0006) empties every process's answers."""
UNKNOWN_KEY_TTL_S = 5  # unknown keys are cached briefly, so a flood of bad keys does not reach Postgres
TOMBSTONE = b"null"

OUTAGE_LOOKUPS = Counter("llmops_api_key_outage_lookups_total",
                         "Key look-ups while Postgres was unreachable, by answer", ["answer"])

# KEYS[1]: a key's entry; ARGV: the new value (TOMBSTONE: Postgres does not know the key, or revoked it),
# its TTL, and a tombstone's TTL. A tombstone is never written over; a refused key that had an entry
# gets a tombstone as long-lived as a revocation's.
_PUT_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == 'null' then
  if current and current ~= 'null' then
    redis.call('SET', KEYS[1], 'null', 'EX', ARGV[3])
  elseif not current then
    redis.call('SET', KEYS[1], 'null', 'EX', ARGV[2])
  end
elseif current ~= 'null' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


def _cache_key(key_hash: bytes) -> str:
    return "llmops:apikey:" + key_hash.hex()


class KeyStoreUnavailable(Unavailable):
    """Postgres is unreachable and no recent answer vouches for the key: 503, the caller retries."""

    def __init__(self) -> None:
        super().__init__("the key store is unavailable; retry later", headers={"Retry-After": "5"})


@dataclass(frozen=True)
class Verified:
    """What Postgres last said of a key (None: unknown or revoked) and when (`clock` seconds)."""

    principal: Principal | None
    at: float


class KeyStore:
    """Resolves a presented key to a `Principal` (or None): this process's own answer from Postgres while
    `watcher` listens and `api_keys` has not changed since (no round trip), else a fresh Redis entry (without a
    listening watcher only), else Postgres, else (Postgres unreachable) the key's last-known-good answer, from
    Redis or, with Redis down too, this process's memory."""

    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis | None, *, cache_ttl_s: int = 30,
                 outage_ttl_s: int = MAX_OUTAGE_TTL_S, clock: Callable[[], float] = time.time,
                 remembered_keys: int = 10_000, lookup_timeout_s: float = 2.0,
                 watcher: ConfigWatcher | None = None) -> None:
        self.pool = pool
        self.redis = redis
        self.cache_ttl_s = cache_ttl_s
        self.outage_ttl_s = min(outage_ttl_s, MAX_OUTAGE_TTL_S)
        self.clock = clock
        self.lookup_timeout_s = lookup_timeout_s  # a Postgres that does not answer is as good as down
        self.watcher = watcher
        self._remembered: OrderedDict[bytes, Verified] = OrderedDict()
        self._remembered_max = remembered_keys
        self._known: OrderedDict[bytes, Verified] = OrderedDict()  # Postgres' answers since `_known_stamp`
        self._known_stamp: tuple[int, ...] | None = None
        self._put = redis.register_script(_PUT_SCRIPT) if redis is not None else None

    async def resolve(self, presented: str) -> Principal | None:
        if not _KEY.match(presented):
            return None
        return await self.resolve_hash(hash_key(presented))

    async def resolve_hash(self, key_hash: bytes) -> Principal | None:
        """`resolve` for a key known by its hash only (the console's sessions keep the hash, never the key),
        with the same cache, revocation and outage rules."""
        now = self.clock()
        stamp = self._stamp()
        if stamp is not None:  # listening: this process's answers hold until `api_keys` changes
            known = self._known.get(key_hash)
            if known is not None and now - known.at < self.cache_ttl_s:
                return known.principal
            # Not Redis: its entry may predate a revocation made by plain SQL (no tombstone); Postgres says.
            cached, redis_answered = None, False
        else:
            cached, redis_answered = await self._cache_get(key_hash)
            if cached is not None and (cached.principal is None or now - cached.at < self.cache_ttl_s):
                self._remember(key_hash, cached)
                return cached.principal
        try:
            async with asyncio.timeout(self.lookup_timeout_s):
                row = await self.pool.fetchrow(
                    """SELECT key_id, tenant_id, scopes, rate_limit_per_s FROM api_keys
                       WHERE key_hash = $1 AND revoked_at IS NULL""",
                    key_hash,
                )
        except db.UNAVAILABLE as exc:
            if stamp is not None:
                cached, redis_answered = await self._cache_get(key_hash)
            return self._during_outage(cached if redis_answered else self._remembered.get(key_hash), now, exc)
        principal = (
            Principal(row["key_id"], row["tenant_id"], frozenset(row["scopes"]), row["rate_limit_per_s"])
            if row
            else None
        )
        verified = Verified(principal, now)
        self._remember(key_hash, verified)
        if stamp is not None and self._stamp() == stamp:  # a change notified meanwhile: the answer may be stale
            self._keep(key_hash, verified)
        await self._cache_put(key_hash, verified)
        return principal

    def _stamp(self) -> tuple[int, ...] | None:
        """The stamp of `KEY_TABLES` while the watcher listens (None otherwise); moving, it empties `_known`."""
        if self.watcher is None or not self.watcher.connected:
            return None
        stamp = self.watcher.stamp(KEY_TABLES)
        if stamp != self._known_stamp:
            self._known.clear()
            self._known_stamp = stamp
        return stamp

    def _keep(self, key_hash: bytes, verified: Verified) -> None:
        self._known[key_hash] = verified
        self._known.move_to_end(key_hash)
        while len(self._known) > self._remembered_max:
            self._known.popitem(last=False)

    def _during_outage(self, known: Verified | None, now: float, exc: BaseException) -> Principal | None:
        if known is not None and known.principal is None:  # a tombstone: revoked (or refused) before
            OUTAGE_LOOKUPS.labels("refused").inc()
            return None
        if known is not None and now - known.at < self.outage_ttl_s:
            OUTAGE_LOOKUPS.labels("last_known_good").inc()
            return known.principal
        OUTAGE_LOOKUPS.labels("unavailable").inc()
        log.warning("API key look-up failed: Postgres unavailable and no recent answer for this key",
                    extra={"error_type": type(exc).__name__})
        raise KeyStoreUnavailable() from exc

    def _remember(self, key_hash: bytes, verified: Verified) -> None:
        """This process's own last-known-good answers, for when Redis is down too: the keys it saw accepted,
        and, in their place, a tombstone once it sees one refused (a key it never accepted is not kept)."""
        if verified.principal is None and key_hash not in self._remembered:
            return
        self._remembered[key_hash] = verified
        self._remembered.move_to_end(key_hash)
        while len(self._remembered) > self._remembered_max:
            self._remembered.popitem(last=False)

    async def _cache_get(self, key_hash: bytes) -> tuple[Verified | None, bool]:
        """The key's entry, and whether Redis answered at all."""
        if self.redis is None:
            return None, False
        try:
            raw = await self.redis.get(_cache_key(key_hash))
        except RedisError:
            return None, False
        if raw is None:
            return None, True
        return _verified_from_cache(raw.encode() if isinstance(raw, str) else raw, self.clock()), True

    async def _cache_put(self, key_hash: bytes, verified: Verified) -> None:
        if self._put is None:
            return
        principal = verified.principal
        value = TOMBSTONE if principal is None else orjson.dumps(
            {"k": principal.key_id, "t": principal.tenant_id, "s": sorted(principal.scopes),
             "r": principal.rate_limit_per_s, "v": verified.at})
        ttl = max(self.cache_ttl_s, self.outage_ttl_s) if principal else min(UNKNOWN_KEY_TTL_S, self.cache_ttl_s)
        with contextlib.suppress(RedisError):  # the cache is an optimisation; Postgres answered
            await self._put(keys=[_cache_key(key_hash)], args=[value, ttl, REVOKED_TOMBSTONE_TTL_S])


def _verified_from_cache(raw: bytes, now: float) -> Verified:
    data = orjson.loads(raw)
    if data is None:
        return Verified(None, now)
    # An entry written before entries carried their time ("v") lives 30 s: take it as fresh.
    return Verified(Principal(data["k"], data["t"], frozenset(data["s"]), data["r"]), float(data.get("v", now)))
