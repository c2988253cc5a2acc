"""Billing benchmark, in one run (about 3 minutes):

1. End-to-end throughput, produce -> ledger and rollups committed, of the billing worker
   (`python -m llmops_billing.worker`, its own process, as in production) against a raw baseline: an
   aiokafka consumer (also its own process) that copies the same messages into Postgres with COPY
   (`asyncpg.copy_records_to_table`) and commits offsets after, with no decoding, pricing or rollups.
   Each round produces the same N events to a fresh topic with the same durable producer, after the
   consumer has joined its group; the clock runs from the first send to the moment the consumer's rows
   are all committed. Rounds alternate; the report gives medians and the ratio (target >= 0.5).
   Also the CPU each part of the machine spent over the same interval (`/proc`, user + system), in µs an event:
   the consumer processes, every Postgres process (backends, WAL writer, autovacuum...), the Kafka broker and this
   process (the producer), against the wall time an event: on a machine of C cores a consumer can go no faster
   than a total of C x its wall time an event allows, whatever it overlaps.
   How the bench sees that moment (`--done-by`): `offsets` (the default) reads the consumer group's committed
   offsets from Kafka every 20 ms (both consumers commit them after their rows' transaction; the same O(1) check
   for both, and then the rows are counted once); `rows` counts the rows every 20 ms, as the bench did before
   2026-12-06 (`count(*)` over the raw table, which has no index, and over the tenant's ledger entries: a scan
   that grows with the round and competes for the two cores with the consumer it measures).
2. A month's usage query over 1,000,000 ledger rows: rows generated with SQL `generate_series`, rollups
   rebuilt from them, then `GET /v1/usage` (one month, by day and model) through the billing API
   process, 50 times: p50/p95 (target p95 < 100 ms). A few other shapes of query are timed too.

    .venv/bin/python bench/billing_throughput.py [--events 20000] [--rounds 3] [--ledger-rows 1000000]
                                                 [--billing-workers 1] [--variant LABEL 'K=V;K2=V2']...

`--variant before 'PYTHONPATH=/path/to/old/services/billing'` times another build of the worker in the
same rounds (interleaved), `--ledger-rows 0` skips the query part. A variant whose environment names
`LLMOPS_MIGRATIONS_DIR` (e.g. `'PYTHONPATH=...;LLMOPS_MIGRATIONS_DIR=/path/to/old/deploy/migrations'`) writes to
a database of its own migrated from there, so a schema change is timed against the old schema in the same
rounds. (The build run right after the raw consumer shares its database, and its autovacuum: in short rounds
that position costs it up to a third; swap the builds' places to see it, bench/RESULTS.md, billing12.)

Everything runs in a database of its own (`llmops_bench_billing_<pid>` unless `--database` names one;
dropped and re-created) and on bench topics, so the suite's services never see these events, and two
runs on one machine do not drop each other's database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
from proc_stat import process_stat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from llmops_devtools.stack import local  # noqa: E402
from llmops_devtools.stack.processes import port_open, wait_for  # noqa: E402
from llmops_devtools.testing import free_port, make_event  # noqa: E402
from llmops_shared import apikeys, db, migrations  # noqa: E402
from llmops_shared.kafka import durable_producer, ensure_topics  # noqa: E402
from llmops_shared.settings import CommonSettings  # noqa: E402
from llmops_shared.topics import TopicSpec  # noqa: E402

MODELS = [("gpt-4o-mini", "openai"), ("gpt-4o", "openai"), ("o3-mini", "openai"),
          ("claude-sonnet-4-20250514", "anthropic"), ("gemini-2.5-pro", "gemini"), ("deepseek-chat", "deepseek")]


def realistic_events(n: int, tenant: str) -> list[dict]:
    out = []
    for i in range(n):
        model, provider = MODELS[i % len(MODELS)]
        out.append({**make_event(
            app_id=f"app-{i % 7}", trace_id=f"tr-{i // 4:08d}-{uuid.uuid4().hex[:8]}", model=model, provider=provider,
            user_id=f"user-{i % 101}", prompt={"name": f"prompt-{i % 5}", "version": str(i % 3)},
            input=[{"role": "system", "content": "You are a careful assistant for ACME support. " * 4},
                   {"role": "user", "content": f"Question {i}: how do I reset my password on device {i % 13}?"}],
            output=f"Answer {i}: open Settings, choose Security, then Reset. " * 3,
            usage={"input_tokens": 180 + i % 50, "output_tokens": 40 + i % 30, "cache_read_input_tokens": 128},
        ), "tenant_id": tenant}
        )
    return out


# --------------------------------------------------------------------------------------------------
# The baseline consumer (run as `--role baseline --topic T --group G --database-url U`)


async def baseline_consumer(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    conn = await asyncpg.connect(args.database_url)
    consumer = AIOKafkaConsumer(args.topic, bootstrap_servers=args.bootstrap, group_id=args.group,
                                enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=500,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        while True:
            got = await consumer.getmany(timeout_ms=500, max_records=500)
            records = [r for part in got.values() for r in part]
            if not records:
                continue
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "bench_raw_events", columns=["topic", "partition", "offset", "key", "value"],
                    records=[(r.topic, r.partition, r.offset, r.key, r.value) for r in records])
            offsets: dict[TopicPartition, int] = {}
            for r in records:
                tp = TopicPartition(r.topic, r.partition)
                offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
            await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await conn.close()


# --------------------------------------------------------------------------------------------------
# Throughput rounds


async def produce(settings: CommonSettings, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    producer = durable_producer(settings.kafka_bootstrap, client_id="bench-billing", linger_ms=5)
    await producer.start()
    try:
        for i in range(0, len(payloads), 1000):
            futures = [await producer.send(topic, value, key=key) for key, value in payloads[i:i + 1000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


FOLLOWED_SQL = """SELECT least((SELECT coalesce(sum(event_count), 0) FROM usage_daily_users WHERE tenant_id = $1),
                                (SELECT coalesce(sum(event_count), 0) FROM usage_trace_costs WHERE tenant_id = $1))"""


async def committed_offsets(admin: AIOKafkaAdminClient, group: str, topic: str) -> int:
    """The group's committed offsets on `topic`, summed: how many of its records the group has finished (the topic
    is new each round and its producer idempotent, not transactional, so its offsets run from 0 without gaps)."""
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(max(0, meta.offset) for tp, meta in offsets.items() if tp.topic == topic)


def cpu_by_part(consumers: list[int]) -> dict[str, float]:
    """CPU seconds (user + system) so far of the consumer processes, Postgres's, the Kafka broker's and this one's."""
    out = {"consumer": 0.0, "postgres": 0.0, "kafka": 0.0, "producer": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            comm, seconds = process_stat(pid)
            part = ("consumer" if pid in consumers else "producer" if pid == os.getpid()
                    else "postgres" if comm.startswith("postgres") else None)
            if part is None and comm == "java":
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    part = "kafka" if b"kafka.Kafka" in f.read() else None
        except (FileNotFoundError, ProcessLookupError):
            continue  # a process that ended meanwhile
        if part is not None:
            out[part] += seconds
    return out


async def timed_round(settings: CommonSettings, database_url: str, role: str, events: list[dict], *,
                      processes: int = 1, extra_env: dict[str, str] | None = None,
                      followed_rates: list[float] | None = None, done_by: str = "offsets",
                      cpu: list[dict[str, float]] | None = None) -> float:
    """Events per second, produce -> rows committed, for the baseline or a billing worker (`extra_env`: a
    variant's environment, e.g. PYTHONPATH pointing at another checkout of the billing package). For a
    billing worker, also the rate until the per-event rollups have every row (appended to `followed_rates`). The
    CPU each part spent until the rows were committed, µs an event, is appended to `cpu` (`cpu_by_part`; "wall" the
    elapsed time an event)."""
    followed_rates = [] if followed_rates is None else followed_rates
    run = uuid.uuid4().hex[:8]
    topic, group, tenant = f"bench.billing.{role}.{run}", f"bench-{role}-{run}", f"bench-{run}"
    await ensure_topics(settings.kafka_bootstrap, (TopicSpec(topic, partitions=6, retention_ms=3_600_000),))
    # Fresh event ids each round: the ledger is idempotent on event_id, so replayed ids would be no-ops.
    payloads = [(e["trace_id"].encode(), orjson.dumps({**e, "event_id": str(uuid.uuid4()), "tenant_id": tenant}))
                for e in events]
    warm = make_event()
    warm_payload = [(b"warm", orjson.dumps({**warm, "tenant_id": tenant}))]
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url, "LLMOPS_LOG_LEVEL": "WARNING",
           "LLMOPS_BILLING_TOPIC": topic, "LLMOPS_BILLING_GROUP": group, **(extra_env or {})}
    if role == "baseline":
        cmd = [sys.executable, __file__, "--role", "baseline", "--topic", topic, "--group", group,
               "--database-url", database_url, "--bootstrap", settings.kafka_bootstrap]
        count_sql, arg = "SELECT count(*) FROM bench_raw_events WHERE topic = $1", topic
    else:
        cmd = [sys.executable, "-m", "llmops_billing.worker"]
        count_sql, arg = "SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant
    procs = [subprocess.Popen(cmd, env=env) for _ in range(processes)]  # noqa: ASYNC220  (one consumer group)
    conn = await asyncpg.connect(database_url)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()

    async def done() -> int:
        if done_by == "offsets":
            return await committed_offsets(admin, group, topic)
        return int(await conn.fetchval(count_sql, arg))

    try:
        await produce(settings, topic, warm_payload)  # the clock starts once the consumer is up and assigned
        deadline = time.monotonic() + 60
        while await conn.fetchval(count_sql, arg) < 1:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a {role} consumer exited")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{role} consumer did not start consuming within 60 s")
            await asyncio.sleep(0.05)
        pids = [p.pid for p in procs]
        cpu_before = cpu_by_part(pids)
        started = time.perf_counter()
        await produce(settings, topic, payloads)
        target = len(payloads) + 1
        deadline = time.monotonic() + 120
        while (finished := await done()) < target:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a {role} consumer exited")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{role} consumer stalled at {finished} of {target} ({done_by})")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu_after = cpu_by_part(pids)
        if cpu is not None:
            cpu.append({"wall": elapsed * 1e6 / len(payloads),
                        **{part: (cpu_after[part] - cpu_before[part]) * 1e6 / len(payloads) for part in cpu_after}})
        rows = await conn.fetchval(count_sql, arg)
        assert rows == target, (role, rows, target)  # every record's row is committed (offsets come after it)
        if role == "billing":  # the rollups were committed in the same transactions: check they add up
            rolled = await conn.fetchval("SELECT sum(event_count) FROM usage_daily WHERE tenant_id = $1", tenant)
            assert rolled == target, (rolled, target)
            # Since billing/0017, `usage_daily_users` and `usage_trace_costs` follow the ledger (the worker's
            # follower, about every second): the time until they have every row too, reported besides.
            while (followed := await conn.fetchval(FOLLOWED_SQL, tenant)) != target:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the per-event rollups stalled at {followed} of {target} rows")
                await asyncio.sleep(0.02)
            followed_rates.append(len(payloads) / (time.perf_counter() - started))
        return len(payloads) / elapsed
    finally:
        await conn.close()
        await admin.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


