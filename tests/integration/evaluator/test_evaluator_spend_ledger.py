"""The daily spend cap as it runs: `SpendLedger` and its Lua script in the real Redis.

The script is the one definition of the cap (spent + estimate <= cap), so these tests are the cap's tests:
its boundary, a refusal that changes nothing, concurrent reservations, settling, and the counter's key.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from llmops_evaluator.spend import SpendLedger, to_micros

pytestmark = pytest.mark.integration

DAY = "2026-12-03"


def ledger_for(redis: Any, tenant: str, **options: Any) -> SpendLedger:
    return SpendLedger(redis, prefix=f"llmops:test:spend:{tenant}", **options)


async def test_a_reservation_may_reach_the_cap_but_not_pass_it(redis_client: Any, tenant: str) -> None:
    ledger = ledger_for(redis_client, tenant)
    cap = Decimal("5")
    assert await ledger.reserve("acme", "ev", DAY, Decimal("4.99"), cap) is not None
    assert await ledger.reserve("acme", "ev", DAY, Decimal("0.02"), cap) is None  # 4.99 + 0.02 > 5
    assert await ledger.spent("acme", "ev", DAY) == Decimal("4.99")  # a refusal reserves nothing
    assert await ledger.reserve("acme", "ev", DAY, Decimal("0.01"), cap) is not None  # 4.99 + 0.01 = 5: allowed
    assert await ledger.spent("acme", "ev", DAY) == Decimal("5")
    assert await ledger.reserve("acme", "ev", DAY, Decimal("0.000001"), cap) is None  # one micro-dollar more: refused
    assert await ledger.reserve("acme", "ev", DAY, Decimal(0), cap) is not None  # nothing more is still within it


async def test_an_estimate_above_the_cap_is_refused_at_once_and_a_zero_cap_allows_nothing(
        redis_client: Any, tenant: str) -> None:
    ledger = ledger_for(redis_client, tenant)
    assert await ledger.reserve("acme", "ev", DAY, Decimal("5.000001"), Decimal("5")) is None
    assert await ledger.reserve("acme", "ev-free", DAY, Decimal("0.000001"), Decimal(0)) is None
    assert await ledger.spent("acme", "ev", DAY) == await ledger.spent("acme", "ev-free", DAY) == Decimal(0)


async def test_concurrent_reservations_never_pass_the_cap_together(redis_client: Any, tenant: str) -> None:
    ledger = ledger_for(redis_client, tenant)
    granted = await asyncio.gather(*(ledger.reserve("acme", "ev", DAY, Decimal("0.30"), Decimal("5"))
                                     for _ in range(50)))
    assert sum(r is not None for r in granted) == 16  # 16 x 0.30 = 4.80; a 17th would make 5.10
    assert await ledger.spent("acme", "ev", DAY) == Decimal("4.80")


async def test_settling_replaces_the_estimate_by_the_cost_and_frees_the_difference(redis_client: Any,
                                                                                  tenant: str) -> None:
    ledger = ledger_for(redis_client, tenant)
    cap = Decimal("1")
    held = await ledger.reserve("acme", "ev", DAY, Decimal("0.90"), cap)
    assert held is not None and held.micros == to_micros(Decimal("0.90"))
    assert await ledger.reserve("acme", "ev", DAY, Decimal("0.20"), cap) is None
    await ledger.settle(held, Decimal("0.25"))
    assert await ledger.spent("acme", "ev", DAY) == Decimal("0.25")
    assert await ledger.reserve("acme", "ev", DAY, Decimal("0.20"), cap) is not None  # the difference is free again
    more = await ledger.reserve("acme", "ev", DAY, Decimal("0.10"), cap)
    assert more is not None
    await ledger.settle(more, Decimal("0.30"))  # a call may cost more than its estimate: counted in full
    assert await ledger.spent("acme", "ev", DAY) == Decimal("0.75")


async def test_the_counter_is_per_evaluator_and_day_and_expires(redis_client: Any, tenant: str) -> None:
    ledger = ledger_for(redis_client, tenant, ttl_s=120)
    cap = Decimal("1")
    assert await ledger.reserve("acme", "ev-a", DAY, Decimal("1"), cap) is not None
    assert await ledger.reserve("acme", "ev-b", DAY, Decimal("1"), cap) is not None  # another evaluator's budget
    assert await ledger.reserve("acme", "ev-a", "2026-12-04", Decimal("1"), cap) is not None  # the next day's
    assert await ledger.reserve("acme", "ev-a", DAY, Decimal("0.000001"), cap) is None
    ttl = await redis_client.ttl(f"llmops:test:spend:{tenant}:acme:ev-a:{DAY}")
    assert 0 < ttl <= 120


async def test_the_counter_is_the_tenants_own(redis_client: Any, tenant: str) -> None:
    # Evaluator ids are per tenant: globex's `ev-a` has a budget of its own, and ids holding ':' cannot meet.
    ledger = ledger_for(redis_client, tenant, ttl_s=120)
    cap = Decimal("1")
    assert await ledger.reserve("acme", "ev-a", DAY, Decimal("1"), cap) is not None
    assert await ledger.reserve("globex", "ev-a", DAY, Decimal("1"), cap) is not None
    assert await ledger.reserve("a:b", "c", DAY, Decimal("1"), cap) is not None
    assert await ledger.reserve("a", "b:c", DAY, Decimal("1"), cap) is not None
    assert await ledger.spent("globex", "ev-a", DAY) == await ledger.spent("a", "b:c", DAY) == Decimal(1)
