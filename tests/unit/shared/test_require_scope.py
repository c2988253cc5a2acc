"""A Postgres (or Redis) outage is a 503 with Retry-After on every API, never a 500: for the key look-up
(`require_scope`) and for whatever a route does with the database (`llmops_shared.problems`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError

from llmops_devtools.testing import free_port
from llmops_shared import problems
from llmops_shared.apikeys import KeyStore
from llmops_shared.deps import BillingReader, Conn

A_KEY = "lk_abcdefghijkl_" + "x" * 43


def app_without_postgres() -> FastAPI:
    """An app whose pool points at a port nothing listens on (as when Postgres is stopped), no Redis."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", min_size=0)
        app.state.pool = pool
        app.state.keystore = KeyStore(pool, None)
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)
    problems.install(app)

    @app.get("/v1/thing")
    async def thing(principal: BillingReader) -> dict[str, str]:
        return {"tenant": principal.tenant_id}

    @app.get("/v1/rows")
    async def rows(conn: Conn) -> dict[str, int]:
        return {"n": await conn.fetchval("SELECT 1")}

    return app


def test_a_key_look_up_that_cannot_reach_postgres_is_a_503_with_retry_after() -> None:
    with TestClient(app_without_postgres()) as client:
        resp = client.get("/v1/thing", headers={"Authorization": f"Bearer {A_KEY}"})
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    assert resp.headers["content-type"] == problems.MEDIA_TYPE
    assert resp.json()["detail"] == "the key store is unavailable; retry later"


def test_a_route_whose_connection_cannot_be_made_is_a_503_with_retry_after() -> None:
    with TestClient(app_without_postgres(), raise_server_exceptions=False) as client:
        resp = client.get("/v1/rows")
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    assert resp.json()["detail"] == "a backend of this API is unavailable; retry later"


@pytest.mark.parametrize("error", [
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),  # pg_ctl stop -m fast
    asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),
    asyncpg.CannotConnectNowError("the database system is shutting down"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("connection is closed"),
    ConnectionRefusedError(111, "Connect call failed"),
    OSError("Multiple exceptions: [Errno 111] ..., [Errno 99] ..."),  # asyncpg, every address refused
    TimeoutError(),
    RedisConnectionError("Error 111 connecting to localhost:6379"),
], ids=lambda e: type(e).__name__)
def test_every_outage_error_a_route_raises_is_a_503_not_a_500(error: Exception) -> None:
    app = FastAPI()
    problems.install(app)

    @app.get("/v1/report")
    async def report() -> dict[str, str]:
        raise error

    resp = TestClient(app, raise_server_exceptions=False).get("/v1/report")
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    assert resp.headers["content-type"] == problems.MEDIA_TYPE


def test_a_bug_is_still_a_500() -> None:
    app = FastAPI()
    problems.install(app)

    @app.get("/v1/report")
    async def report() -> dict[str, str]:
        raise asyncpg.UndefinedColumnError("column does not exist")

    assert TestClient(app, raise_server_exceptions=False).get("/v1/report").status_code == 500