# --------------------------------------------------------------------------------------------------
# A month's usage query over a million ledger rows

GENERATE_LEDGER = """
INSERT INTO usage_ledger (event_id, occurred_at, tenant_id, app_id, environment, trace_id, span_id, span_kind, status,
    provider, model, model_key, prompt_name, prompt_version, user_id, tags, input_tokens, output_tokens,
    cache_read_input_tokens, cost_input, cost_cache_read, cost_output, cost_cache_write, cost_reasoning, cost_request,
    cost_total, unpriced, price_version, priced_at)
SELECT gen_random_uuid(), ts, $1, 'app-' || (g % 8), CASE WHEN g % 10 = 0 THEN 'staging' ELSE 'production' END,
       'tr-' || g, 'sp-' || g, 'llm', 'ok', 'openai', 'model-' || (g % 12), 'model-' || (g % 12),
       'prompt-' || (g % 5), (g % 3)::text, 'user-' || (g % 1000), ARRAY['team-' || (g % 4)],
       inp, outp, cached,
       (inp - cached) * 0.0000025, cached * 0.00000125, outp * 0.00001, 0, 0, 0,
       (inp - cached) * 0.0000025 + cached * 0.00000125 + outp * 0.00001, false, 'bench-v1', now()
FROM (SELECT g, $2::timestamptz + (g * interval '1 second') * $3 AS ts, 100 + g % 4000 AS inp,
             20 + g % 700 AS outp, (g % 4000) / 3 AS cached
      FROM generate_series(0, $4 - 1) AS g) s
"""

