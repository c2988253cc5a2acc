"""Console benchmark (issue 16): server time per page, p95 (target < 200 ms), with the bench data.

In a database of its own (`llmops_bench_console`, dropped and re-created, dropped at the end unless
`--keep-db`), the trace store benchmark's volume loader (`bench/traces_store.py`: `--spans` spans of ONE
tenant, 1,000 apps, 10,000 users, the 30 days before today; billing ledger rows for the LLM spans, half of
them; the hourly trace and usage rollups and billing's per-trace costs, `usage_trace_costs`, since 2364589)
plus what the other pages read, all for that tenant: billing's daily rollups (by day, by user, by tag) from
the ledger, judge results for one LLM span in twenty of the last 7 days, 20 alerts raised by spans, 3
budgets, 50 prompts with 3 versions each, an experiment on one of them (its variants on the ledger rows of
that prompt's users; started a day ago), 5 monitors (one firing).

Then the console, its own process (`python -m llmops_console.api`, the bench database), signed in with an
API key of the tenant; each page is fetched `--samples` times after two warm-ups, in turns, over HTTP on
loopback. Baseline, same run and same client: `GET /healthz` (no session, no data). The figure is the time
from request to the last byte of the answer, i.e. the server's time plus one loopback round trip (the
baseline's time).

    .venv/bin/python bench/console_pages.py [--spans 10000000] [--samples 20] [--keep-db] [--database NAME]

The load takes long at 10 M spans (half an hour on a quiet machine). `--load-only` loads and seeds a kept
database without measuring; `--reuse-db` measures on a database loaded before (its ids are kept in it, in
`bench_console_ids`; it is migrated, never dropped): load once, then measure the code before and after a change
on the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import traces_store  # noqa: E402

from llmops_devtools.stack import local  # noqa: E402
from llmops_devtools.stack.processes import port_open, wait_for  # noqa: E402
from llmops_devtools.testing import free_port  # noqa: E402
from llmops_shared import apikeys, db, migrations  # noqa: E402
from llmops_shared.settings import CommonSettings  # noqa: E402

BENCH_DB = "llmops_bench_console"
TENANT = traces_store.VOLUME_TENANT
EXPERIMENT_PROMPT = "prompt-7"

_MEASURES = ("count(*), count(*) FILTER (WHERE unpriced), sum(input_tokens), sum(output_tokens), "
             "sum(cache_read_input_tokens), sum(cache_write_input_tokens), sum(reasoning_tokens), "
             "coalesce(sum(cost_input), 0), coalesce(sum(cost_cache_read), 0), coalesce(sum(cost_cache_write), 0), "
             "coalesce(sum(cost_output), 0), coalesce(sum(cost_reasoning), 0), coalesce(sum(cost_request), 0), "
             "coalesce(sum(cost_total), 0)")
_COLUMNS = ("event_count, unpriced_count, input_tokens, output_tokens, cache_read_input_tokens, "
            "cache_write_input_tokens, reasoning_tokens, cost_input, cost_cache_read, cost_cache_write, cost_output, "
            "cost_reasoning, cost_request, cost_total")
# Billing's daily rollups, from the ledger (as migration billing/0003 builds them for a ledger written before).
DAILY_ROLLUPS = (
    f"""INSERT INTO usage_daily (tenant_id, bucket, app_id, environment, provider, model_key, prompt_name,
            prompt_version, prompt_variant, {_COLUMNS})
        SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, app_id, environment, provider, model_key,
               prompt_name, prompt_version, prompt_variant, {_MEASURES}
        FROM usage_ledger WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9""",  # noqa: S608
    f"""INSERT INTO usage_daily_users (tenant_id, bucket, user_id, app_id, environment, provider, model_key,
            {_COLUMNS})
        SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, coalesce(user_id, ''), app_id, environment,
               provider, model_key, {_MEASURES}
        FROM usage_ledger WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4, 5, 6, 7""",  # noqa: S608
    f"""INSERT INTO usage_daily_tags (tenant_id, bucket, tag, app_id, environment, provider, model_key,
            {_COLUMNS})
        SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, t.tag, app_id, environment, provider, model_key,
               {_MEASURES}
        FROM usage_ledger CROSS JOIN LATERAL unnest(CASE WHEN cardinality(tags) = 0 THEN ARRAY[''] ELSE tags END)
             AS t(tag)
        WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4, 5, 6, 7""",  # noqa: S608
    # The monthly by-user rollup, from the daily one (as migration billing/0009 builds it).
    f"""INSERT INTO usage_monthly_users (tenant_id, bucket, user_id, {_COLUMNS})
        SELECT tenant_id, date_trunc('month', bucket)::date, user_id,
               {", ".join(f"sum({c.strip()})" for c in _COLUMNS.split(","))}
        FROM usage_daily_users WHERE tenant_id = $1 GROUP BY 1, 2, 3""",  # noqa: S608
)
JUDGE_RESULTS = """
INSERT INTO evaluation_results (event_id, evaluator_id, rubric, rubric_version, tenant_id, app_id, occurred_at, status,
                                score, raw_score, label, reasoning, judge_model)
