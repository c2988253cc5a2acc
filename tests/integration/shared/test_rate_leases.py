"""The request bucket in Redis, taken by leases: a process asks Redis for a tenth of a second's tokens at once
and spends them without a round trip; what it does not spend it gives back; however many processes share a
key, together they never spend more than the bucket grants."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from llmops_shared import problems
from llmops_shared.deps import BillingReader
from llmops_shared.http import api_backends
from llmops_shared.ratelimit import RateLimiter, lease_tokens
from llmops_shared.settings import ApiSettings, CommonSettings
from tests.support.servers import serve

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def bucket(redis: aioredis.Redis, limiter: RateLimiter, key_id: str) -> dict[bytes, bytes]:
    return await redis.hgetall(limiter._bucket(key_id))


def test_a_lease_is_a_tenth_of_a_second_at_most_a_tenth_of_the_burst_at_least_the_cost() -> None:
    assert lease_tokens(50, 200, 1) == 5
    assert lease_tokens(1000, 200, 1) == 20
    assert lease_tokens(1, 10, 1) == 1  # a slow key: one request at a time, exactly as without leases
    assert lease_tokens(50, 200, 30) == 30


async def test_a_lease_is_spent_without_a_round_trip(redis_client: aioredis.Redis) -> None:
    clock = Clock()
    limiter = RateLimiter(redis_client, rate_per_s=100, burst=100, purpose=f"test:{uuid.uuid4().hex}", clock=clock)
    assert (await limiter.take("k", 1)).allowed
    after_first = await bucket(redis_client, limiter, "k")
    assert float(after_first[b"tokens"]) == pytest.approx(90)  # the lease: 10 tokens, one spent
    for _ in range(9):
        assert (await limiter.take("k", 1)).allowed
    assert await bucket(redis_client, limiter, "k") == after_first  # nine requests, Redis never asked
    assert (await limiter.take("k", 1)).allowed  # the lease is spent: the next take asks again
    assert await bucket(redis_client, limiter, "k") != after_first


async def test_what_a_lease_did_not_spend_goes_back_to_the_bucket(redis_client: aioredis.Redis) -> None:
    clock = Clock()
    limiter = RateLimiter(redis_client, rate_per_s=1, burst=100, purpose=f"test:{uuid.uuid4().hex}", lease_s=10,
                          clock=clock)  # a lease of 10 tokens; the bucket refills 1 a second
    assert (await limiter.take("k", 1)).allowed
    assert float((await bucket(redis_client, limiter, "k"))[b"tokens"]) == pytest.approx(90, abs=0.5)
    clock.now += 11  # the lease (9 left) has expired: the next take gives them back, then takes a new one
    assert (await limiter.take("k", 1)).allowed
    assert float((await bucket(redis_client, limiter, "k"))[b"tokens"]) == pytest.approx(89, abs=0.5)


async def test_two_processes_together_never_spend_more_than_the_bucket(redis_client: aioredis.Redis) -> None:
    purpose = f"test:{uuid.uuid4().hex}"
    clock = Clock()  # leases never expire here: each process spends all it is granted
    first, second = (RateLimiter(redis_client, rate_per_s=1, burst=100, purpose=purpose, lease_s=10, clock=clock)
                     for _ in range(2))
    began = time.monotonic()
    allowed = {id(first): 0, id(second): 0}
    for _ in range(150):
        for limiter in (first, second):
            allowed[id(limiter)] += (await limiter.take("k", 1)).allowed
    refilled = math.ceil(time.monotonic() - began)  # the bucket refills 1 token a second meanwhile
    assert 100 <= sum(allowed.values()) <= 100 + refilled
    assert min(allowed.values()) >= 40  # both were served, a lease at a time


def limited_app(settings: CommonSettings, title: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with api_backends(app, ApiSettings(**settings.model_dump(), requests_per_s=1, requests_burst=5)):
            yield

    app = FastAPI(title=title, lifespan=lifespan)
    problems.install(app)

    @app.get("/v1/thing")
    async def thing(principal: BillingReader) -> dict[str, str]:
        return {"tenant": principal.tenant_id}

    return app


async def test_two_running_apis_share_a_keys_request_rate(stack: CommonSettings, tenant: str, make_key) -> None:
    title = f"shared-{uuid.uuid4().hex[:6]}"  # two replicas of one API: one bucket per key
    key = await make_key(tenant, ["billing:read"])
    with serve(limited_app(stack, title)) as first, serve(limited_app(stack, title)) as second:
        async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {key}"}) as client:
            began = time.monotonic()
            statuses = [(await client.get(f"{url}/v1/thing")).status_code for _ in range(10) for url in (first, second)]
            refilled = math.ceil(time.monotonic() - began)
    assert statuses[:5] == [200] * 5  # the burst, whichever replica answers
    assert 5 <= statuses.count(200) <= 5 + refilled and set(statuses) == {200, 429}