REFRESH_ROLLUPS = """
INSERT INTO {table} (tenant_id, bucket, app_id, environment, provider, model_key, prompt_name, prompt_version,
    prompt_variant, event_count, unpriced_count, input_tokens, output_tokens, cache_read_input_tokens,
    cache_write_input_tokens, reasoning_tokens, cost_input, cost_cache_read, cost_cache_write, cost_output,
    cost_reasoning, cost_request, cost_total)
SELECT tenant_id, {bucket}, app_id, environment, provider, model_key, prompt_name, prompt_version, prompt_variant,
       count(*), count(*) FILTER (WHERE unpriced), sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens),
       sum(cache_write_input_tokens), sum(reasoning_tokens), coalesce(sum(cost_input), 0),
       coalesce(sum(cost_cache_read), 0), coalesce(sum(cost_cache_write), 0), coalesce(sum(cost_output), 0),
       coalesce(sum(cost_reasoning), 0), coalesce(sum(cost_request), 0), coalesce(sum(cost_total), 0)
FROM usage_ledger WHERE tenant_id = $1
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
"""


# The by-user and by-tag daily rollups, as the worker would have written them (one row per tag of each event).
REFRESH_DIMENSION_ROLLUPS = ("""
INSERT INTO usage_daily_users (tenant_id, bucket, user_id, app_id, environment, provider, model_key, event_count,
    unpriced_count, input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens,
    cost_input, cost_cache_read, cost_cache_write, cost_output, cost_reasoning, cost_request, cost_total)
SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, coalesce(user_id, ''), app_id, environment, provider,
       model_key, count(*), count(*) FILTER (WHERE unpriced), sum(input_tokens), sum(output_tokens),
       sum(cache_read_input_tokens), sum(cache_write_input_tokens), sum(reasoning_tokens), coalesce(sum(cost_input), 0),
       coalesce(sum(cost_cache_read), 0), coalesce(sum(cost_cache_write), 0), coalesce(sum(cost_output), 0),
       coalesce(sum(cost_reasoning), 0), coalesce(sum(cost_request), 0), coalesce(sum(cost_total), 0)
FROM usage_ledger WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4, 5, 6, 7
""", """
INSERT INTO usage_daily_tags (tenant_id, bucket, tag, app_id, environment, provider, model_key, event_count,
    unpriced_count, input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens,
    cost_input, cost_cache_read, cost_cache_write, cost_output, cost_reasoning, cost_request, cost_total)
SELECT l.tenant_id, (l.occurred_at AT TIME ZONE 'UTC')::date, t.tag, l.app_id, l.environment, l.provider,
       l.model_key, count(*), count(*) FILTER (WHERE l.unpriced), sum(l.input_tokens), sum(l.output_tokens),
       sum(l.cache_read_input_tokens), sum(l.cache_write_input_tokens), sum(l.reasoning_tokens),
       coalesce(sum(l.cost_input), 0), coalesce(sum(l.cost_cache_read), 0), coalesce(sum(l.cost_cache_write), 0),
       coalesce(sum(l.cost_output), 0), coalesce(sum(l.cost_reasoning), 0), coalesce(sum(l.cost_request), 0),
       coalesce(sum(l.cost_total), 0)
FROM usage_ledger l
CROSS JOIN LATERAL unnest(CASE WHEN cardinality(l.tags) = 0 THEN ARRAY['']::text[] ELSE l.tags END) AS t(tag)
WHERE l.tenant_id = $1 GROUP BY 1, 2, 3, 4, 5, 6, 7
""")