SELECT event_id, 'quality', (ARRAY['relevance', 'faithfulness'])[1 + abs(hashtext(span_id)) % 2], 1, tenant_id,
       app_id, occurred_at, 'ok', (abs(hashtext(event_id::text)) % 1000) / 1000.0, 3, 'ok', 'bench', 'gpt-4o-mini'
FROM usage_ledger WHERE tenant_id = $1 AND occurred_at >= $2 AND abs(hashtext(span_id)) % 20 = 0
"""


async def seed_pages(database_url: str, end: datetime) -> dict[str, str]:
    """What the other pages read, for the volume tenant, written with the services' own functions where one
    exists; returns the ids the benchmark's URLs name."""
    from fastapi import Response

    from llmops_billing.budgets import Enforcement, Period, add_budget
    from llmops_guardrails import alerts_service
    from llmops_guardrails.screening import Occurrence, fingerprint
    from llmops_monitors.observe import group_key
    from llmops_monitors.schemas import MonitorCreate
    from llmops_monitors.service import create as create_monitor
    from llmops_monitors.store import firings
    from llmops_prompts.routes import prompts as prompt_api
    from llmops_prompts.schemas import PromptCreate
    from llmops_prompts.settings import PromptsSettings
    from llmops_prompts.store import experiments as experiment_store

    started = time.perf_counter()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            for sql in DAILY_ROLLUPS:
                await conn.execute(sql, TENANT)
            await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", TENANT)
            await conn.execute("INSERT INTO evaluators (evaluator_id, tenant_id, config) VALUES ('quality', $1, '{}') "
                               "ON CONFLICT DO NOTHING", TENANT)
            await conn.execute(JUDGE_RESULTS, TENANT, end - timedelta(days=7))
            spans = await conn.fetch(
                "SELECT event_id, occurred_at, app_id FROM trace_spans WHERE tenant_id = $1 AND span_kind = 'llm' "
                "AND occurred_at >= $2 ORDER BY occurred_at DESC LIMIT 40", TENANT, end - timedelta(days=1))
        alert_ids = []
        for i, span in enumerate(spans):
            rule, kind = ("pii-email", "EMAIL") if i % 2 else ("leaked-secret", "AWS_KEY")
            occurrence = Occurrence(
                fingerprint=fingerprint(TENANT, span["app_id"], rule, f"d{i // 2}"), tenant_id=TENANT,
                app_id=span["app_id"], rule_id=rule, detector=f"d{i // 2}", severity="warning",
                policy_severity="high", kinds=(kind,), findings=1, max_score=0.9, event_id=span["event_id"],
                occurred_at=span["occurred_at"])
            async with pool.acquire() as conn, conn.transaction():
                alert_ids += [m.alert_id for m in await alerts_service.record_occurrences(conn, [occurrence],
                                                                                          window_s=3600)]
        async with pool.acquire() as conn:
            for app, period, amount in (("", Period.MONTH, "5000"), ("app-7", Period.MONTH, "20"),
                                        ("app-8", Period.DAY, "1")):
                await add_budget(conn, tenant_id=TENANT, app_id=app, period=period, amount=Decimal(amount),
                                 thresholds=[50, 80, 100], enforcement=Enforcement.SOFT, name=f"budget {app or 'all'}",
                                 now=end)
        key = await apikeys.create_key(pool, tenant_id=TENANT, scopes=["admin"])
        principal = apikeys.Principal(key_id=key.key_id, tenant_id=TENANT, scopes=frozenset(["admin"]))
        settings = PromptsSettings(database_url=database_url)
        for p in range(50):
            for v in range(3):
                body = PromptCreate.model_validate({
                    "name": f"prompt-{p}", "type": "text", "config": {"model": "gpt-4o-mini", "temperature": v / 10},
                    "template": f"You answer for ACME (v{v}).\nQuestion: {{{{ question }}}}\n" + "Be brief.\n" * v,
                    "labels": ["production"] if v == 1 else [], "commit_message": f"version {v + 1}"})
                await prompt_api.create_version(principal=principal, pool=pool, settings=settings, body=body,
                                                response=Response())
        async with pool.acquire() as conn:
            await conn.execute("UPDATE usage_ledger SET prompt_variant = CASE WHEN abs(hashtext(user_id)) % 2 = 0 "
                               "THEN 'a' ELSE 'b' END WHERE tenant_id = $1 AND prompt_name = $2",
                               TENANT, EXPERIMENT_PROMPT)
        await experiment_store.insert(pool, tenant_id=TENANT, experiment_id="bench-exp", prompt=EXPERIMENT_PROMPT,
                                      label="production", unit="user",
                                      variants=[{"name": "a", "version": 2, "weight": 1},
                                                {"name": "b", "version": 3, "weight": 1}],
                                      holdout=0.0, description="bench", created_by=key.key_id)
        await experiment_store.start(pool, tenant_id=TENANT, experiment_id="bench-exp")
        await pool.execute("UPDATE prompt_experiments SET started_at = $3 WHERE tenant_id = $1 AND id = $2",
                           TENANT, "bench-exp", datetime.now(UTC) - timedelta(days=1))
        monitor_ids = []
        for name, metric, threshold in (("errors", "error_rate", 0.05), ("latency", "latency_p95", 2000),
                                        ("cost", "cost", 50), ("requests", "request_count", 100000),
                                        ("scores", "judge_score", 0.2)):
            body = MonitorCreate.model_validate({"name": name, "metric": metric, "window": "5m/1m",
                                                 "condition": {"op": "<" if metric == "judge_score" else ">",
                                                               "threshold": threshold}, "min_samples": 20})
            monitor_ids.append((await create_monitor(pool, tenant_id=TENANT, body=body, limit=100)).monitor_id)
        key_of, window_end = group_key(TENANT, "app-1"), end - timedelta(minutes=5)
        async with pool.acquire() as conn, conn.transaction():
            await firings.lock_state(conn, monitor_id=monitor_ids[0], group_key=key_of, tenant_id=TENANT,
                                     window_end=window_end)
            firing_id = await firings.open_firing(conn, monitor_id=monitor_ids[0], tenant_id=TENANT, group_key=key_of,
                                                  window_end=window_end, value=0.09, reference=0.05)
            await firings.save_state(conn, monitor_id=monitor_ids[0], group_key=key_of, status="firing",
                                     firing_id=firing_id, clear_streak=0, window_end=window_end)
        async with pool.acquire() as conn:
            await conn.execute("ANALYZE usage_daily; ANALYZE usage_daily_users; ANALYZE usage_daily_tags; "
                               "ANALYZE usage_monthly_users; "
                               "ANALYZE evaluation_results")
            trace_id = await conn.fetchval("SELECT trace_id FROM trace_spans WHERE tenant_id = $1 AND "
                                           "occurred_at >= $2 LIMIT 1", TENANT, end - timedelta(hours=6))
    finally:
        await pool.close()
    print(f"seeded the other pages in {time.perf_counter() - started:.0f} s", flush=True)
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    return {"key": key.secret, "alert": str(alert_ids[0]), "trace": str(trace_id), "last_month": last_month}


