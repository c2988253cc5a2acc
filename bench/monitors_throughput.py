"""Monitors benchmark, in one run (about 6 minutes):

1. Throughput of one monitors worker (`python -m llmops_monitors.worker`, its own process, a faust app)
   with 100 monitors defined (10 tenants x 10: error rate, latency p95/p99, tokens, request count, finding
   rate, cost, ..., on every window spec), against a baseline in the same run: a plain aiokafka consumer
   (also its own process) that reads the same events, decodes each (`orjson.loads`) and commits offsets
   per batch. Each round produces the same N clean interaction events (10 tenants x 5 apps x 3 models) to
   a fresh 6-partition topic after the consumer is ready; the clock runs from the first send until the
   consumer group has committed everything (for the worker: the source topic and its observations topic).
   Rounds alternate; the report gives medians and the ratio.
2. From a window's close to the page: the worker on the wall clock (1-minute windows, `lateness_s` 1 s),
   the notifier (`python -m llmops_guardrails.notifier`) and a webhook channel per tenant on a local HTTP
   receiver; traffic for 50 groups alternates bad and good minutes, so every minute's close opens or
   resolves a firing per group (`resolve_after` 1). Per page: receive time - (window end + lateness),
   p50/p95/max (target p95 <= 2 s), and from the window's end.

    .venv/bin/python bench/monitors_throughput.py [--events 20000] [--rounds 2] [--latency-minutes 4]
                                                  [--batch-wait-ms 200]

Everything runs in a database of its own (`llmops_bench_monitors`, dropped and re-created) and on bench
topics, so the suite's services never see these events.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from llmops_devtools.stack import local  # noqa: E402
from llmops_devtools.testing import make_event  # noqa: E402
from llmops_devtools.webhooks import PostServer  # noqa: E402
from llmops_monitors.schemas import MonitorCreate  # noqa: E402
from llmops_monitors.service import create as create_monitor  # noqa: E402
from llmops_monitors.settings import MonitorsSettings  # noqa: E402
from llmops_shared import db, migrations  # noqa: E402
from llmops_shared.kafka import ensure_topics  # noqa: E402
from llmops_shared.settings import CommonSettings, environment  # noqa: E402
from llmops_shared.topics import TopicSpec  # noqa: E402

BENCH_DB = "llmops_bench_monitors"
TENANTS = [f"bench-t{i}" for i in range(10)]
APPS = [f"app-{i}" for i in range(5)]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4"]
HOUR_MS = 3_600_000
PARTITIONS = 6  # of every bench topic


def monitor_bodies(tenant: str) -> list[dict[str, Any]]:
    """Ten monitors per tenant, on every metric family and window spec."""
    return [
        {"name": "errors-1m", "metric": "error_rate", "window": "1m", "condition": {"op": ">", "threshold": 0.2},
         "min_samples": 5, "resolve_after": 1},
        {"name": "errors-5m", "metric": "error_rate", "window": "5m/1m", "group_by": ["model"],
         "condition": {"op": ">", "threshold": 0.5}},
        {"name": "p95", "metric": "latency_p95", "window": "5m", "condition": {"op": ">", "threshold": 5000}},
        {"name": "p99-hourly", "metric": "latency_p99", "window": "1h/5m", "group_by": ["model", "environment"],
         "condition": {"op": ">", "threshold": 20000}},
        {"name": "tokens", "metric": "tokens", "window": "1h", "condition": {"op": ">", "threshold": 10**9}},
        {"name": "calls", "metric": "request_count", "window": "1m", "condition": {"op": ">", "threshold": 10**6}},
        {"name": "findings", "metric": "finding_rate", "window": "5m", "condition": {"op": ">", "threshold": 0.9}},
        {"name": "cost", "metric": "cost", "window": "1h", "condition": {"op": ">", "threshold": 10**6}},
        {"name": "judge", "metric": "judge_score", "window": "1h/5m", "condition": {"op": "<", "threshold": 0.0}},
        {"name": "errors-vs-last-week", "metric": "error_rate", "window": "1h", "group_by": ["prompt"],
         "condition": {"op": ">", "baseline": "same_window_previous_days", "factor": 3}},
    ]


def event(i: int, *, tenant: str | None = None, app: str | None = None, error: bool = False) -> bytes:
    extra: dict[str, Any] = {"status": "error", "error": {"type": "Timeout"}} if error else {}
    body = make_event(app_id=app or APPS[i % len(APPS)], model=MODELS[i % len(MODELS)], latency_ms=float(50 + i % 900),
                      prompt={"name": "answer", "version": str(i % 3)}, **extra)
    return orjson.dumps({**body, "tenant_id": tenant or TENANTS[i % len(TENANTS)]})


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=str(i).encode()) for i, v in enumerate(values)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def all_committed(bootstrap: str, group: str, topics: list[str]) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        ends = await consumer.end_offsets([TopicPartition(t, p) for t in topics for p in range(PARTITIONS)])
        return all(not end or (tp in committed and committed[tp].offset >= end) for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


async def wait_committed(bootstrap: str, group: str, topics: list[str], timeout_s: float = 600) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await all_committed(bootstrap, group, topics):
            return time.perf_counter()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{group} did not catch up")


def baseline_consumer(bootstrap: str, topic: str, group: str) -> None:
    """The baseline process: read, decode, commit per batch, forever (the bench stops it)."""
    async def run() -> None:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_poll_records=2000)
        await consumer.start()
        print("ready", flush=True)
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batches.values():
                for r in records:
                    orjson.loads(r.value)
            if batches:
                await consumer.commit()

    asyncio.run(run())


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **env}, stdout=out, stderr=out)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def fresh_database(base: CommonSettings) -> str:
    url = db.with_database(base.database_url, BENCH_DB)
    await db.drop_database(url)
    await db.ensure_database(url)
    await migrations.migrate(url)
    return url


async def define_monitors(pool: asyncpg.Pool, bodies: dict[str, list[dict[str, Any]]]) -> int:
    n = 0
    for tenant, items in bodies.items():
        for body in items:
            await create_monitor(pool, tenant_id=tenant, body=MonitorCreate.model_validate(body), limit=1000)
            n += 1
    return n


def bench_settings(base: CommonSettings, url: str, **overrides: Any) -> MonitorsSettings:
    s = uuid.uuid4().hex[:8]
    return MonitorsSettings(**{**base.model_dump(), "database_url": url}, group=f"bench-monitors-{s}",
                            clean_topic=f"bench.mon.{s}.clean", scores_topic=f"bench.mon.{s}.scores",
                            usage_topic=f"bench.mon.{s}.usage", observations_topic=f"bench.mon.{s}.obs",
                            alerts_topic=f"bench.mon.{s}.alerts", **overrides)


async def topics_for(settings: MonitorsSettings) -> None:
    await ensure_topics(settings.kafka_bootstrap, tuple(
        TopicSpec(t, PARTITIONS, HOUR_MS) for t in (settings.clean_topic, settings.scores_topic, settings.usage_topic,
                                           settings.observations_topic, settings.alerts_topic)))


async def worker_ready(settings: MonitorsSettings, pool: asyncpg.Pool) -> None:
    """Ready once a probe event went all the way to an evaluation (the group joined, tables recovered)."""
    probe_tenant = f"probe-{uuid.uuid4().hex[:6]}"
    await create_monitor(pool, tenant_id=probe_tenant, body=MonitorCreate.model_validate(
        {"name": "probe", "metric": "request_count", "window": "1m", "min_samples": 0,
         "condition": {"op": "<", "threshold": 0}}), limit=10)
    await produce(settings.kafka_bootstrap, settings.clean_topic, [event(0, tenant=probe_tenant)])
    await wait_committed(settings.kafka_bootstrap, settings.group, [settings.clean_topic, settings.observations_topic],
                         timeout_s=180)


async def throughput(base: CommonSettings, url: str, pool: asyncpg.Pool, *, n: int, rounds: int, wait_ms: int,
                     logs: Path) -> dict[str, list[float]]:
    values = [event(i, error=i % 17 == 0) for i in range(n)]
    results: dict[str, list[float]] = {"baseline": [], "monitors": []}
    for _ in range(rounds):
        # baseline: a plain aiokafka consumer
        settings = bench_settings(base, url)
        await topics_for(settings)
        proc = spawn([__file__, "--baseline-consumer", settings.clean_topic, settings.group],
                     {}, logs / "baseline.log")
        await asyncio.sleep(6)  # joined its group (it prints "ready" once started; the join follows)
        try:
            started = time.perf_counter()
            await produce(base.kafka_bootstrap, settings.clean_topic, values)
            done = await wait_committed(base.kafka_bootstrap, settings.group, [settings.clean_topic])
        finally:
            stop(proc)
        results["baseline"].append(n / (done - started))
        # the monitors worker
        settings = bench_settings(base, url, commit_interval_s=0.2, batch_max_events=1000,
                                  batch_max_wait_ms=wait_ms)
        await topics_for(settings)
        proc = spawn(os.environ.get("MONITORS_WORKER_ARGS", "-m llmops_monitors.worker").split(),
                     {**environment(settings), "LLMOPS_LOG_LEVEL": "WARNING"}, logs / "worker.log")
        try:
            await worker_ready(settings, pool)
            started = time.perf_counter()
            await produce(base.kafka_bootstrap, settings.clean_topic, values)
            done = await wait_committed(base.kafka_bootstrap, settings.group,
                                        [settings.clean_topic, settings.observations_topic])
        finally:
            stop(proc)
        results["monitors"].append(n / (done - started))
        print(f"round: baseline {results['baseline'][-1]:,.0f} ev/s, monitors {results['monitors'][-1]:,.0f} ev/s",
              flush=True)
    return results


class Receiver(PostServer):
    """The webhook endpoint: the arrival time of each page."""

    def __init__(self) -> None:
        self.pages: list[tuple[float, dict[str, Any]]] = []
        super().__init__(self._answer)
        self.start()

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        self.pages.append((time.time(), orjson.loads(body)))
        return 200


async def close_to_page(base: CommonSettings, url: str, pool: asyncpg.Pool, minutes: int,
                        logs: Path) -> dict[str, Any]:
    receiver = Receiver()
    settings = bench_settings(base, url, lateness_s=1.0, close_interval_s=0.1, commit_interval_s=0.5)
    await topics_for(settings)
    tenants = [f"page-{uuid.uuid4().hex[:6]}-{i}" for i in range(10)]
    for tenant in tenants:
        await pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", tenant)
        await pool.execute("INSERT INTO notification_channels (tenant_id, name, kind, url, repeat_interval_s) "
                           "VALUES ($1, 'hook', 'webhook', $2, 0)", tenant, f"http://127.0.0.1:{receiver.port}/hook")
    await define_monitors(pool, {t: [{"name": "errors", "metric": "error_rate", "window": "1m", "min_samples": 5,
                                      "resolve_after": 1, "condition": {"op": ">", "threshold": 0.2}}]
                                 for t in tenants})
    worker = spawn(["-m", "llmops_monitors.worker"], {**environment(settings), "LLMOPS_LOG_LEVEL": "WARNING"},
                   logs / "worker-latency.log")
    notifier_env = {"LLMOPS_DATABASE_URL": url, "LLMOPS_NOTIFIER_GROUP": f"bench-notifier-{uuid.uuid4().hex[:6]}",
                    "LLMOPS_NOTIFIER_ALERTS_TOPIC": settings.alerts_topic, "LLMOPS_LOG_LEVEL": "WARNING",
                    "LLMOPS_EGRESS_ALLOW": f"127.0.0.1:{receiver.port}",
                    # the notifier refuses to start without a channel key (guardrails/0011); the bench's plain
                    # channel rows are sealed under this one when it starts
                    "LLMOPS_GUARDRAILS_CHANNEL_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode()}
    notifier = spawn(["-m", "llmops_guardrails.notifier"], notifier_env, logs / "notifier.log")
    try:
        await worker_ready(settings, pool)
        # Start at the next minute; each minute alternates bad (40% errors) and good traffic for 50 groups.
        await asyncio.sleep(60 - time.time() % 60 + 0.5)
        first_minute = int(time.time() // 60) * 60
        end = first_minute + minutes * 60
        i = 0
        while time.time() < end:
            minute = int(time.time() // 60) * 60
            bad = ((minute - first_minute) // 60) % 2 == 0
            batch = [event(i + k, tenant=t, app=a, error=bad and k % 5 < 2)
                     for t in tenants for a in APPS for k in range(2)]
            i += 2
            await produce(base.kafka_bootstrap, settings.clean_topic, batch)
            await asyncio.sleep(1.0)
        await asyncio.sleep(8)  # the last window closes and its pages go out
    finally:
        stop(worker)
        stop(notifier)
        receiver.stop()
    from_close, from_end = {"open": [], "resolved": []}, {"open": [], "resolved": []}  # type: ignore[var-annotated]
    for received, page in receiver.pages:
        alert = page["alert"]
        window_end = datetime.fromisoformat(alert["occurred_at"]).timestamp()
        if window_end < first_minute + 60:
            continue  # a window that started before the measured traffic
        from_close[alert["status"]].append(received - (window_end + settings.lateness_s))
        from_end[alert["status"]].append(received - window_end)
    return {"from_close": from_close, "from_end": from_end, "pages": len(receiver.pages)}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def main(args: argparse.Namespace) -> None:
    base = CommonSettings()
    url = await fresh_database(base)
    pool = await db.create_pool(url, max_size=4)
    logs = Path(args.logs)
    try:
        defined = await define_monitors(pool, {t: monitor_bodies(t) for t in TENANTS})
        print(f"{defined} monitors defined", flush=True)
        results = await throughput(base, url, pool, n=args.events, rounds=args.rounds,
                                   wait_ms=args.batch_wait_ms, logs=logs)
        b, m = statistics.median(results["baseline"] or [1]), statistics.median(results["monitors"] or [0])
        if args.rounds:
            print(f"throughput ({args.events:,} events, median of {args.rounds}): baseline aiokafka consumer "
                  f"{b:,.0f} ev/s; monitors worker with {defined} monitors {m:,.0f} ev/s; ratio {m / b:.2f}",
                  flush=True)
        if args.latency_minutes:
            lat = await close_to_page(base, url, pool, args.latency_minutes, logs)
            for status in ("open", "resolved"):
                xs, ys = lat["from_close"][status], lat["from_end"][status]
                print(f"close -> webhook ({status}, {len(xs)} pages): p50 {pct(xs, 0.5):.2f} s, "
                      f"p95 {pct(xs, 0.95):.2f} s, max {max(xs, default=float('nan')):.2f} s; "
                      f"from the window's end p95 {pct(ys, 0.95):.2f} s",
                      flush=True)
    finally:
        await pool.close()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--baseline-consumer":
        baseline_consumer(CommonSettings().kafka_bootstrap, sys.argv[2], sys.argv[3])
        sys.exit(0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-minutes", type=int, default=4)
    parser.add_argument("--batch-wait-ms", type=int, default=200, help="the worker's batch_max_wait_ms")
    parser.add_argument("--logs", default="/tmp/llmops-bench-monitors")
    local.infrastructure_up(CommonSettings(), say=lambda _m: None)
    Path(parser.parse_args().logs).mkdir(parents=True, exist_ok=True)
    asyncio.run(main(parser.parse_args()))