# The narrow rollups (per tenant and hour; per tenant, month and user), as the worker would have written them.
REFRESH_NARROW_ROLLUPS = ("""
INSERT INTO usage_hourly_totals (tenant_id, bucket, event_count, unpriced_count, input_tokens, output_tokens,
    cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, cost_input, cost_cache_read,
    cost_cache_write, cost_output, cost_reasoning, cost_request, cost_total)
SELECT tenant_id, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*),
       count(*) FILTER (WHERE unpriced), sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens),
       sum(cache_write_input_tokens), sum(reasoning_tokens), coalesce(sum(cost_input), 0),
       coalesce(sum(cost_cache_read), 0), coalesce(sum(cost_cache_write), 0), coalesce(sum(cost_output), 0),
       coalesce(sum(cost_reasoning), 0), coalesce(sum(cost_request), 0), coalesce(sum(cost_total), 0)
FROM usage_ledger WHERE tenant_id = $1 GROUP BY 1, 2
""", """
INSERT INTO usage_monthly_users (tenant_id, bucket, user_id, event_count, unpriced_count, input_tokens,
    output_tokens, cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, cost_input, cost_cache_read,
    cost_cache_write, cost_output, cost_reasoning, cost_request, cost_total)
SELECT tenant_id, date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date, coalesce(user_id, ''), count(*),
       count(*) FILTER (WHERE unpriced), sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens),
       sum(cache_write_input_tokens), sum(reasoning_tokens), coalesce(sum(cost_input), 0),
       coalesce(sum(cost_cache_read), 0), coalesce(sum(cost_cache_write), 0), coalesce(sum(cost_output), 0),
       coalesce(sum(cost_reasoning), 0), coalesce(sum(cost_request), 0), coalesce(sum(cost_total), 0)
FROM usage_ledger WHERE tenant_id = $1 GROUP BY 1, 2, 3
""")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def query_latency(settings: CommonSettings, database_url: str, rows: int, samples: int) -> list[tuple]:
    tenant = "bench-month"
    month_start = "2026-10-01T00:00:00Z"
    conn = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        await conn.execute("SELECT billing_ensure_ledger_partitions(ARRAY['2026-10-15T00:00:00Z'::timestamptz])")
        step = 31 * 86400 / rows  # spread over October
        await conn.execute(GENERATE_LEDGER, tenant, datetime.fromisoformat(month_start), step, rows)
        for table, bucket in (("usage_hourly", "date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"),
                              ("usage_daily", "(occurred_at AT TIME ZONE 'UTC')::date")):
            await conn.execute(REFRESH_ROLLUPS.format(table=table, bucket=bucket), tenant)
        for sql in (*REFRESH_DIMENSION_ROLLUPS, *REFRESH_NARROW_ROLLUPS):
            await conn.execute(sql, tenant)
        await conn.execute("ANALYZE usage_ledger; ANALYZE usage_hourly; ANALYZE usage_daily; "
                           "ANALYZE usage_daily_users; ANALYZE usage_daily_tags; ANALYZE usage_hourly_totals; "
                           "ANALYZE usage_monthly_users")
        print(f"generated {rows:,} ledger rows and their rollups in {time.perf_counter() - started:.1f} s", flush=True)
        key = (await apikeys.create_key(conn, tenant_id=tenant, scopes=["billing:read"], name="bench")).secret
        hourly_rows = await conn.fetchval("SELECT count(*) FROM usage_hourly WHERE tenant_id = $1", tenant)
        daily_rows = await conn.fetchval("SELECT count(*) FROM usage_daily WHERE tenant_id = $1", tenant)
        print(f"rollup rows: hourly {hourly_rows:,}, daily {daily_rows:,}", flush=True)
    finally:
        await conn.close()

    port = free_port()
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url, "LLMOPS_BILLING_PORT": str(port),
           "LLMOPS_LOG_LEVEL": "WARNING"}
    api = subprocess.Popen([sys.executable, "-m", "llmops_billing.api"], env=env)  # noqa: ASYNC220
    month = {"from": month_start, "to": "2026-11-01T00:00:00Z"}
    shapes = [
        ("month by day and model (daily rollup)", {**month, "granularity": "day", "group_by": "model", "limit": 1000}),
        ("month by day, app and model (daily rollup)", {**month, "granularity": "day", "group_by": "app,model",
                                                        "limit": 1000}),
        ("month total by model (daily rollup)", {**month, "granularity": "month", "group_by": "model"}),
        ("month by hour", {**month, "granularity": "hour", "limit": 1000}),
        ("month by user", {**month, "granularity": "month", "group_by": "user", "limit": 1000}),
        ("month by day and user", {**month, "granularity": "day", "group_by": "user", "limit": 1000}),
        ("month by hour and model (hourly rollup)", {**month, "granularity": "hour", "group_by": "model",
                                                     "limit": 1000}),
        ("month by day and tag (daily_tags rollup)", {**month, "granularity": "day", "group_by": "tag",
                                                      "limit": 1000}),
    ]
    results = []
    try:
        if not wait_for(lambda: port_open(port), 30):
            raise RuntimeError("billing API did not start")
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
            for name, params in shapes:
                n = samples if "ledger" not in name else max(5, samples // 10)
                await client.get("/v1/usage", params=params)  # warm-up
                times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    resp = await client.get("/v1/usage", params=params)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert resp.status_code == 200, resp.text
                body = resp.json()
                total = sum(r["event_count"] for r in body["rows"])
                results.append((name, body["source"], len(body["rows"]), total, n, pct(times, 0.5), pct(times, 0.95)))
    finally:
        api.terminate()
        api.wait(timeout=20)
    return results


async def prepare_database(settings: CommonSettings, name: str, migrations_dir: str | None = None) -> str:
    database_url = db.with_database(settings.database_url, name)
    await db.drop_database(database_url)
    await db.ensure_database(database_url)
    await migrations.migrate(database_url, Path(migrations_dir) if migrations_dir else None)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE bench_raw_events (topic text, partition int, \"offset\" bigint, key bytea, "
                           "value bytea)")
    finally:
        await conn.close()
    return database_url


async def main_async(args: argparse.Namespace) -> None:
    settings = CommonSettings()
    database_url = await prepare_database(settings, args.database or f"llmops_bench_billing_{os.getpid()}")
    events = realistic_events(args.events, "bench")
    variants = {label: dict(kv.split("=", 1) for kv in spec.split(";") if kv) for label, spec in args.variant or []}
    # A variant whose environment names LLMOPS_MIGRATIONS_DIR (another checkout's schema) writes to a database of
    # its own, migrated from there; the others share the bench's.
    databases = {label: await prepare_database(settings, f"{args.database or f'llmops_bench_billing_{os.getpid()}'}"
                                               f"_{i}", env["LLMOPS_MIGRATIONS_DIR"])
                 for i, (label, env) in enumerate(variants.items()) if env.get("LLMOPS_MIGRATIONS_DIR")}
    rates: dict[str, list[float]] = {"baseline": [], "billing": [], **{label: [] for label in variants}}
    followed: dict[str, list[float]] = {role: [] for role in rates if role != "baseline"}
    cpu: dict[str, list[dict[str, float]]] = {role: [] for role in rates}
    for r in range(args.rounds):
        for role in ("baseline", "billing", *variants):
            processes = 1 if role == "baseline" else args.billing_workers
            kind = "baseline" if role == "baseline" else "billing"
            rates[role].append(await timed_round(settings, databases.get(role, database_url), kind, events,
                                                 processes=processes,
                                                 extra_env=variants.get(role), followed_rates=followed.get(role),
                                                 done_by=args.done_by, cpu=cpu[role]))
        print(f"round {r + 1}: " + ", ".join(f"{role} {rates[role][-1]:,.0f} ev/s" for role in rates)
              + "; with the per-event rollups: "
              + ", ".join(f"{role} {followed[role][-1]:,.0f} ev/s" for role in followed), flush=True)
    latency = await query_latency(settings, database_url, args.ledger_rows, args.samples) if args.ledger_rows else []

    if args.rounds:
        base, billing = statistics.median(rates["baseline"]), statistics.median(rates["billing"])
        print()
        print(f"events: {len(events):,} per round, {args.rounds} rounds, 6 partitions; consumer processes: "
              f"baseline 1, billing {args.billing_workers}; done by {args.done_by}")
        print(f"{'end-to-end (produce -> rows committed)':<46} {'median ev/s':>12}")
        print(f"{'raw aiokafka consumer + COPY (baseline)':<46} {base:>12,.0f}")
        print(f"{'billing worker (ledger + rollups + budgets)':<46} {billing:>12,.0f}")
        print(f"{'ratio billing/baseline (target >= 0.5)':<46} {billing / base:>12.2f}")
        for label in variants:
            rate = statistics.median(rates[label])
            print(f"{'variant ' + label:<46} {rate:>12,.0f}   ratio {rate / base:.2f}")
        print("until usage_daily_users and usage_trace_costs have every row too (they follow the ledger):")
        for role, values in followed.items():
            rate = statistics.median(values)
            print(f"{'  ' + role:<46} {rate:>12,.0f}   ratio {rate / base:.2f}")
        print(f"\nCPU until the rows were committed, µs an event (medians over rounds; {os.cpu_count()} cores):")
        parts = ("consumer", "postgres", "kafka", "producer")
        print(f"{'':<22} {'wall':>7} " + " ".join(f"{part:>9}" for part in parts) + f" {'total':>7} {'total/wall':>11}")
        for role, rounds in cpu.items():
            med = {key: statistics.median(r[key] for r in rounds) for key in ("wall", *parts)}
            total = statistics.median(sum(r[part] for part in parts) for r in rounds)
            print(f"{role:<22} {med['wall']:>7.1f} " + " ".join(f"{med[part]:>9.1f}" for part in parts)
                  + f" {total:>7.1f} {total / med['wall']:>11.2f}")
        print()
    print(f"usage queries over {args.ledger_rows:,} ledger rows of one month, through GET /v1/usage:")
    print(f"{'query':<44} {'source':<13} {'rows':>6} {'events':>9} {'n':>4} {'p50 ms':>8} {'p95 ms':>8}")
    for name, source, n_rows, total, n, p50, p95 in latency:
        print(f"{name:<44} {source:<13} {n_rows:>6} {total:>9,} {n:>4} {p50:>8.1f} {p95:>8.1f}")
    print("(target: p95 < 100 ms for a month's usage query)")
    if not args.keep_db:
        for url in (database_url, *databases.values()):
            await db.drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ledger-rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--database", help="the bench database's name (default: llmops_bench_billing_<pid>)")
    parser.add_argument("--billing-workers", type=int, default=1,
                        help="billing worker processes in the consumer group (the baseline always has one)")
    parser.add_argument("--variant", nargs=2, action="append", metavar=("LABEL", "ENV"),
                        help="also time a billing worker with these environment variables ('K=V;K2=V2'), "
                             "interleaved with the others in every round")
    parser.add_argument("--done-by", choices=["offsets", "rows"], default="offsets",
                        help="how the bench sees a round end: the group's committed offsets, or counting rows")
    parser.add_argument("--role", default="bench", choices=["bench", "baseline"])
    parser.add_argument("--topic")
    parser.add_argument("--group")
    parser.add_argument("--database-url")
    parser.add_argument("--bootstrap")
    args = parser.parse_args()
    if args.role == "baseline":
        asyncio.run(baseline_consumer(args))
        return
    local.infrastructure_up(CommonSettings(), say=lambda _m: None)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