def pages(ids: dict[str, str]) -> list[tuple[str, str]]:
    return [("overview", "/"), ("overview (htmx part)", "/overview/live"), ("alerts", "/alerts"),
            ("alert", f"/alerts/{ids['alert']}"), ("traces (last day)", "/traces"),
            ("traces (one app)", "/traces?app=app-7"), ("trace", f"/traces/{ids['trace']}"),
            ("evaluations", "/evaluations"), ("budgets (with burn-downs)", "/budgets"),
            ("costs by model", "/costs"), ("costs by app", "/costs?group=app"), ("costs by user", "/costs?group=user"),
            ("costs by tag", "/costs?group=tag"),
            ("costs by app, last month", f"/costs?group=app&month={ids['last_month']}"),
            ("costs.csv by app, last month", f"/costs.csv?group=app&month={ids['last_month']}"),
            ("prompts", "/prompts"), ("prompt", f"/prompts/{EXPERIMENT_PROMPT}"),
            ("prompt diff", f"/prompts/{EXPERIMENT_PROMPT}/diff"), ("experiment report", "/experiments/bench-exp"),
            ("monitors", "/monitors")]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(url: str, key: str, ids: dict[str, str], samples: int) -> list[tuple[str, str, list[float], int]]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        form = (await client.get("/login")).text
        token = form.split('name="csrf_token" value="')[1].split('"')[0]
        signed = await client.post("/login", data={"csrf_token": token, "api_key": key})
        assert signed.status_code == 303, signed.text
        targets = [("baseline: /healthz", "/healthz"), *pages(ids)]
        times: dict[str, list[float]] = {name: [] for name, _ in targets}
        sizes: dict[str, int] = {}
        for round_no in range(samples + 2):
            for name, path in targets:  # in turns: the machine's load falls on every page alike
                started = time.perf_counter()
                answer = await client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    raise SystemExit(f"{path}: {answer.status_code} {answer.text[:300]}")
                sizes[name] = len(answer.content)
                if round_no >= 2:
                    times[name].append(elapsed)
            print(f"  round {round_no + 1}/{samples + 2}", flush=True)
    return [(name, path, times[name], sizes[name]) for name, path in targets]


