"""The daily spend cap on judge calls: a pure cost estimator, and the Redis ledger that enforces the cap.

Cost = input tokens x input price + output tokens x output price (prices per million tokens, from the
evaluator's judge). Before a call, the ledger *reserves* a conservative estimate (the prompt's characters
/ 4 + `max_tokens`) atomically against the cap, so concurrent calls cannot overshoot it together; after the
call the reservation is settled to the actual cost. Amounts are kept in Redis as integer micro-dollars per
evaluator (of a tenant: ids are the tenant's own) and UTC day; the counter expires two days later.

The cap rule lives in one place, the Lua script `_RESERVE` that Redis runs atomically: a reservation is
granted while spent + estimate <= cap (reaching the cap exactly is allowed) and refused otherwise, leaving
the counter as it was. Its tests run it against the real Redis (tests/integration/evaluator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from urllib.parse import quote

from redis.asyncio import Redis

from llmops_evaluator.config import JudgeEndpoint

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class JudgePrice:
    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal

    @classmethod
    def of(cls, spec: JudgeEndpoint) -> JudgePrice:
        return cls(spec.input_usd_per_mtok, spec.output_usd_per_mtok)


def cost_usd(input_tokens: int, output_tokens: int, price: JudgePrice) -> Decimal:
    return (input_tokens * price.input_usd_per_mtok + output_tokens * price.output_usd_per_mtok) / MILLION


def estimate_input_tokens(messages: list[dict[str, str]]) -> int:
    """An upper-leaning guess without a tokenizer: 4 characters a token, plus a few per message."""
    chars = sum(len(m.get("content") or "") for m in messages)
    return math.ceil(chars / 4) + 8 * len(messages)


def estimate_cost_usd(messages: list[dict[str, str]], max_tokens: int, price: JudgePrice) -> Decimal:
    return cost_usd(estimate_input_tokens(messages), max_tokens, price)


def to_micros(usd: Decimal) -> int:
    return int(usd.scaleb(6).to_integral_value(rounding=ROUND_CEILING))


def from_micros(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-6)


def spend_day(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).date().isoformat()


@dataclass(frozen=True)
class Reservation:
    key: str
    micros: int


# The cap rule. Reserve ARGV[1] micro-dollars unless that passes the cap ARGV[2] (reaching it is allowed);
# -1 when refused (nothing changes), else the new total. ARGV[3]: the counter's time to live, in seconds.
_RESERVE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if current + amount > tonumber(ARGV[2]) then
  return -1
end
local total = redis.call('INCRBY', KEYS[1], amount)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return total
"""


class SpendLedger:
    def __init__(self, redis: Redis, *, prefix: str = "llmops:eval:spend", ttl_s: int = 2 * 24 * 3600) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_s = ttl_s

    def _key(self, tenant_id: str, evaluator_id: str, day: str) -> str:
        # Ids may hold ':' (and tenants may share an evaluator id): each part quoted, so keys never collide.
        return f"{self._prefix}:{quote(tenant_id, safe='')}:{quote(evaluator_id, safe='')}:{day}"

    async def spent(self, tenant_id: str, evaluator_id: str, day: str) -> Decimal:
        raw = await self._redis.get(self._key(tenant_id, evaluator_id, day))
        return from_micros(int(raw)) if raw is not None else Decimal(0)

    async def reserve(self, tenant_id: str, evaluator_id: str, day: str, estimate_usd: Decimal,
                      cap_usd: Decimal) -> Reservation | None:
        """Hold `estimate_usd` of today's budget, or None when it would pass the cap."""
        key = self._key(tenant_id, evaluator_id, day)
        micros = to_micros(estimate_usd)
        total = await self._redis.eval(_RESERVE, 1, key, micros, to_micros(cap_usd), self._ttl_s)
        return None if int(total) < 0 else Reservation(key, micros)

    async def settle(self, reservation: Reservation, actual_usd: Decimal) -> None:
        """Replace the reserved estimate by the actual cost."""
        delta = to_micros(actual_usd) - reservation.micros
        if delta:
            await self._redis.incrby(reservation.key, delta)
