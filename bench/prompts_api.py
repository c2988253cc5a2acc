"""The prompts API on the real stack (issue 14), in one run, in a database of its own:

1. `GET /v1/prompts/{name}?label=production` p50/p95/p99 against two baselines of the same API process
   through the same keep-alive client, the three interleaved request by request: `GET /healthz` (no key) and
   the get of a missing prompt (the key's look-up and rate limit, both in Redis, and a cached 404: what every
   authenticated request pays). Target: get p95 < 10 ms. The API answers a label from its memory once read
   (dropped on a configuration change).
2. An experiment's report over `--calls` calls (default 1,000,000: two variants, 50/50) through
   `GET /v1/experiments/{id}/report` (target < 2 s), against its baseline, `SELECT count(*)` of the same
   ledger rows (the floor of any report that reads them), and split in-process into its SQL
   (`store.calls.variant_data`) and its statistics (`report.build`). The first report over ended hours
   aggregates and keeps them (`prompt_report_hours`), the next ones read them back: each report's time is
   printed in order; clear the table for a cold first report of a `--reuse` run.

3. With `--rounds N` (N > 0): a running experiment's report as a user opens it (the default window: from its start,
   set to the data's first instant, to now; the hour under way is read raw every time), N rounds of three cases
   through HTTP: (a) nothing cached (`prompt_report_hours` emptied first), (b) emptied, then one pass of the
   report's warmer (`llmops_prompts.warmer`, in this process, timed apart), then the first report, (c) the next
   report (warm). Medians and p95 per case, with the 1-minute load average at each. The API process runs with
   its own warmer off, so that the bench decides when it runs.

The calls are loaded with SQL (`generate_series`) the way billing, the trace writer, guardrails and the
evaluator store them: a ledger row and a span per call (latency lognormal around 400 ms, whole ms), a
guardrail finding on 2%, a judge score on 20%, errors on 5%; one tenant, over the 6 hours before now.

    .venv/bin/python bench/prompts_api.py [--calls 1000000] [--gets 2000] [--reports 5] [--keep-db] [--reuse]
                                          [--rounds 0] [--api-code CHECKOUT] [--db llmops_bench_prompts]

Everything runs in `llmops_bench_prompts` (or `--db`; dropped and re-created unless `--reuse`, dropped at the end unless
`--keep-db`), with a prompts API process of its own on a free port; Redis is the stack's (rate limits).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import numpy as np

from llmops_devtools.stack import local
from llmops_devtools.stack.processes import port_open, wait_for
from llmops_devtools.testing import free_port
from llmops_prompts.report import build
from llmops_prompts.store import calls as call_store
from llmops_prompts.warmer import ReportWarmer
from llmops_shared import apikeys, db, migrations
from llmops_shared.clock import utc_now
from llmops_shared.settings import CommonSettings

BENCH_DB = "llmops_bench_prompts"
TENANT = "bench-prompts"
CHUNK = 100_000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def load(conn: asyncpg.Connection, calls: int, start: datetime) -> None:
    """`calls` calls of prompt `answer`, variants a and b alternating, one every 6 h / calls; errors, findings and
    scores on every k-th pair of calls, so both variants have the same rates (an A/A test on those)."""
    await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", TENANT)
    await conn.execute("INSERT INTO evaluators (evaluator_id, tenant_id, config) VALUES ('judge', $1, '{}')",
                       TENANT)
    step_us = int(6 * 3600 * 1e6 / calls)
    for first in range(0, calls, CHUNK):
        n = min(CHUNK, calls - first)
        args = (TENANT, start, step_us, first, n)
        calls_sql = """SELECT md5($1 || g::text)::uuid AS event_id,
                              $2::timestamptz + make_interval(secs => g * $3 / 1e6) AS at, g,
                              CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END AS variant
                       FROM generate_series($4::bigint, $4::bigint + $5 - 1) AS g"""
        await conn.execute(f"""
            INSERT INTO usage_ledger (event_id, occurred_at, tenant_id, app_id, environment, trace_id, span_id,
                                      span_kind, status, model, prompt_name, prompt_version, prompt_variant, user_id,
                                      input_tokens, output_tokens, cost_total, unpriced, price_version, priced_at)
            SELECT event_id, at, $1, 'app', 'production', 't-' || g, 's-' || g, 'llm',
                   CASE WHEN g / 2 % 20 = 7 THEN 'error' ELSE 'ok' END, 'gpt-4o-mini', 'answer',
                   CASE WHEN variant = 'a' THEN '1' ELSE '2' END, variant, 'u-' || (g % 200000), 400, 200,
                   (0.001 * exp(0.6 * sqrt(-2 * ln(random())) * cos(2 * pi() * random())))::numeric, false, 'bench',
                   at
            FROM ({calls_sql}) c""", *args)  # noqa: S608 (constants)
        await conn.execute(f"""
            INSERT INTO trace_spans (tenant_id, occurred_at, event_id, trace_id, span_id, span_kind, app_id,
                                     environment, status, prompt_name, prompt_version, prompt_variant, user_id,
                                     latency_ms, text_stored)
            SELECT $1, at, event_id, 't-' || g, 's-' || g, 'llm', 'app', 'production',
                   CASE WHEN g / 2 % 20 = 7 THEN 'error' ELSE 'ok' END, 'answer',
                   CASE WHEN variant = 'a' THEN '1' ELSE '2' END, variant, 'u-' || (g % 200000),
                   round(400 * exp(0.5 * sqrt(-2 * ln(random())) * cos(2 * pi() * random()))), false
            FROM ({calls_sql}) c""", *args)  # noqa: S608
        await conn.execute(f"""
            INSERT INTO guardrail_findings (event_id, finding_no, tenant_id, app_id, occurred_at, part, detector,
                                            entity_type, start_offset, end_offset, score, value_hash)
            SELECT event_id, 0, $1, 'app', at, 'input', 'regex', 'EMAIL', 0, 5, 0.9, 'h'
            FROM ({calls_sql}) c WHERE g / 2 % 50 = 3""", *args)  # noqa: S608
        await conn.execute(f"""
            INSERT INTO evaluation_results (event_id, evaluator_id, rubric, rubric_version, tenant_id, app_id,
                                            occurred_at, status, score, judge_model)
            SELECT event_id, 'judge', 'relevance', 1, $1, 'app', at, 'ok', random(), 'judge-model'
            FROM ({calls_sql}) c WHERE g / 2 % 5 = 1""", *args)  # noqa: S608
        print(f"  loaded {first + n:,} calls", flush=True)
    await conn.execute("ANALYZE usage_ledger; ANALYZE trace_spans; ANALYZE guardrail_findings; "
                       "ANALYZE evaluation_results")


GETS = [("GET /healthz (baseline: no key)", "/healthz", {}, 200),
        ("GET /v1/prompts/missing (baseline: key and rate limit, a cached 404)", "/v1/prompts/missing", {}, 404),
        ("GET /v1/prompts/answer?label=production", "/v1/prompts/answer", {"label": "production"}, 200)]


async def gets(client: httpx.AsyncClient, rounds: int) -> dict[str, list[float]]:
    """The requests of `GETS` interleaved, in a rotating order, `rounds` times after 50 rounds of warm-up."""
    out: dict[str, list[float]] = {name: [] for name, *_ in GETS}
    for i in range(rounds + 50):
        shift = i % len(GETS)
        for name, path, params, expected in GETS[shift:] + GETS[:shift]:
            start = time.perf_counter()
            answer = await client.get(path, params=params)
            elapsed = (time.perf_counter() - start) * 1000
            if answer.status_code != expected:
                raise RuntimeError(f"{path}: {answer.status_code}")
            if i >= 50:
                out[name].append(elapsed)
    return out


CASES = ("(a) nothing cached", "the warmer's pass (in process, before (b))", "(b) first report after the warmer",
         "(c) warm: the next report")


async def rounds(client: httpx.AsyncClient, database_url: str, experiment: str, start: datetime,
                 n: int) -> dict[str, tuple[list[float], list[float]]]:
    """Section 3: per case, each round's seconds and load average."""
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in CASES}
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    try:
        await pool.execute("UPDATE prompt_experiments SET started_at = $2 WHERE tenant_id = $1 AND id = $3",
                           TENANT, start, experiment)

        async def report() -> float:
            began = time.perf_counter()
            (await client.get(f"/v1/experiments/{experiment}/report")).raise_for_status()
            return time.perf_counter() - began

        async def timed(case: str, what: Callable[[], Awaitable[float]]) -> None:
            load = os.getloadavg()[0]
            out[case][0].append(await what())
            out[case][1].append(load)

        async def warm() -> float:
            began = time.perf_counter()
            done = await ReportWarmer(pool, clock=utc_now, interval_s=60, tenants=[TENANT]).warm_once()
            assert done.aggregated > 0 and not done.failed, done
            return time.perf_counter() - began

        async def empty() -> None:
            await pool.execute("TRUNCATE prompt_report_hours CASCADE")

        for i in range(n):
            hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            under_way = await pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1 "
                                            "AND occurred_at >= $2 AND occurred_at < now()", TENANT, hour)
            await empty()
            await timed(CASES[0], report)
            await empty()
            await timed(CASES[1], warm)
            await timed(CASES[2], report)
            await timed(CASES[3], report)
            print(f"  round {i + 1} ({under_way:,} calls in the hour under way, read raw): "
                  + ", ".join(f"{out[c][0][-1]:.2f}" for c in CASES), flush=True)
    finally:
        await pool.close()
    return out


