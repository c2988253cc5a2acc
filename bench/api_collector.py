"""Request latency of two API processes, this tree's and another commit's, side by side in the same run: what the
garbage collector's settings (`llmops_shared.http.freeze_after_start_up`, `LLMOPS_*_GC_THRESHOLDS`) change.

    .venv/bin/python bench/api_collector.py --baseline-root CHECKOUT [--requests 2000]
                                            [--api guardrails,prompts,billing]

For each API, two processes run at once on free ports (uvicorn with uvloop, one process each, as in production):
this tree's and the one of `--baseline-root` (a checkout or worktree; its `services/*`, `shared`, `devtools` and
`sdk` first on PYTHONPATH). Requests alternate between the two one by one through one keep-alive client each, so
both see the same load:

- guardrails: `POST /v1/check` with distinct ~2 KB prompts (names, e-mail addresses, phone and card numbers in
  prose: the pipeline bench's `check_text`), the engine loaded in the API's lifespan (~200,000 objects);
- prompts: `GET /v1/prompts/answer?label=production` (the API answers from its memory once read);
- billing: `GET /v1/prices` (the whole price list, hundreds of models: a large answer, many objects a request).

Reports per build p50 / p95 / p99 / max in ms, how many requests took over 20 ms, the process's CPU per
request (user + system from `/proc`, over the timed requests), and its garbage collections over the timed
requests, by generation, with the CPU they took (a `gc.callbacks` hook the bench puts in each process through a
`sitecustomize` module of its own, first on PYTHONPATH). Everything runs in a database of its own (dropped
at the end) and the stack's Redis; rate limits are lifted for the bench's keys.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from guardrails_pipeline import check_text, pct
from proc_stat import process_stat

from llmops_devtools.stack import local
from llmops_devtools.stack.processes import port_open, wait_for
from llmops_devtools.testing import free_port
from llmops_shared import apikeys, db, migrations
from llmops_shared.settings import CommonSettings

TENANT = "bench-api-gc"
ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 50
GC_HOOK = """import gc, os, time
_log = os.environ.get("BENCH_GC_LOG")
if _log:
    _started = [0.0]

    def _collected(phase, info):
        if phase == "start":
            _started[0] = time.thread_time()
            return
        with open(_log, "a") as out:
            out.write(f"{time.time():.4f} {info['generation']} {time.thread_time() - _started[0]:.6f}\\n")

    gc.callbacks.append(_collected)
"""


def pythonpath(root: Path) -> str:
    parts = [*sorted(str(p) for p in (root / "services").iterdir() if p.is_dir()), str(root / "shared"),
             str(root / "devtools"), str(root / "sdk")]
    return os.pathsep.join(parts)


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


def guardrails_request(client: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
    return client.post("/v1/check", json={"text": TEXTS[i]})


def prompts_request(client: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
    return client.get("/v1/prompts/answer", params={"label": "production"})


def billing_request(client: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
    return client.get("/v1/prices")


TEXTS: list[str] = []
APIS: dict[str, tuple[str, str, Request]] = {  # module, scope, request
    "guardrails": ("llmops_guardrails.api", "guardrails:check", guardrails_request),
    "prompts": ("llmops_prompts.api", "prompts:read", prompts_request),
    "billing": ("llmops_billing.api", "billing:read", billing_request),
}


async def prepare_prompts(env: dict[str, str], pool: Any, logs: Path) -> None:
    """The prompt the gets read, made through this tree's API."""
    key = (await apikeys.create_key(pool, tenant_id=TENANT, scopes=["prompts:write"], name="bench")).secret
    port = free_port()
    with open(logs / "prompts-setup.log", "wb") as out:  # noqa: ASYNC230 (a bench)
        proc = subprocess.Popen([sys.executable, "-m", "llmops_prompts.api"],  # noqa: ASYNC220
                                env={**env, "LLMOPS_PROMPTS_PORT": str(port)}, stdout=out, stderr=subprocess.STDOUT)
    try:
        if not wait_for(lambda: port_open(port), 60):
            raise RuntimeError("the prompts API did not start")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            resp = await client.post("/v1/prompts", json={"name": "answer", "type": "text",
                                                          "template": "Answer {{ question }} in a sentence.",
                                                          "labels": ["production"]})
            if resp.status_code not in (200, 201):
                raise RuntimeError(f"creating the prompt answered {resp.status_code}: {resp.text[:200]}")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def compare(name: str, env: dict[str, str], pool: Any, logs: Path, *, builds: dict[str, str],
                  n: int) -> dict[str, dict[str, float]]:
    module, scope, request = APIS[name]
    key = (await apikeys.create_key(pool, tenant_id=TENANT, scopes=[scope], name="bench")).secret
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    prefix = f"LLMOPS_{name.upper()}_"
    try:
        for build, path in builds.items():
            port = free_port()
            with open(logs / f"{name}-{build}.log", "wb") as out:  # noqa: ASYNC230 (a bench)
                procs[build] = (subprocess.Popen(  # noqa: ASYNC220
                    [sys.executable, "-m", module], stdout=out, stderr=subprocess.STDOUT,
                    env={**env, "PYTHONPATH": f"{logs / 'hook'}{os.pathsep}{path}", f"{prefix}PORT": str(port),
                         "BENCH_GC_LOG": str(gc_log(logs, name, build))}), port)
        for build, (_, port) in procs.items():
            if not wait_for(lambda port=port: port_open(port), 90):  # type: ignore[misc]
                raise RuntimeError(f"the {name} API ({build}) did not start: {logs}")
        clients = {build: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                            headers={"Authorization": f"Bearer {key}"})
                   for build, (_, port) in procs.items()}
        times: dict[str, list[float]] = {build: [] for build in procs}
        cpu: dict[str, float] = {}
        window = [0.0, 0.0]
        try:
            for i in range(WARM_UP + n):
                if i == WARM_UP:
                    cpu = {build: process_stat(proc.pid)[1] for build, (proc, _) in procs.items()}
                    window[0] = time.time()
                order = list(procs) if i % 2 == 0 else list(reversed(procs))
                for build in order:
                    started = time.perf_counter()
                    resp = await request(clients[build], i)
                    elapsed = (time.perf_counter() - started) * 1000
                    if resp.status_code != 200:
                        raise RuntimeError(f"{name} ({build}) answered {resp.status_code}: {resp.text[:200]}")
                    if i >= WARM_UP:
                        times[build].append(elapsed)
            cpu = {build: process_stat(proc.pid)[1] - cpu[build] for build, (proc, _) in procs.items()}
            window[1] = time.time()
        finally:
            for client in clients.values():
                await client.aclose()
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(timeout=20)
    return {build: {"p50": pct(ms, 0.5), "p95": pct(ms, 0.95), "p99": pct(ms, 0.99), "max": max(ms),
                    "over20": sum(1 for x in ms if x > 20), "cpu_ms": cpu[build] * 1000 / n,
                    **collections(gc_log(logs, name, build), window)}
            for build, ms in times.items()}


