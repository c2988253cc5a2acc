"""Console sessions, kept server-side in Redis.

Signing in with an API key creates a session: a random token goes to the browser in an httpOnly,
SameSite=Strict cookie; Redis holds, under the token's SHA-256 (a Redis dump gives no usable cookie), the
key's SHA-256 (never the key itself) and the session's CSRF token. Each request resolves the key hash again
(`KeyStore.resolve_hash`), so a revoked key signs its sessions out within a second (the key store's rules).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

COOKIE = "llmops_console"
LOGIN_COOKIE = "llmops_console_login"  # the login form's CSRF token (double submit), before any session


@dataclass(frozen=True)
class Session:
    key_hash: bytes
    csrf: str


def _redis_key(token: str) -> str:
    return "llmops:console:session:" + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two tokens, neither missing nor empty."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


async def create(redis: aioredis.Redis, *, key_hash: bytes, ttl_s: int) -> tuple[str, Session]:
    token, session = new_token(), Session(key_hash=key_hash, csrf=new_token())
    await redis.set(_redis_key(token), orjson.dumps({"h": key_hash.hex(), "c": session.csrf}), ex=ttl_s)
    return token, session


async def get(redis: aioredis.Redis, token: str | None, *, ttl_s: int) -> Session | None:
    """The session of a cookie's token (renewed for another `ttl_s`), or None."""
    if not token or len(token) > 100:
        return None
    raw = await redis.getex(_redis_key(token), ex=ttl_s)
    if raw is None:
        return None
    data = orjson.loads(raw)
    return Session(key_hash=bytes.fromhex(data["h"]), csrf=data["c"])


async def delete(redis: aioredis.Redis, token: str | None) -> None:
    if token:
        await redis.delete(_redis_key(token))
