"""Where one authenticated request's time goes, in-process (issue 14): the prompts API app called as ASGI
(no socket, no uvicorn), and each piece on its own, in a database of its own and the stack's Redis.

    .venv/bin/python bench/auth_profile.py [--n 3000] [--db llmops_bench_auth] [--cprofile] [--gc-freeze]

Prints, per request and in µs (p50/p95/p99 of `--n`, after warm-up): `/healthz` through the whole app (FastAPI
routing, middleware, orjson), the authenticated 404 and the prompt get through the whole app (the three in
rotating turns), and the
pieces of the authenticated path alone: the key's hash, `KeyStore.resolve`, the request bucket's `take`, a
bare Redis `PING` (one round trip) and a bare Postgres `SELECT 1`. `--cprofile` adds the top functions of
the authenticated 404 by cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from llmops_prompts.api import create_app
from llmops_prompts.settings import PromptsSettings
from llmops_shared import apikeys, db, migrations
from llmops_shared.settings import CommonSettings

TENANT = "bench-auth"


async def asgi_get(app: Any, path: str, query: bytes, key: str | None) -> int:
    """One GET through the ASGI app; its status."""
    headers = [(b"host", b"bench")]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def timed(n: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    for _ in range(min(200, n)):
        await call()
    out = []
    for _ in range(n):
        began = time.perf_counter()
        await call()
        out.append((time.perf_counter() - began) * 1e6)
    return out


async def interleaved(n: int, calls: dict[str, Callable[[], Awaitable[object]]]) -> dict[str, list[float]]:
    """`calls` in a rotating order, `n` rounds after 200 of warm-up (as bench/prompts_api.py does over HTTP)."""
    named = list(calls.items())
    out: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(n + 200):
        shift = i % len(named)
        for name, call in named[shift:] + named[:shift]:
            began = time.perf_counter()
            await call()
            if i >= 200:
                out[name].append((time.perf_counter() - began) * 1e6)
    return out


def row(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    return (f"| {name} | {statistics.median(ordered):.0f} | {ordered[int(0.95 * (len(ordered) - 1))]:.0f} | "
            f"{ordered[int(0.99 * (len(ordered) - 1))]:.0f} | {len(ordered)} |")


async def main_async(args: argparse.Namespace) -> None:
    base = CommonSettings()
    database_url = db.with_database(base.database_url, args.db)
    await db.drop_database(database_url)
    await db.ensure_database(database_url)
    await migrations.migrate(database_url)
    try:
        conn = await asyncpg.connect(database_url)
        try:
            write = (await apikeys.create_key(conn, tenant_id=TENANT, scopes=["prompts:write"])).secret
            read = (await apikeys.create_key(conn, tenant_id=TENANT, scopes=["prompts:read"])).secret
        finally:
            await conn.close()
        settings = PromptsSettings(database_url=database_url, log_level="WARNING", requests_per_s=1_000_000,
                                   requests_burst=1_000_000)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            from httpx import ASGITransport, AsyncClient

            async with AsyncClient(transport=ASGITransport(app=app), base_url="http://bench") as client:
                (await client.post("/v1/prompts", headers={"Authorization": f"Bearer {write}"},
                                   json={"name": "answer", "type": "text", "template": "long {{ q }}",
                                         "labels": ["production"]})).raise_for_status()
            assert await asgi_get(app, "/v1/prompts/answer", b"label=production", read) == 200
            assert await asgi_get(app, "/v1/prompts/missing", b"", read) == 404
            if args.gc_freeze:  # what start-up made is never scanned again by the collector
                gc.collect()
                gc.freeze()
            keystore = app.state.keystore
            limiter = app.state.request_limiter
            principal = await keystore.resolve(read)
            pool, redis = app.state.pool, app.state.redis
            cases: dict[str, Callable[[], Awaitable[object]]] = {
                "app: GET /healthz": lambda: asgi_get(app, "/healthz", b"", None),
                "app: GET /v1/prompts/missing (auth, 404)": lambda: asgi_get(app, "/v1/prompts/missing", b"", read),
                "app: GET /v1/prompts/answer?label=production": lambda: asgi_get(
                    app, "/v1/prompts/answer", b"label=production", read),
                "piece: hash_key (sha256)": lambda: _sync(apikeys.hash_key, read),
                "piece: KeyStore.resolve": lambda: keystore.resolve(read),
                "piece: RateLimiter.take": lambda: limiter.take(principal.key_id, 1),
                "piece: Redis PING (one round trip)": redis.ping,
                "piece: Postgres SELECT 1": lambda: pool.fetchval("SELECT 1"),
            }
            print("| what | p50 µs | p95 µs | p99 µs | n |\n|---|---|---|---|---|")
            apps = {name: call for name, call in cases.items() if name.startswith("app:")}
            for name, values in (await interleaved(args.n, apps)).items():  # the app's requests, in turns
                print(row(name, values), flush=True)
            for name, call in cases.items():
                if name not in apps:
                    print(row(name, await timed(args.n, call)), flush=True)
            if args.cprofile:
                profile = cProfile.Profile()
                profile.enable()
                for _ in range(args.n):
                    await asgi_get(app, "/v1/prompts/missing", b"", read)
                profile.disable()
                pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    finally:
        await db.drop_database(database_url)


async def _sync(fn: Callable[..., object], *args: object) -> object:
    return fn(*args)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--db", default="llmops_bench_auth")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() once the app has started")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