async def main_async(args: argparse.Namespace) -> None:
    settings = CommonSettings()
    database_url = db.with_database(settings.database_url, args.db)
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=args.ahead)
    start = end - timedelta(hours=6)
    if not args.reuse:
        await db.drop_database(database_url)
        await db.ensure_database(database_url)
        await migrations.migrate(database_url)
        conn = await asyncpg.connect(database_url)
        try:
            began = time.perf_counter()
            await load(conn, args.calls, start)
            print(f"loaded {args.calls:,} calls in {time.perf_counter() - began:.0f} s", flush=True)
        finally:
            await conn.close()
    conn = await asyncpg.connect(database_url)
    try:
        window = await conn.fetchrow("SELECT min(occurred_at) AS a, max(occurred_at) AS b, count(*) AS n "
                                     "FROM usage_ledger WHERE tenant_id = $1", TENANT)
        start, end = window["a"], window["b"] + timedelta(seconds=1)
        write = (await apikeys.create_key(conn, tenant_id=TENANT, scopes=["prompts:write"], name="bench")).secret
        read = (await apikeys.create_key(conn, tenant_id=TENANT, scopes=["prompts:read"], name="bench")).secret
    finally:
        await conn.close()
    port = free_port()
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url, "LLMOPS_PROMPTS_PORT": str(port),
           "LLMOPS_LOG_LEVEL": "WARNING", "LLMOPS_PROMPTS_REQUESTS_PER_S": "1000000",
           "LLMOPS_PROMPTS_REQUESTS_BURST": "1000000", "LLMOPS_PROMPTS_REPORT_WARMER": "false"}
    if args.api_code:  # a baseline: the API process runs another checkout's prompts service
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(args.api_code, "services", "prompts"),
                                             env.get("PYTHONPATH", "")])
    api = subprocess.Popen([sys.executable, "-m", "llmops_prompts.api"], env=env)  # noqa: ASYNC220
    experiment = f"len-{int(time.time())}"
    try:
        if not wait_for(lambda: port_open(port), 30):
            raise RuntimeError("prompts API did not start")
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {write}"}, timeout=120) as w:
            for template in ("long {{ q }}", "short {{ q }}"):
                (await w.post("/v1/prompts", json={"name": "answer", "type": "text", "template": template,
                                                   "labels": ["production"] if "long" in template else []})
                 ).raise_for_status()
            variants = [{"name": "a", "version": 1, "weight": 1}, {"name": "b", "version": 2, "weight": 1}]
            (await w.post("/v1/experiments", json={"id": experiment, "prompt": "answer", "variants": variants})
             ).raise_for_status()
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {read}"}, timeout=120) as r:
            print(f"\n1. prompt get vs baselines, {args.gets:,} requests each, interleaved, one keep-alive client")
            print("| request | p50 ms | p95 ms | p99 ms | n |\n|---|---|---|---|---|")
            for name, values in (await gets(r, args.gets)).items():
                print(f"| {name} | {pct(values, 0.5):.2f} | {pct(values, 0.95):.2f} | {pct(values, 0.99):.2f} | "
                      f"{len(values)} |")
            params = {"from": start.isoformat(), "to": end.isoformat()}
            http_s: list[float] = []
            for _ in range(args.reports):
                began = time.perf_counter()
                answer = await r.get(f"/v1/experiments/{experiment}/report", params=params)
                http_s.append(time.perf_counter() - began)
                answer.raise_for_status()
            report = answer.json()
            if args.rounds:
                async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {write}"},
                                             timeout=120) as w:
                    other = await asyncpg.connect(database_url)  # a --reuse run's experiment: one runs per label
                    try:
                        await other.execute("UPDATE prompt_experiments SET status = 'stopped', stopped_at = now() "
                                            "WHERE tenant_id = $1 AND status = 'running'", TENANT)
                    finally:
                        await other.close()
                    (await w.post(f"/v1/experiments/{experiment}/start")).raise_for_status()
                cases = await rounds(r, database_url, experiment, start, args.rounds)
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            floor_s, sql_s, stats_s = [], [], []
            for _ in range(args.reports):
                began = time.perf_counter()
                await pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1 AND prompt_name = "
                                    "'answer' AND occurred_at >= $2 AND occurred_at < $3", TENANT, start, end)
                floor_s.append(time.perf_counter() - began)
                began = time.perf_counter()
                data = await call_store.variant_data(pool, tenant_id=TENANT, prompt="answer",
                                                     variants=["a", "b", "holdout"], unit="user", start=start,
                                                     end=end, now=datetime.now(UTC))
                sql_s.append(time.perf_counter() - began)
                began = time.perf_counter()
                build([("a", 1.0), ("b", 1.0)], data, holdout=0.0, rng=np.random.default_rng(1), resamples=2_000)
                stats_s.append(time.perf_counter() - began)
        finally:
            await pool.close()
    finally:
        api.terminate()
        api.wait(timeout=20)
    calls = sum(v["calls"] for v in report["variants"].values())
    med = statistics.median
    print(f"\n2. report over {calls:,} calls ({window['n']:,} ledger rows), {args.reports} runs each, medians (max)")
    print("| what | s |\n|---|---|")
    print(f"| GET /v1/experiments/{{id}}/report (HTTP, end to end) | {med(http_s):.2f} ({max(http_s):.2f}) |")
    print(f"| ... each, in order (the first fills the cache of closed hours) | "
          f"{', '.join(f'{s:.2f}' for s in http_s)} |")
    print(f"| baseline: SELECT count(*) of the same ledger rows | {med(floor_s):.2f} ({max(floor_s):.2f}) |")
    print(f"| in-process: the SQL (variant_data) | {med(sql_s):.2f} ({max(sql_s):.2f}) |")
    print(f"| in-process: the statistics (report.build) | {med(stats_s):.3f} ({max(stats_s):.3f}) |")
    print(f"ratio report / count(*) baseline: {med(http_s) / med(floor_s):.1f}x; trustworthy={report['trustworthy']}; "
          "verdicts " + ", ".join(f"{m['metric']}={m['verdict']}" for m in report["comparisons"]["b"]))
    if args.rounds:
        print(f"\n3. a running experiment's report (from its start to now), {args.rounds} rounds, s: median, p95 (max)")
        print("| case | median | p95 | max | each, in order | load average (1 min) at each |")
        print("|---|---|---|---|---|---|")
        for name, (times, loads) in cases.items():
            print(f"| {name} | {med(times):.2f} | {pct(times, 0.95):.2f} | {max(times):.2f} | "
                  f"{', '.join(f'{t:.2f}' for t in times)} | {', '.join(f'{x:.1f}' for x in loads)} |")
    if not args.keep_db:
        await db.drop_database(database_url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--gets", type=int, default=2_000)
    parser.add_argument("--reports", type=int, default=5)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--api-code", help="a checkout whose services/prompts the API process runs (a baseline)")
    parser.add_argument("--ahead", type=int, default=0,
                        help="minutes of the 6 hours of calls after now (so that the hour under way has calls later)")
    parser.add_argument("--rounds", type=int, default=0, help="section 3: rounds of cold, after-warmer and warm")
    parser.add_argument("--reuse", action="store_true", help="use the data a --keep-db run left")
    parser.add_argument("--db", default=BENCH_DB, help="the database to run in (one of its own per concurrent run)")
    args = parser.parse_args()
    local.infrastructure_up(CommonSettings(), say=lambda _m: None)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
