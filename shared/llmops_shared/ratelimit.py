"""A per-key token bucket in Redis: events for the ingest API, requests for every other API.

The bucket lives in one Redis hash per key and purpose, updated atomically by a Lua script, so every
replica of an API shares it. A process does not ask Redis for each request: it takes a *lease* of up to a
tenth of a second's tokens at once (`lease_tokens`: at most a tenth of the burst, at least the request's
cost) in one round trip, spends it locally for up to `lease_s`, and gives back what it did not spend with
its next take. So no replica ever spends more than the bucket granted (the limit holds across processes,
exactly as before); the price is that while replicas hold unspent leases (at most one each), another one
may be refused a little early. If Redis is unreachable the limiter lets requests through (and says so in
the log): a documented choice, because the key look-up still holds (it falls back to Postgres) and losing
ingestion or reads during a Redis outage costs more than a few seconds without a limit.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV: rate per second, capacity, cost, tokens wanted (>= cost), tokens given back (a lease's
# unspent rest). Returns {tokens granted (0 when refused; else between cost and wanted), seconds to wait}.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local back = tonumber(ARGV[5])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate + back)
local granted = 0
local wait = 0
if tokens >= cost then
  granted = math.min(wanted, tokens)
  tokens = tokens - granted
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return {tostring(granted), tostring(wait)}
"""

LEASE_S = 0.1
"""How long a process spends a lease of tokens before it asks the bucket again (and gives back the rest)."""


def lease_tokens(rate_per_s: float, capacity: float, cost: int, lease_s: float = LEASE_S) -> float:
    """How many tokens one take asks for: `lease_s` seconds' worth, at most a tenth of the bucket, at least
    `cost` (so a slow key's leases are its requests, one by one, as without leases)."""
    return max(float(cost), min(rate_per_s * lease_s, capacity / 10))


@dataclass
class _Lease:
    tokens: float
    until: float  # `clock` time


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, *, rate_per_s: int, burst: int, purpose: str = "events",
                 lease_s: float = LEASE_S, clock: Callable[[], float] = time.monotonic,
                 max_leases: int = 10_000) -> None:
        self.redis = redis
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.purpose = purpose
        self.lease_s = lease_s
        self.clock = clock
        self._leases: dict[str, _Lease] = {}
        self._max_leases = max_leases
        self._script = redis.register_script(_BUCKET_SCRIPT)

    async def take(self, key_id: str, cost: int, rate_per_s: int | None = None) -> Decision:
        rate = rate_per_s or self.rate_per_s
        capacity = max(self.burst, rate)
        if cost > capacity:
            # Never satisfiable as one request; say how long a bucket this size takes to refill.
            return Decision(False, max(1, math.ceil(capacity / rate)))
        now = self.clock()
        lease = self._leases.pop(key_id, None)
        if lease is not None and now < lease.until and lease.tokens >= cost:
            lease.tokens -= cost
            self._leases[key_id] = lease
            return Decision(True)
        back = lease.tokens if lease is not None else 0.0
        try:
            granted, wait = await self._script(keys=[self._bucket(key_id)],
                                               args=[rate, capacity, cost, lease_tokens(rate, capacity, cost,
                                                                                        self.lease_s), back])
        except RedisError:
            log.warning("rate limiter unavailable (Redis); letting the request through", extra={"key_id": key_id})
            return Decision(True)
        rest = float(granted) - cost
        if rest < 0:
            return Decision(False, max(1, math.ceil(float(wait))))
        if rest > 0:
            self._lease(key_id, rest, now + self.lease_s)
        return Decision(True)

    def _lease(self, key_id: str, tokens: float, until: float) -> None:
        held = self._leases.get(key_id)  # another take of the same key's, granted meanwhile: keep both
        self._leases[key_id] = _Lease(tokens + (held.tokens if held else 0.0), until)
        if len(self._leases) > self._max_leases:  # keys no longer seen: their rests are lost, never overspent
            now = self.clock()
            self._leases = {k: v for k, v in self._leases.items() if v.until > now}

    def _bucket(self, key_id: str) -> str:
        # The ingest API's event bucket keeps its original name; request buckets are per API.
        return f"llmops:ratelimit:{key_id}" if self.purpose == "events" else f"llmops:ratelimit:{self.purpose}:{key_id}"