async def load(settings: CommonSettings, args: argparse.Namespace) -> str:
    """Loads and seeds the bench database; keeps the page ids and counts in it (`bench_console_ids`)."""
    database_url = await traces_store.prepare_database(settings, args.database)
    _, end = await traces_store.load_volume(database_url, args.spans, True)
    ids = await seed_pages(database_url, end)
    async with asyncpg.create_pool(database_url, min_size=1, max_size=1) as pool:
        ids["spans"] = str(await pool.fetchval("SELECT count(*) FROM trace_spans WHERE tenant_id = $1", TENANT))
        ids["ledger"] = str(await pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", TENANT))
        await pool.execute("CREATE TABLE bench_console_ids (ids jsonb NOT NULL)")
        await pool.execute("INSERT INTO bench_console_ids VALUES ($1::jsonb)", json.dumps(ids))
    return database_url


async def loaded(settings: CommonSettings, args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    if not args.database.startswith("llmops_bench_"):
        raise SystemExit("--database must start with llmops_bench_")
    database_url = db.with_database(settings.database_url, args.database)
    await migrations.migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        ids = json.loads(await conn.fetchval("SELECT ids FROM bench_console_ids"))
    finally:
        await conn.close()
    ids["last_month"] = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    return database_url, ids


async def main_async(args: argparse.Namespace) -> None:
    settings = CommonSettings()
    database_url = None
    proc = None
    try:
        if not args.reuse_db:
            database_url = await load(settings, args)
            if args.load_only:
                return
        database_url, ids = await loaded(settings, args)
        port = free_port()
        env = {**os.environ, "LLMOPS_DATABASE_URL": database_url, "LLMOPS_CONSOLE_PORT": str(port),
               "LLMOPS_CONSOLE_REQUESTS_PER_S": "100000", "LLMOPS_LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen([sys.executable, "-m", "llmops_console.api"], env=env)  # noqa: ASYNC220
        if not wait_for(lambda: port_open(port), 60):
            raise SystemExit("the console did not start")
        results = await measure(f"http://127.0.0.1:{port}", ids["key"], ids, args.samples)
        load_avg = os.getloadavg()
        base = statistics.median(results[0][2])
        print()
        print(f"{int(ids['spans']):,} spans and {int(ids['ledger']):,} ledger rows of one tenant "
              f"({traces_store.APPS:,} apps, {traces_store.USERS:,} users, 30 days before the load's day); "
              f"{args.samples} samples per page after 2 warm-ups; load average at the end {load_avg[0]:.1f}")
        print(f"{'page':<28} {'p50 ms':>8} {'p95 ms':>8} {'p95/baseline p50':>17} {'bytes':>9}  target p95 < 200")
        for name, _path, values, size in results:
            p50, p95 = statistics.median(values), pct(values, 0.95)
            verdict = "" if name.startswith("baseline") else ("  met" if p95 < 200 else "  MISS")
            print(f"{name:<28} {p50:>8.1f} {p95:>8.1f} {p95 / base:>17.1f} {size:>9,}{verdict}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if database_url is not None and not (args.keep_db or args.load_only or args.reuse_db):
            await db.drop_database(database_url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--load-only", action="store_true", help="load and seed a kept database, measure nothing")
    parser.add_argument("--reuse-db", action="store_true", help="measure on a database loaded before (kept)")
    parser.add_argument("--database", default=BENCH_DB,
                        help="the bench database (dropped and re-created unless --reuse-db)")
    args = parser.parse_args()
    local.infrastructure_up(CommonSettings(), say=lambda _m: None)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
