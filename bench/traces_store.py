"""Trace store benchmark (issue 12), in one run:

1. Writer throughput, produce -> spans committed: the traces worker (`python -m llmops_traces.worker`, its
   own process, the real `SpanWriter` through the shared `StreamWorker`: decode, tenant settings, day
   partitions, idempotent insert, minute and hour rollups, offsets last) against a raw baseline: an aiokafka
   consumer (its own process) that turns the same messages into rows with plain dict look-ups and COPYs
   them into `bench_copy_spans`, a table with the same columns, day partitions and indexes as
   `trace_spans`, committing offsets after; no validation, idempotence, erasure check or rollups. Each
   round produces the same N clean events (four-span traces, some with a guardrails summary) to a fresh
   topic after the consumer joined its group; the clock runs from the first send until every row is
   committed. Rounds alternate; medians and the ratio (target >= 0.5).
2. Produce -> queryable latency at half the writer's maximum (the median of 1.): events produced at that
   steady rate for `--latency-seconds`, each timed from just before its send until a poll of the store
   (every 25 ms, the same table the API reads) first returns it: p50/p95/p99 (target p95 <= 2 s).
3. At volume: `--spans` spans (default 10 million) of 1,000 apps and 10,000 users over the 30 days before
   today (UTC), all of ONE tenant (the hardest case: every query of that tenant sees every row), loaded
   with SQL (`generate_series`, day by day into a table attached as the day's partition, so indexes are
   built once), with billing's ledger rows for the LLM spans (the API joins them for costs) and the hourly
   metrics rollups computed from the spans. Then, through the traces API process over HTTP:
   `GET /v1/spans` and `GET /v1/traces` with typical filters (target p95 < 150 ms), `GET
   /v1/traces/{id}` (p95 < 50 ms), a month of hourly `GET /v1/metrics` (p95 < 100 ms), and bytes stored
   per span (`pg_total_relation_size` of the span partitions / rows).

    .venv/bin/python bench/traces_store.py [--events 20000] [--rounds 3] [--latency-seconds 30]
                                           [--spans 10000000] [--samples 40] [--no-costs] [--keep-db]
                                           [--skip-throughput] [--skip-volume] [--before-source DIR]

Everything runs in a database of its own (`llmops_bench_traces`, dropped and re-created, dropped at the
end unless `--keep-db`) and on bench topics, so the suite's services never see these events.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmops_devtools.stack import local  # noqa: E402
from llmops_devtools.stack.processes import port_open, wait_for  # noqa: E402
from llmops_devtools.testing import free_port, make_event  # noqa: E402
from llmops_shared import apikeys, db, migrations  # noqa: E402
from llmops_shared.kafka import durable_producer, ensure_topics  # noqa: E402
from llmops_shared.settings import CommonSettings  # noqa: E402
from llmops_shared.topics import TopicSpec  # noqa: E402
from llmops_traces import histogram  # noqa: E402

BENCH_DB = "llmops_bench_traces"
MODELS = [("gpt-4o-mini", "openai"), ("gpt-4o", "openai"), ("claude-sonnet-4-20250514", "anthropic"),
          ("gemini-2.5-pro", "gemini")]
KINDS = ("agent", "llm", "tool", "llm")  # a trace: an agent span, two LLM calls and a tool call


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --------------------------------------------------------------------------------------------------
# Clean events (what the guardrails worker publishes: redacted text, a findings summary in metadata)


def clean_events(n: int, tenant: str) -> list[dict]:
    out = []
    trace = ""
    for i in range(n):
        position = i % 4
        if position == 0:
            trace = f"tr-{i // 4:08d}-{uuid.uuid4().hex[:8]}"
        kind = KINDS[position]
        model, provider = MODELS[(i // 4) % len(MODELS)]
        metadata: dict = {"source": "bench"}
        if i % 10 == 0:
            metadata["guardrails"] = {"findings": 1, "by_type": {"EMAIL_ADDRESS": 1}}
        event = make_event(
            app_id=f"app-{(i // 4) % 7}", trace_id=trace, span_id=f"sp-{i}",
            parent_span_id=None if position == 0 else f"sp-{i - position}", span_kind=kind,
            name={"agent": "support-agent", "llm": "chat", "tool": "order-lookup"}[kind],
            user_id=f"user-{(i // 4) % 101}", session_id=f"sess-{(i // 12) % 997}", tags=["bench", f"team-{i % 3}"],
            model=model if kind == "llm" else None, provider=provider if kind == "llm" else None,
            prompt={"name": f"prompt-{i % 5}", "version": str(i % 3)} if kind == "llm" else None,
            input=[{"role": "system", "content": "You are a careful assistant for ACME support. " * 4},
                   {"role": "user", "content": f"Question {i}: my email is <EMAIL_ADDRESS>, where is order {i}?"}],
            output=f"Answer {i}: open Settings, choose Security, then Reset. " * 3,
            usage={"input_tokens": 180 + i % 50, "output_tokens": 40 + i % 30} if kind == "llm" else None,
            latency_ms=float(100 + (i * 7919) % 3000), metadata=metadata)
        out.append({**event, "tenant_id": tenant})
    return out


# --------------------------------------------------------------------------------------------------
# The baseline consumer (run as `--role baseline --topic T --group G --database-url U`)

COPY_COLUMNS = ("tenant_id", "occurred_at", "event_id", "trace_id", "span_id", "parent_span_id", "span_kind", "name",
                "app_id", "environment", "provider", "model", "status", "prompt_name", "prompt_version", "user_id",
                "session_id", "tags", "latency_ms", "input_tokens", "output_tokens", "finding_count",
                "finding_types", "text_stored", "input", "output", "metadata")


def copy_row(value: bytes) -> tuple:
    """The row of one message, by plain look-ups: no validation, no redaction check, no settings."""
    e = orjson.loads(value)
    usage = e.get("usage") or {}
    prompt = e.get("prompt") or {}
    meta = e.get("metadata") or {}
    summary = meta.pop("guardrails", None) or {}
    return (e["tenant_id"], datetime.fromisoformat(e["occurred_at"]), e["event_id"], e["trace_id"], e["span_id"],
            e.get("parent_span_id"), e.get("span_kind", "llm"), e.get("name"), e["app_id"],
            e.get("environment", "production"), e.get("provider"), e.get("model"), e.get("status", "ok"),
            prompt.get("name"), prompt.get("version"), e.get("user_id"), e.get("session_id"), e.get("tags") or [],
            e.get("latency_ms"), usage.get("input_tokens", 0), usage.get("output_tokens", 0),
            summary.get("findings", 0), sorted(summary.get("by_type") or ()), True,
            orjson.dumps(e.get("input")).decode(), orjson.dumps(e.get("output")).decode(),
            orjson.dumps(meta).decode() if meta else None)


async def baseline_consumer(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    conn = await asyncpg.connect(args.database_url)
    consumer = AIOKafkaConsumer(args.topic, bootstrap_servers=args.bootstrap, group_id=args.group,
                                enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=1000,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        while True:
            got = await consumer.getmany(timeout_ms=200, max_records=1000)
            records = [r for part in got.values() for r in part]
            if not records:
                continue
            async with conn.transaction():
                await conn.copy_records_to_table("bench_copy_spans", columns=list(COPY_COLUMNS),
                                                 records=[copy_row(r.value) for r in records])
            offsets: dict[TopicPartition, int] = {}
            for r in records:
                tp = TopicPartition(r.topic, r.partition)
                offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
            await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await conn.close()


# --------------------------------------------------------------------------------------------------
# 1. Writer throughput rounds


def payloads_for(events: list[dict], tenant: str) -> list[tuple[bytes, bytes]]:
    """Fresh event ids (the store is idempotent on them) and this round's tenant; key = trace id."""
    return [(e["trace_id"].encode(), orjson.dumps({**e, "event_id": str(uuid.uuid4()), "tenant_id": tenant,
                                                   "occurred_at": datetime.now(UTC).isoformat()}))
            for e in events]