def gc_log(logs: Path, name: str, build: str) -> Path:
    return logs / f"gc-{name}-{build.replace(' ', '-')}.txt"


def collections(path: Path, window: list[float]) -> dict[str, float]:
    """Collections by generation in the timed window, and the thread CPU they took in all (ms)."""
    out = {"gen0": 0.0, "gen1": 0.0, "gen2": 0.0, "gc_ms": 0.0}
    for line in path.read_text().splitlines() if path.exists() else []:
        at, generation, seconds = line.split()
        if window[0] <= float(at) <= window[1]:
            out[f"gen{generation}"] += 1
            out["gc_ms"] += float(seconds) * 1000
    return out


async def main_async(args: argparse.Namespace) -> None:
    TEXTS.extend(check_text(i) for i in range(WARM_UP + args.requests))
    base = CommonSettings()
    bench_db = db.with_database(base.database_url, f"llmops_bench_apigc_{uuid.uuid4().hex[:6]}")
    await db.ensure_database(bench_db)
    await migrations.migrate(bench_db)
    env = {**os.environ, "LLMOPS_DATABASE_URL": bench_db, "LLMOPS_LOG_LEVEL": "WARNING"}
    for name in APIS:
        prefix = f"LLMOPS_{name.upper()}_"
        env.update({f"{prefix}REQUESTS_PER_S": "1000000", f"{prefix}REQUESTS_BURST": "1000000"})
    env["LLMOPS_PROMPTS_REPORT_WARMER"] = "false"
    builds = {"this tree": pythonpath(ROOT), "baseline": pythonpath(args.baseline_root)}
    pool = await db.create_pool(bench_db, max_size=2)
    logs = Path(tempfile.mkdtemp(prefix="bench-api-gc-"))
    (logs / "hook").mkdir()
    (logs / "hook" / "sitecustomize.py").write_text(GC_HOOK)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; logs in {logs}", flush=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        for name in args.api.split(","):
            if name == "prompts":
                await prepare_prompts({**env, "PYTHONPATH": builds["this tree"]}, pool, logs)
            results[name] = await compare(name, env, pool, logs, builds=builds, n=args.requests)
    finally:
        await pool.close()
        await db.drop_database(bench_db)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"{'api':<11} {'build':<10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'> 20 ms':>8} "
          f"{'CPU ms/req':>11} {'collections 0/1/2':>18} {'their CPU ms':>13}")
    for name, by_build in results.items():
        for build, r in by_build.items():
            counts = f"{r['gen0']:.0f}/{r['gen1']:.0f}/{r['gen2']:.0f}"
            print(f"{name:<11} {build:<10} {r['p50']:>8.2f} {r['p95']:>8.2f} {r['p99']:>8.2f} {r['max']:>8.1f} "
                  f"{r['over20']:>8.0f} {r['cpu_ms']:>11.3f} {counts:>18} {r['gc_ms']:>13.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-root", required=True, help="a checkout of the commit to compare against")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per build and API")
    parser.add_argument("--api", default="guardrails,prompts,billing", help="which APIs, comma-separated")
    args = parser.parse_args()
    args.baseline_root = Path(args.baseline_root).resolve()
    local.infrastructure_up(CommonSettings(), say=lambda _m: None)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
