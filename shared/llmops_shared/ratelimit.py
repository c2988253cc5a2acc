"""A per-key token bucket in Redis: events for the ingest API, requests for every other API.

The bucket lives in one Redis hash per key and purpose, updated atomically by a Lua script, so every
replica of an API shares it. If Redis is unreachable the limiter lets requests through (and says so in
the log): a documented choice, because the key look-up still holds (it falls back to Postgres) and losing
ingestion or reads during a Redis outage costs more than a few seconds without a limit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV: rate per second, capacity, cost. Returns {allowed (0/1), seconds to wait}.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, *, rate_per_s: int, burst: int, purpose: str = "events") -> None:
        self.redis = redis
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.purpose = purpose
        self._script = redis.register_script(_BUCKET_SCRIPT)

    async def take(self, key_id: str, cost: int, rate_per_s: int | None = None) -> Decision:
        rate = rate_per_s or self.rate_per_s
        capacity = max(self.burst, rate)
        if cost > capacity:
            # Never satisfiable as one request; say how long a bucket this size takes to refill.
            return Decision(False, max(1, math.ceil(capacity / rate)))
        try:
            allowed, wait = await self._script(keys=[self._bucket(key_id)], args=[rate, capacity, cost])
        except RedisError:
            log.warning("rate limiter unavailable (Redis); letting the request through", extra={"key_id": key_id})
            return Decision(True)
        if int(allowed):
            return Decision(True)
        return Decision(False, max(1, math.ceil(float(wait))))

    def _bucket(self, key_id: str) -> str:
        # The ingest API's event bucket keeps its original name; request buckets are per API.
        return f"llmops:ratelimit:{key_id}" if self.purpose == "events" else f"llmops:ratelimit:{self.purpose}:{key_id}"
