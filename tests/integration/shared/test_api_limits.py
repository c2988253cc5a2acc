"""Every API can limit each key's request rate: past it, 429 with Retry-After; other keys are not affected."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from llmops_shared import problems
from llmops_shared.deps import BillingReader
from llmops_shared.http import api_backends
from llmops_shared.settings import ApiSettings, CommonSettings
from tests.support.servers import serve

pytestmark = pytest.mark.integration


def limited_app(settings: CommonSettings, title: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with api_backends(app, ApiSettings(**settings.model_dump(), requests_per_s=1, requests_burst=3)):
            yield

    app = FastAPI(title=title, lifespan=lifespan)
    problems.install(app)

    @app.get("/v1/thing")
    async def thing(principal: BillingReader) -> dict[str, str]:
        return {"tenant": principal.tenant_id}

    return app


async def test_a_key_past_its_request_rate_gets_429_and_others_do_not(stack: CommonSettings, tenant: str,
                                                                      make_key) -> None:
    import uuid

    first, second = await make_key(tenant, ["billing:read"]), await make_key(tenant, ["billing:read"])
    with serve(limited_app(stack, f"limited-{uuid.uuid4().hex[:6]}")) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            answers = []
            for _ in range(30):  # a burst of 3 at once, then 1 per second: a 429 comes, however slow the machine
                answers.append(await client.get("/v1/thing", headers={"Authorization": f"Bearer {first}"}))
                if answers[-1].status_code == 429:
                    break
            other = await client.get("/v1/thing", headers={"Authorization": f"Bearer {second}"})
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    limited = answers[-1]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["detail"] == "request rate limit reached for this key"
    assert other.status_code == 200
