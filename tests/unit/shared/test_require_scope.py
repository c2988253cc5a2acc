"""An API whose key store is unreachable answers 503 with Retry-After (the caller retries), never 500."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmops_shared import problems
from llmops_shared.deps import BillingReader


class UnreachableKeyStore:
    async def resolve(self, presented: str) -> None:
        raise ConnectionRefusedError("connection refused")


def test_a_key_look_up_that_cannot_reach_postgres_is_a_503_with_retry_after() -> None:
    app = FastAPI()
    problems.install(app)
    app.state.keystore = UnreachableKeyStore()

    @app.get("/v1/thing")
    async def thing(principal: BillingReader) -> dict[str, str]:
        return {"tenant": principal.tenant_id}

    resp = TestClient(app).get("/v1/thing", headers={"Authorization": "Bearer lk_abc_def"})
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    assert resp.json()["detail"] == "the key store is unavailable; retry later"