async def produce(settings: CommonSettings, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    producer = durable_producer(settings.kafka_bootstrap, client_id="bench-traces", linger_ms=5)
    await producer.start()
    try:
        for i in range(0, len(payloads), 1000):
            futures = [await producer.send(topic, value, key=key) for key, value in payloads[i:i + 1000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


BEFORE_SOURCE: Path | None = None
"""`--before-source`: a tree of an earlier commit (`git archive COMMIT | tar -x -C DIR`) whose traces worker
runs as the role "before", interleaved with the others, for a same-run comparison."""


def start_consumer(settings: CommonSettings, database_url: str, role: str, topic: str,
                   group: str) -> subprocess.Popen:
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url, "LLMOPS_LOG_LEVEL": "WARNING",
           "LLMOPS_TRACES_TOPIC": topic, "LLMOPS_TRACES_GROUP": group}
    if role == "before":
        assert BEFORE_SOURCE is not None
        env["PYTHONPATH"] = f"{BEFORE_SOURCE / 'services' / 'traces'}{os.pathsep}{BEFORE_SOURCE / 'shared'}"
    if role == "baseline":
        cmd = [sys.executable, __file__, "--role", "baseline", "--topic", topic, "--group", group,
               "--database-url", database_url, "--bootstrap", settings.kafka_bootstrap]
    else:
        cmd = [sys.executable, "-m", "llmops_traces.worker"]
    return subprocess.Popen(cmd, env=env)


async def started_consumer(settings: CommonSettings, database_url: str, role: str, tenant: str
                           ) -> tuple[subprocess.Popen, str, str]:
    """A consumer of `role` on a fresh topic, once it has stored a first (warm-up) event of `tenant`."""
    run = uuid.uuid4().hex[:8]
    topic, group = f"bench.traces.{role}.{run}", f"bench-traces-{role}-{run}"
    await ensure_topics(settings.kafka_bootstrap, (TopicSpec(topic, partitions=6, retention_ms=3_600_000),))
    proc = start_consumer(settings, database_url, role, topic, group)
    await produce(settings, topic, payloads_for(clean_events(1, tenant), tenant))
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + 60
        while await conn.fetchval(count_sql(role), tenant) < 1:
            if proc.poll() is not None:
                raise RuntimeError(f"the {role} consumer exited")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {role} consumer did not start consuming within 60 s")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return proc, topic, group


def count_sql(role: str) -> str:
    table = "bench_copy_spans" if role == "baseline" else "trace_spans"
    return f"SELECT count(*) FROM {table} WHERE tenant_id = $1"  # noqa: S608  (constant)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


async def timed_round(settings: CommonSettings, database_url: str, role: str, events: list[dict]) -> float:
    """Events per second, produce -> rows committed, for the baseline or the traces worker."""
    tenant = f"bench-{role}-{uuid.uuid4().hex[:8]}"
    payloads = payloads_for(events, tenant)
    proc, topic, _group = await started_consumer(settings, database_url, role, tenant)
    conn = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        await produce(settings, topic, payloads)
        target = len(payloads) + 1
        deadline = time.monotonic() + 300
        while (done := await conn.fetchval(count_sql(role), tenant)) < target:
            if proc.poll() is not None:
                raise RuntimeError(f"the {role} consumer exited")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {role} consumer stalled at {done} of {target} rows")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        if role != "baseline":  # the rollups were written in the same transactions: they must add up
            rolled = await conn.fetchval("SELECT sum(requests) FROM trace_metrics_hourly WHERE tenant_id = $1", tenant)
            assert rolled == target, (rolled, target)
        return len(payloads) / elapsed
    finally:
        await conn.close()
        stop(proc)


# --------------------------------------------------------------------------------------------------
# 2. Produce -> queryable latency at a steady rate


async def visibility_latency(settings: CommonSettings, database_url: str, rate: float, seconds: float
                             ) -> tuple[list[float], int]:
    """Seconds from just before each send until a poll of the store returns the span; and events sent."""
    tenant = f"bench-latency-{uuid.uuid4().hex[:8]}"
    proc, topic, _group = await started_consumer(settings, database_url, "traces", tenant)
    template = clean_events(400, tenant)
    sent: dict[str, tuple[float, datetime]] = {}
    latencies: dict[str, float] = {}
    done = asyncio.Event()

    async def poll() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            while not (done.is_set() and len(latencies) >= len(sent)):
                waiting = [v for k, v in sent.items() if k not in latencies]
                if waiting:
                    since = min(at for _, at in waiting)
                    rows = await conn.fetch("SELECT event_id::text FROM trace_spans WHERE tenant_id = $1 "
                                            "AND occurred_at >= $2", tenant, since)
                    now = time.perf_counter()
                    for row in rows:
                        event_id = row["event_id"]
                        if event_id in sent and event_id not in latencies:
                            latencies[event_id] = now - sent[event_id][0]
                if done.is_set() and time.perf_counter() - last_send > 60:
                    raise RuntimeError(f"{len(sent) - len(latencies)} spans not visible 60 s after the last send")
                await asyncio.sleep(0.025)
        finally:
            await conn.close()

    producer = durable_producer(settings.kafka_bootstrap, client_id="bench-traces-latency", linger_ms=5)
    await producer.start()
    poller = asyncio.create_task(poll())
    last_send = time.perf_counter()
    futures = []
    try:
        started = time.perf_counter()
        i = 0
        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(elapsed * rate)
            while i < due:
                event = template[i % len(template)]
                event_id, at = str(uuid.uuid4()), datetime.now(UTC)
                value = orjson.dumps({**event, "event_id": event_id, "occurred_at": at.isoformat(),
                                      "trace_id": f"{event['trace_id']}-{i // len(template)}"})
                sent[event_id] = (time.perf_counter(), at)
                futures.append(await producer.send(topic, value, key=event["trace_id"].encode()))
                i += 1
            await asyncio.sleep(0.005)
        last_send = time.perf_counter()
        await asyncio.gather(*futures)
        done.set()
        await poller
    finally:
        poller.cancel()
        await producer.stop()
        stop(proc)
    return list(latencies.values()), len(sent)


# --------------------------------------------------------------------------------------------------
# 3. At volume: spans generated with SQL, one day at a time

VOLUME_TENANT = "bench-volume"
APPS, USERS = 1_000, 10_000
DAYS = 30
# Latencies are generated within these ranges, so a histogram needs only the buckets in between (the rollup
# below counts those with one FILTER each: exact for the generated rows).
LATENCY_MS = (80.0, 12_000.0)
TTFT_MS = (25.0, 3_000.0)

# $1 tenant, $2 day start, $3 first span number of the day, $4 spans of the day. Span g belongs to trace
# g / 4 (agent, llm, tool, llm), trace t to session t / 3; a session has one user and one app; an app one
# model, one prompt, a prompt version per week, and 'staging' as environment for one app in ten.
GENERATE_DAY = """
INSERT INTO {table} (tenant_id, occurred_at, event_id, trace_id, span_id, parent_span_id, span_kind, name, app_id,
    environment, provider, model, response_model, status, error_type, error_message, prompt_name, prompt_version,
    user_id, session_id, tags, latency_ms, ttft_ms, input_tokens, output_tokens, cache_read_input_tokens,
    finding_count, finding_types, text_stored, input, output, metadata, stored_at)
SELECT $1, at, gen_random_uuid(), 'tr-' || t, 'sp-' || g, CASE WHEN p = 0 THEN NULL ELSE 'sp-' || (t * 4) END,
       kind, CASE kind WHEN 'agent' THEN 'agent-' || (app % 20) WHEN 'tool' THEN 'search-orders' ELSE 'chat' END,
       'app-' || app, CASE WHEN app % 10 = 0 THEN 'staging' ELSE 'production' END,
       CASE WHEN llm THEN (ARRAY['openai', 'openai', 'anthropic', 'gemini'])[app % 4 + 1] END,
       CASE WHEN llm THEN (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-sonnet-4-20250514',
                                 'gemini-2.5-pro'])[app % 4 + 1] END,
       CASE WHEN llm THEN (ARRAY['gpt-4o-mini-2024-07-18', 'gpt-4o-2024-08-06', 'claude-sonnet-4-20250514',
                                 'gemini-2.5-pro'])[app % 4 + 1] END,
       CASE WHEN err THEN 'error' ELSE 'ok' END, CASE WHEN err THEN 'RateLimitError' END,
       CASE WHEN err THEN 'Rate limit reached for requests' END,
       CASE WHEN llm THEN 'prompt-' || (app % 50) END, CASE WHEN llm THEN (1 + day / 7)::text END,
       'user-' || usr, 'sess-' || s,
       CASE WHEN s % 5 = 0 THEN ARRAY['team-' || (app % 8), 'beta'] ELSE ARRAY['team-' || (app % 8)] END,
       lat, CASE WHEN llm THEN greatest({ttft_lo}, least({ttft_hi}, lat * 0.25)) END,
       CASE WHEN llm THEN 200 + (g * 7919) % 3000 ELSE 0 END, CASE WHEN llm THEN 20 + (g * 104729) % 600 ELSE 0 END,
       CASE WHEN llm THEN 128 ELSE 0 END,
       CASE WHEN g % 40 = 3 THEN 1 ELSE 0 END, CASE WHEN g % 40 = 3 THEN ARRAY['EMAIL_ADDRESS'] ELSE '{{}}' END, true,
       CASE kind
         WHEN 'llm' THEN jsonb_build_array(
           jsonb_build_object('role', 'system', 'content', 'You are a careful assistant for ACME support.'),
           jsonb_build_object('role', 'user', 'content', 'Question ' || g || ': where is order ' || (g % 9973)
                              || '? My email is <EMAIL_ADDRESS>.'))
         WHEN 'tool' THEN jsonb_build_object('order_id', 'o-' || (g % 9973))
         ELSE to_jsonb('Customer asks about order ' || (g % 9973)) END,
       CASE kind
         WHEN 'llm' THEN to_jsonb('Order ' || (g % 9973) || ' ships today; you will get a tracking link by email.')
         WHEN 'tool' THEN jsonb_build_object('status', 'shipped', 'eta_days', g % 5)
         ELSE to_jsonb('It ships today.'::text) END,
       CASE WHEN p = 0 THEN jsonb_build_object('source', 'bench', 'channel', 'web') END,
       at + interval '1 second'
FROM (
    SELECT g, t, p, s, app, usr, day, kind, kind = 'llm' AS llm, g % 53 = 11 AS err,
           $2::timestamptz + make_interval(secs => (t * 4 - $3) * 86400.0 / $4 + p * 0.2) AS at,
           greatest({lat_lo}, least({lat_hi}, exp(ln(150.0) + (hashint4(g::int) & 65535) / 65535.0 * 3.5)))
             * CASE WHEN p = 0 THEN 3 ELSE 1 END AS lat
    FROM (
        SELECT g, g / 4 AS t, (g % 4)::int AS p, g / 12 AS s, ((g / 12) * 7919) % {apps} AS app,
               ((g / 12) * 104729) % {users} AS usr, $5::int AS day,
               (ARRAY['agent', 'llm', 'tool', 'llm'])[(g % 4)::int + 1] AS kind
        FROM generate_series($3::bigint, $3::bigint + $4 - 1) AS g) a) b
"""

ATTACH_DAY = "ALTER TABLE trace_spans ATTACH PARTITION {table} FOR VALUES FROM ('{lo}') TO ('{hi}')"

LEDGER_DAY = """
INSERT INTO usage_ledger (event_id, occurred_at, tenant_id, app_id, environment, trace_id, span_id, span_kind, status,
    provider, model, response_model, model_key, prompt_name, prompt_version, user_id, tags, input_tokens,
    output_tokens, cache_read_input_tokens, cost_input, cost_cache_read, cost_output, cost_cache_write,
    cost_reasoning, cost_request, cost_total, unpriced, price_version, priced_at)
SELECT event_id, occurred_at, tenant_id, app_id, environment, trace_id, span_id, span_kind, status, provider, model,
       response_model, model, prompt_name, prompt_version, user_id, tags, input_tokens, output_tokens,
       cache_read_input_tokens, (input_tokens - 128) * 0.0000025, 128 * 0.00000125, output_tokens * 0.00001, 0, 0, 0,
       (input_tokens - 128) * 0.0000025 + 128 * 0.00000125 + output_tokens * 0.00001, false, 'bench-v1', occurred_at
FROM {table} WHERE span_kind = 'llm'
"""

USAGE_HOURLY = """
INSERT INTO usage_hourly (tenant_id, bucket, app_id, environment, provider, model_key, prompt_name, prompt_version,
    prompt_variant, event_count, unpriced_count, input_tokens, output_tokens, cache_read_input_tokens,
    cache_write_input_tokens, reasoning_tokens, cost_input, cost_cache_read, cost_cache_write, cost_output,
    cost_reasoning, cost_request, cost_total)
SELECT tenant_id, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', app_id, environment,
       provider, model_key, prompt_name, prompt_version, prompt_variant, count(*), 0, sum(input_tokens),
       sum(output_tokens), sum(cache_read_input_tokens), 0, 0, sum(cost_input), sum(cost_cache_read), 0,
       sum(cost_output), 0, 0, sum(cost_total)
FROM usage_ledger WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
"""
# Billing's per-tenant hourly total, from the hourly rollup (as migration billing/0008 builds it).
USAGE_HOURLY_TOTALS = """
INSERT INTO usage_hourly_totals (tenant_id, bucket, event_count, unpriced_count, input_tokens, output_tokens,
    cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, cost_input, cost_cache_read,
    cost_cache_write, cost_output, cost_reasoning, cost_request, cost_total)
SELECT tenant_id, bucket, sum(event_count), sum(unpriced_count), sum(input_tokens), sum(output_tokens),
       sum(cache_read_input_tokens), sum(cache_write_input_tokens), sum(reasoning_tokens), sum(cost_input),
       sum(cost_cache_read), sum(cost_cache_write), sum(cost_output), sum(cost_reasoning), sum(cost_request),
       sum(cost_total)
FROM usage_hourly WHERE tenant_id = $1 GROUP BY 1, 2
"""
# Billing's per-tenant, hour, environment and model rollup, from the ledger (as migration billing/0010 builds it).
USAGE_HOURLY_MODELS = """
INSERT INTO usage_hourly_models (tenant_id, bucket, environment, model, event_count, unpriced_count, input_tokens,
    output_tokens, cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, cost_input, cost_cache_read,
    cost_cache_write, cost_output, cost_reasoning, cost_request, cost_total)
SELECT tenant_id, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', environment, model, count(*),
       count(*) FILTER (WHERE unpriced), sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens),
       sum(cache_write_input_tokens), sum(reasoning_tokens), coalesce(sum(cost_input), 0),
       coalesce(sum(cost_cache_read), 0), coalesce(sum(cost_cache_write), 0), coalesce(sum(cost_output), 0),
       coalesce(sum(cost_reasoning), 0), coalesce(sum(cost_request), 0), coalesce(sum(cost_total), 0)
FROM usage_ledger WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4
"""
# Billing's per-tenant, trace and UTC day cost, from the ledger (as migration billing/0010 builds it): the trace list
# sorted by cost reads it (left empty, every trace's cost was NULL and that sort cost nothing).
USAGE_TRACE_COSTS = """
INSERT INTO usage_trace_costs (tenant_id, trace_id, bucket, event_count, unpriced_count, input_tokens, output_tokens,
    cache_read_input_tokens, cache_write_input_tokens, reasoning_tokens, cost_input, cost_cache_read,
    cost_cache_write, cost_output, cost_reasoning, cost_request, cost_total)
SELECT tenant_id, trace_id, (occurred_at AT TIME ZONE 'UTC')::date, count(*), count(*) FILTER (WHERE unpriced),
       sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens), sum(cache_write_input_tokens),
       sum(reasoning_tokens), coalesce(sum(cost_input), 0), coalesce(sum(cost_cache_read), 0),
       coalesce(sum(cost_cache_write), 0), coalesce(sum(cost_output), 0), coalesce(sum(cost_reasoning), 0),
       coalesce(sum(cost_request), 0), coalesce(sum(cost_total), 0)
FROM usage_ledger WHERE tenant_id = $1 AND trace_id IS NOT NULL GROUP BY 1, 2, 3
"""
# The trace store's tenant-level daily rollup and hourly totals, from its tenant hourly rollup (as migration
# traces/0007 builds them).
_TENANT_MEASURES = ("sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), sum(latency_count), "
                    "sum(latency_sum_ms), traces_hist_sum(latency_hist), sum(ttft_count), traces_hist_sum(ttft_hist)")
_TENANT_COLUMNS = ("requests, errors, input_tokens, output_tokens, latency_count, latency_sum_ms, latency_hist, "
                   "ttft_count, ttft_hist")
TENANT_COARSE = (
    f"""INSERT INTO trace_metrics_tenant_daily (tenant_id, bucket, environment, model, {_TENANT_COLUMNS})
        SELECT tenant_id, date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', environment, model,
               {_TENANT_MEASURES}
        FROM trace_metrics_tenant_hourly WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4""",  # noqa: S608
    f"""INSERT INTO trace_metrics_tenant_hour_totals (tenant_id, bucket, {_TENANT_COLUMNS})
        SELECT tenant_id, bucket, {_TENANT_MEASURES}
        FROM trace_metrics_tenant_hourly WHERE tenant_id = $1 GROUP BY 1, 2""",  # noqa: S608
)


def bucket_sql(column: str) -> str:
    """`histogram.bucket_of` in SQL, for values of 1 ms and more."""
    return f"least({histogram.BUCKETS - 1}, floor({histogram.PER_DECADE} * log({column}))::int + 1)"


def hist_sql(bucket: str, lo: float, hi: float) -> str:
    """A histogram as a bigint[] of `histogram.BUCKETS` from a column of bucket numbers, counting (one FILTER
    each) only the buckets that values within [lo, hi] fall in."""
    first, last = histogram.bucket_of(lo), histogram.bucket_of(hi)
    cells = [f"count(*) FILTER (WHERE {bucket} = {b})" if first <= b <= last else "0"
             for b in range(histogram.BUCKETS)]
    return f"ARRAY[{', '.join(cells)}]::bigint[]"


def rollup_day_sql(table: str) -> str:
    return f"""
    INSERT INTO trace_metrics_hourly (tenant_id, bucket, app_id, environment, model, prompt_name, prompt_version,
        requests, errors, input_tokens, output_tokens, latency_count, latency_sum_ms, latency_hist, ttft_count,
        ttft_hist)
    SELECT tenant_id, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', app_id, environment,
           coalesce(model, ''), coalesce(prompt_name, ''), coalesce(prompt_version, ''), count(*),
           count(*) FILTER (WHERE status = 'error'), sum(input_tokens), sum(output_tokens), count(latency_ms),
           coalesce(sum(latency_ms), 0), {hist_sql("lb", *LATENCY_MS)}, count(ttft_ms), {hist_sql("tb", *TTFT_MS)}
    FROM (SELECT *, {bucket_sql("latency_ms")} AS lb, {bucket_sql("ttft_ms")} AS tb FROM {table}) s
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (tenant_id, bucket, app_id, environment, model, prompt_name, prompt_version) DO NOTHING
    """  # noqa: S608  (constant names)


def tenant_rollup_day_sql(table: str) -> str:
    return f"""
    INSERT INTO trace_metrics_tenant_hourly (tenant_id, bucket, environment, model, requests, errors, input_tokens,
        output_tokens, latency_count, latency_sum_ms, latency_hist, ttft_count, ttft_hist)
    SELECT tenant_id, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', environment,
           coalesce(model, ''), count(*), count(*) FILTER (WHERE status = 'error'), sum(input_tokens),
           sum(output_tokens), count(latency_ms), coalesce(sum(latency_ms), 0), {hist_sql("lb", *LATENCY_MS)},
           count(ttft_ms), {hist_sql("tb", *TTFT_MS)}
    FROM (SELECT *, {bucket_sql("latency_ms")} AS lb, {bucket_sql("ttft_ms")} AS tb FROM {table}) s
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (tenant_id, bucket, environment, model) DO NOTHING
    """  # noqa: S608  (constant names)


async def summaries_day_sql(conn: asyncpg.Connection, spans_table: str, table: str) -> str:
    """The writer's per-trace-and-day summaries of one day's spans: the migration's own aggregation (the view
    `trace_summaries_of_spans`) over the day's table."""
    view = await conn.fetchval("SELECT pg_get_viewdef('trace_summaries_of_spans'::regclass)")
    assert " trace_spans s" in view
    body = view.rstrip().rstrip(";").replace(" trace_spans s", f" {spans_table} s")
    return f"INSERT INTO {table} SELECT * FROM ({body}) v"  # noqa: S608  (constant names, the catalogue's view)


async def load_day(pool: asyncpg.Pool, day: datetime, *, day_no: int, first: int, count: int, costs: bool) -> None:
    table = f"trace_spans_{day:%Y_%m_%d}"
    sql = GENERATE_DAY.format(table=table, apps=APPS, users=USERS, lat_lo=LATENCY_MS[0], lat_hi=LATENCY_MS[1],
                              ttft_lo=TTFT_MS[0], ttft_hi=TTFT_MS[1])
    async with pool.acquire() as conn:
        await conn.execute("SET maintenance_work_mem = '256MB'; SET synchronous_commit = off")
        await conn.execute(f"CREATE TABLE {table} (LIKE trace_spans INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        await conn.execute(sql, VOLUME_TENANT, day, first, count, day_no)
        await conn.execute(rollup_day_sql(table))
        await conn.execute(tenant_rollup_day_sql(table))
        summaries = f"trace_summaries_{day:%Y_%m_%d}"
        await conn.execute(f"CREATE TABLE {summaries} (LIKE trace_summaries INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        await conn.execute(await summaries_day_sql(conn, table, summaries))
        if costs:
            await conn.execute(LEDGER_DAY.format(table=table))
        # Attaching builds the day's indexes (all rows at once) and checks the bounds.
        bounds = {"lo": day.isoformat(), "hi": (day + timedelta(days=1)).isoformat()}
        await conn.execute(ATTACH_DAY.format(table=table, **bounds))
        await conn.execute(ATTACH_DAY.format(table=summaries, **bounds).replace("trace_spans", "trace_summaries", 1))
        await conn.execute(f"ANALYZE {table}; ANALYZE {summaries}")


async def load_volume(database_url: str, spans: int, costs: bool) -> tuple[datetime, datetime]:
    """`spans` spans over the DAYS days before today (UTC); returns the range."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    per_day = (spans // DAYS) // 12 * 12  # whole sessions per day
    started = time.perf_counter()
    async with asyncpg.create_pool(database_url, min_size=2, max_size=2) as pool:
        async with pool.acquire() as conn:
            if costs:
                await conn.execute("SELECT billing_ensure_ledger_partitions($1::timestamptz[])",
                                   [start, end - timedelta(seconds=1)])
        queue = list(range(DAYS))

        async def loader() -> None:
            while queue:
                d = queue.pop(0)
                day = start + timedelta(days=d)
                await load_day(pool, day, day_no=(day - datetime(2026, 1, 1, tzinfo=UTC)).days, first=d * per_day,
                               count=per_day, costs=costs)
                print(f"  day {d + 1}/{DAYS} loaded ({time.perf_counter() - started:.0f} s)", flush=True)

        await asyncio.gather(loader(), loader())
        async with pool.acquire() as conn:
            if costs:
                await conn.execute(USAGE_HOURLY, VOLUME_TENANT)
                await conn.execute(USAGE_HOURLY_TOTALS, VOLUME_TENANT)
                await conn.execute(USAGE_HOURLY_MODELS, VOLUME_TENANT)
                await conn.execute(USAGE_TRACE_COSTS, VOLUME_TENANT)
            for sql in TENANT_COARSE:
                await conn.execute(sql, VOLUME_TENANT)
            # Each day was analysed when loaded; the ledger's months and the rollups now. Partitioned parents
            # are left without statistics of their own, as autovacuum leaves them in production.
            for (leaf,) in await conn.fetch("SELECT relid::text FROM pg_partition_tree('usage_ledger') WHERE isleaf"):
                await conn.execute(f"ANALYZE {leaf}")
            await conn.execute("ANALYZE trace_metrics_hourly; ANALYZE trace_metrics_tenant_hourly; "
                               "ANALYZE usage_hourly; ANALYZE usage_hourly_totals; ANALYZE usage_hourly_models; "
                               "ANALYZE usage_trace_costs; ANALYZE trace_metrics_tenant_daily; "
                               "ANALYZE trace_metrics_tenant_hour_totals")
    print(f"loaded {per_day * DAYS:,} spans ({'with' if costs else 'without'} ledger rows) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    await compact(database_url)
    return start, end


async def compact(database_url: str) -> None:
    """The ended days compacted per app and day (`llmops_traces.compaction`, as `llmops retention` does, but
    two days at a time), timed."""
    from llmops_traces import compaction

    started = time.perf_counter()
    async with asyncpg.create_pool(database_url, min_size=2, max_size=2) as pool:
        done = await compaction.compact(pool, now=datetime.now(UTC), concurrency=2)
        await pool.execute("ANALYZE trace_metrics_app_days; ANALYZE trace_metrics_compacted_days")
    print(f"compacted {len(done)} tenant days ({sum(n for *_, n in done):,} app rows) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)


async def migrate_and_compact(database_url: str) -> None:
    """This tree's pending migrations applied to a reused database, then the compaction; each timed."""
    started = time.perf_counter()
    applied = await migrations.migrate(database_url)
    print(f"applied {', '.join(f'{m.component}/{m.version}' for m in applied) or 'nothing'} in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    await compact(database_url)


STORAGE = """
SELECT count(*) AS partitions,
       sum(pg_table_size(relid)) AS table_bytes, sum(pg_indexes_size(relid)) AS index_bytes,
       sum(pg_total_relation_size(relid)) AS total_bytes
FROM pg_partition_tree($1::regclass) WHERE isleaf
"""


async def storage(database_url: str) -> dict[str, float]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM trace_spans WHERE tenant_id = $1", VOLUME_TENANT)
        spans = await conn.fetchrow(STORAGE, "trace_spans")
        hourly = await conn.fetchval("SELECT pg_total_relation_size('trace_metrics_hourly')")
        hourly_rows = await conn.fetchval("SELECT count(*) FROM trace_metrics_hourly WHERE tenant_id = $1",
                                          VOLUME_TENANT)
        summaries = await conn.fetchrow(STORAGE, "trace_summaries")
        summary_rows = await conn.fetchval("SELECT count(*) FROM trace_summaries WHERE tenant_id = $1", VOLUME_TENANT)
        tenant_rows = await conn.fetchval("SELECT count(*) FROM trace_metrics_tenant_hourly WHERE tenant_id = $1",
                                          VOLUME_TENANT)
    finally:
        await conn.close()
    return {"rows": rows, "table": spans["table_bytes"] / rows, "indexes": spans["index_bytes"] / rows,
            "total": spans["total_bytes"] / rows, "rollup_rows": hourly_rows, "rollup_total": hourly / rows,
            "summary_rows": summary_rows, "summary_total": summaries["total_bytes"] / rows,
            "tenant_rollup_rows": tenant_rows}


def shapes(start: datetime, end: datetime, rng: random.Random) -> list[tuple[str, str, str, Callable[[], dict]]]:
    """(name, target, path, params()) of the queries timed: each call picks another app, user or trace."""
    iso = lambda at: at.isoformat().replace("+00:00", "Z")  # noqa: E731
    day = {"from": iso(end - timedelta(days=1)), "to": iso(end)}
    week = {"from": iso(end - timedelta(days=7)), "to": iso(end)}
    month = {"from": iso(start + timedelta(hours=1)), "to": iso(end)}  # inside the 30-day retention
    app = lambda: f"app-{rng.randrange(APPS)}"  # noqa: E731
    user = lambda: f"user-{rng.randrange(USERS)}"  # noqa: E731
    return [
        ("spans: last 24 h", "150", "/v1/spans", lambda: day),
        ("spans: last 24 h, one app", "150", "/v1/spans", lambda: {**day, "app": app()}),
        ("spans: last 7 d, one user", "150", "/v1/spans", lambda: {**week, "user": user()}),
        ("spans: last 24 h, errors", "150", "/v1/spans", lambda: {**day, "status": "error"}),
        ("spans: last 24 h, llm + model", "150", "/v1/spans", lambda: {**day, "kind": "llm", "model": "gpt-4o"}),
        ("spans: last 7 d, one app, by latency", "150", "/v1/spans",
         lambda: {**week, "app": app(), "sort": "latency"}),
        ("spans: 30 d, one app, has findings", "150", "/v1/spans",
         lambda: {**month, "app": app(), "has_findings": "true"}),
        ("traces: last 24 h", "150", "/v1/traces", lambda: day),
        ("traces: last 24 h, one app", "150", "/v1/traces", lambda: {**day, "app": app()}),
        ("traces: last 7 d, one user", "150", "/v1/traces", lambda: {**week, "user": user()}),
        ("traces: last 24 h, errors", "150", "/v1/traces", lambda: {**day, "status": "error"}),
        ("traces: last 7 d, one app, by cost", "150", "/v1/traces", lambda: {**week, "app": app(), "sort": "cost"}),
        ("trace detail (4 spans)", "50", "/v1/traces/{trace}", dict),
        ("metrics: 30 d hourly, one app", "100", "/v1/metrics",
         lambda: {**month, "granularity": "hour", "app": app()}),
        ("metrics: 30 d hourly, one app, by model", "100", "/v1/metrics",
         lambda: {**month, "granularity": "hour", "app": app(), "group_by": "model"}),
        ("metrics: 30 d hourly, whole tenant", "100", "/v1/metrics", lambda: {**month, "granularity": "hour"}),
        ("metrics: 30 d daily, whole tenant, by model", "100", "/v1/metrics",
         lambda: {**month, "granularity": "day", "group_by": "model"}),
    ]


async def query_latency(database_url: str, start: datetime, end: datetime, per_day: int, samples: int, *,
                        only: str = "", seed: int = 12) -> list[tuple[str, str, int, float, float, int]]:
    conn = await asyncpg.connect(database_url)
    try:
        key = (await apikeys.create_key(conn, tenant_id=VOLUME_TENANT, scopes=["traces:read"], name="bench")).secret
    finally:
        await conn.close()
    port = free_port()
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url, "LLMOPS_TRACES_PORT": str(port),
           "LLMOPS_LOG_LEVEL": "WARNING", "LLMOPS_TRACES_REQUESTS_PER_S": "1000000",
           "LLMOPS_TRACES_REQUESTS_BURST": "1000000"}
    api = subprocess.Popen([sys.executable, "-m", "llmops_traces.api"], env=env)  # noqa: ASYNC220
    rng = random.Random(seed)
    traces_total = per_day * DAYS // 4
    results = []
    try:
        if not wait_for(lambda: port_open(port), 30):
            raise RuntimeError("traces API did not start")
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120) as client:
            for name, target, path, params in shapes(start, end, rng):
                if only not in name:
                    continue
                times, items, failed = [], 0, 0
                for i in range(samples + 1):  # the first is a warm-up
                    # Not the first day's traces: later than midnight of the bench's end, part of that day is
                    # past the 30-day retention horizon, which the API hides (404) before retention drops it.
                    url = path.format(trace=f"tr-{rng.randrange(traces_total // DAYS, traces_total)}")
                    t0 = time.perf_counter()
                    resp = await client.get(url, params=params())
                    elapsed = (time.perf_counter() - t0) * 1000
                    if resp.status_code != 200:  # e.g. 503 when the query outlives the API's statement timeout
                        print(f"  {name}: {resp.status_code} after {elapsed:,.0f} ms: {resp.text[:200]}", flush=True)
                        failed += 1
                        if failed >= 2:
                            break
                        continue
                    if i or elapsed > 10_000:  # a query this slow has no warm-up to wait for
                        times.append(elapsed)
                    if len(times) >= 2 and sum(times) > 15_000:  # a slow shape: 15 s of samples are enough
                        break
                    body = resp.json()
                    items += len(body.get("items") or body.get("spans") or body.get("series") or [])
                if not times:
                    results.append((name, target, 0, float("nan"), float("nan"), 0))
                    continue
                results.append((name, target, len(times), pct(times, 0.5), pct(times, 0.95),
                                items // (len(times) + 1)))
                print(f"  {name:<44} p50 {results[-1][3]:8.1f} ms  p95 {results[-1][4]:8.1f} ms", flush=True)
    finally:
        api.terminate()
        api.wait(timeout=20)
    return results


# --------------------------------------------------------------------------------------------------


async def prepare_database(settings: CommonSettings, name: str) -> str:
    if not name.startswith("llmops_bench_"):
        raise SystemExit("--database must start with llmops_bench_ (it is dropped and re-created)")
    database_url = db.with_database(settings.database_url, name)
    await db.drop_database(database_url)
    await db.ensure_database(database_url)
    await migrations.migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:  # the baseline's table: trace_spans' columns, day partitions and indexes
        await conn.execute("CREATE TABLE bench_copy_spans (LIKE trace_spans INCLUDING ALL) PARTITION BY RANGE "
                           "(occurred_at)")
        now = datetime.now(UTC)
        await conn.execute("SELECT traces_ensure_day_partitions('bench_copy_spans', $1, '-infinity', 'infinity')",
                           [now - timedelta(days=1), now, now + timedelta(days=1)])
    finally:
        await conn.close()
    return database_url


async def main_async(args: argparse.Namespace) -> None:
    settings = CommonSettings()
    if args.reuse_volume:  # the volume of an earlier `--keep-db` run, same --spans and day: queries only
        database_url = db.with_database(settings.database_url, args.database)
        args.skip_throughput = True
    else:
        database_url = await prepare_database(settings, args.database)
    report: list[str] = []
    try:
        if not args.skip_throughput:
            events = clean_events(args.events, "bench")
            roles = ("baseline", "traces", *(("before",) if BEFORE_SOURCE else ()))
            rates: dict[str, list[float]] = {role: [] for role in roles}
            for r in range(args.rounds):
                for role in roles:
                    rates[role].append(await timed_round(settings, database_url, role, events))
                print(f"round {r + 1}: " + ", ".join(f"{role} {rates[role][-1]:,.0f} ev/s" for role in roles),
                      flush=True)
            base, writer = statistics.median(rates["baseline"]), statistics.median(rates["traces"])
            rate = writer / 2
            latencies, sent = await visibility_latency(settings, database_url, rate, args.latency_seconds)
            report += [
                f"events: {len(events):,} per round, {args.rounds} rounds, 6 partitions, one consumer process each",
                f"{'end-to-end (produce -> rows committed)':<50} {'median ev/s':>12}   rounds",
                f"{'raw aiokafka consumer + COPY (baseline)':<50} {base:>12,.0f}   "
                + ", ".join(f"{x:,.0f}" for x in rates["baseline"]),
                f"{'traces worker (spans + rollups)':<50} {writer:>12,.0f}   "
                + ", ".join(f"{x:,.0f}" for x in rates["traces"]),
                f"{'ratio worker/baseline (target >= 0.5)':<50} {writer / base:>12.2f}",
                *([f"{'traces worker before (' + str(BEFORE_SOURCE) + ')':<50} "
                   f"{statistics.median(rates['before']):>12,.0f}   " + ", ".join(f"{x:,.0f}" for x in rates["before"]),
                   f"{'ratio before/baseline':<50} {statistics.median(rates['before']) / base:>12.2f}"]
                  if BEFORE_SOURCE else []),
                f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
                "",
                f"produce -> queryable at {rate:,.0f} ev/s (half the worker's median) "
                f"for {args.latency_seconds:.0f} s, "
                f"{sent:,} events: p50 {pct(latencies, 0.5):.3f} s, p95 {pct(latencies, 0.95):.3f} s, "
                f"p99 {pct(latencies, 0.99):.3f} s, max {max(latencies):.3f} s "
                "(target p95 <= 2 s; polled every 25 ms)",
            ]
            print("\n".join(report), flush=True)
        if not args.skip_volume:
            if args.reuse_volume:
                end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
                start = end - timedelta(days=DAYS)
            else:
                start, end = await load_volume(database_url, args.spans, not args.no_costs)
            per_day = (args.spans // DAYS) // 12 * 12
            if args.migrate:
                await migrate_and_compact(database_url)
            size: dict[str, float] = {}
            if not args.shapes:  # (counting the rollup's rows takes a while at volume)
                size = await storage(database_url)
                print(f"bytes per span: {size['total']:,.0f} (table {size['table']:,.0f}, indexes "
                      f"{size['indexes']:,.0f}); hourly rollup rows {size['rollup_rows']:,}, "
                      f"{size['rollup_total']:,.0f} bytes per span", flush=True)
            latency = await query_latency(database_url, start, end, per_day, args.samples, only=args.shapes,
                                          seed=args.seed)
            if args.shapes:  # the shapes asked for only, no storage figures
                report += [f"{name:<46} n {n:>3} p50 {p50:8.1f} p95 {p95:8.1f} ms (target < {target})"
                           f"{'' if p95 < float(target) else '  MISS'}" for name, target, n, p50, p95, _ in latency]
                report.append(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
                latency = []
            report += [] if not latency else [
                "",
                f"at volume: {size['rows']:,} spans of one tenant, {APPS:,} apps, {USERS:,} users, {DAYS} days "
                f"({start:%Y-%m-%d} .. {end:%Y-%m-%d}), {size['rollup_rows']:,} hourly rollup rows; "
                f"ledger rows for LLM spans: {'yes' if not args.no_costs else 'no'}",
                f"bytes per span: {size['total']:,.0f} (table {size['table']:,.0f} incl. TOAST, indexes "
                f"{size['indexes']:,.0f}); hourly rollups add {size['rollup_total']:,.0f}",
                f"trace summaries: {size['summary_rows']:,} rows, {size['summary_total']:,.0f} bytes per span; "
                f"tenant hourly rollup rows {size['tenant_rollup_rows']:,}",
                f"{'query (through the API over HTTP)':<46} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'target':>7} "
                f"{'items':>6}",
            ]
            for name, target, n, p50, p95, items in latency:
                verdict = "" if p95 < float(target) else "  MISS (no answer)" if n == 0 else "  MISS"
                report.append(f"{name:<46} {n:>4} {p50:>8.1f} {p95:>8.1f} {'<' + target:>7} {items:>6}{verdict}")
        print()
        print("\n".join(report))
    finally:
        if not args.keep_db:
            await db.drop_database(database_url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--no-costs", action="store_true", help="no billing ledger rows for the volume spans")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--reuse-volume", action="store_true",
                        help="query the volume an earlier --keep-db run loaded (no throughput, no load)")
    parser.add_argument("--database", default=BENCH_DB, help="the bench database (dropped and re-created)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-volume", action="store_true")
    parser.add_argument("--shapes", default="", help="only the query shapes whose name contains this (e.g. metrics)")
    parser.add_argument("--seed", type=int, default=12, help="of the apps, users and traces the queries pick")
    parser.add_argument("--migrate", action="store_true",
                        help="with --reuse-volume: apply this tree's pending migrations and compact first (timed)")
    parser.add_argument("--before-source", type=Path,
                        help="a tree of an earlier commit (git archive): its traces worker runs too, interleaved")
    parser.add_argument("--role", default="bench", choices=["bench", "baseline"])
    parser.add_argument("--topic")
    parser.add_argument("--group")
    parser.add_argument("--database-url")
    parser.add_argument("--bootstrap")
    args = parser.parse_args()
    if args.role == "baseline":
        asyncio.run(baseline_consumer(args))
        return
    global BEFORE_SOURCE  # noqa: PLW0603  (set once, from the command line)
    BEFORE_SOURCE = args.before_source.resolve() if args.before_source else None
    local.infrastructure_up(CommonSettings(), say=lambda _m: None)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
