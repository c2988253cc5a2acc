"""Ingest throughput: events/s through `POST /v1/interactions` into Kafka, against a raw aiokafka
producer sending the same serialized events, in the same run.

    .venv/bin/python bench/ingest_throughput.py [--events 40000] [--rounds 3] [--batch 100] [--concurrency 8]

The ingest API runs as its own process (`python -m llmops_ingest.api`, one uvicorn worker), as in
production; the baseline is one aiokafka producer with the same durability settings (acks=all,
idempotent) in this process. Both write to a bench topic, so the suite's consumers never see these
events. Rounds alternate baseline and ingest; the report gives medians and the ratio. It also reports
the latency of a single 100-event batch (p50/p99 over sequential requests, so queueing does not
inflate it).
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

import httpx
import orjson

from llmops_devtools.stack import local
from llmops_devtools.stack.processes import port_open, wait_for
from llmops_devtools.testing import free_port, make_event
from llmops_shared import apikeys, db
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import TopicSpec

TOPIC = "bench.interactions.raw"


def realistic_events(n: int) -> list[dict]:
    out = []
    for i in range(n):
        out.append(make_event(
            app_id=f"app-{i % 7}", trace_id=f"tr-{i // 4:08d}-{uuid.uuid4().hex[:8]}",
            input=[{"role": "system", "content": "You are a careful assistant for ACME support. " * 4},
                   {"role": "user", "content": f"Question {i}: how do I reset my password on device {i % 13}?"}],
            output=f"Answer {i}: open Settings, choose Security, then Reset. " * 3,
            usage={"input_tokens": 180 + i % 50, "output_tokens": 40 + i % 30, "cache_read_input_tokens": 128},
        ))
    return out


async def raw_producer_round(settings: CommonSettings, payloads: list[tuple[bytes, bytes]], batch: int) -> float:
    producer = durable_producer(settings.kafka_bootstrap, client_id="bench-raw")
    await producer.start()
    try:
        started = time.perf_counter()
        for i in range(0, len(payloads), batch):
            futures = [await producer.send(TOPIC, value, key=key) for key, value in payloads[i:i + batch]]
            await asyncio.gather(*futures)
        return len(payloads) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def ingest_round(url: str, key: str, bodies: list[bytes], events: int, concurrency: int) -> float:
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            resp = await client.post(f"{url}/v1/interactions", content=body, headers=headers)
            if resp.status_code != 202:
                raise RuntimeError(f"ingest answered {resp.status_code}: {resp.text[:300]}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        return events / (time.perf_counter() - started)


async def batch_latencies(url: str, key: str, bodies: list[bytes]) -> list[float]:
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    out = []
    async with httpx.AsyncClient(timeout=60) as client:
        for body in bodies:
            started = time.perf_counter()
            resp = await client.post(f"{url}/v1/interactions", content=body, headers=headers)
            out.append((time.perf_counter() - started) * 1000)
            assert resp.status_code == 202, resp.text
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main_async(args: argparse.Namespace) -> None:
    settings = CommonSettings()
    await ensure_topics(settings.kafka_bootstrap, (TopicSpec(TOPIC, partitions=6, retention_ms=3_600_000),))
    tenant = "bench"
    pool = await db.create_pool(settings.database_url, max_size=2)
    key = (await apikeys.create_key(pool, tenant_id=tenant, scopes=["ingest:write"], name="bench",
                                    rate_limit_per_s=10_000_000)).secret
    await pool.close()

    events = realistic_events(args.events)
    payloads = [(e["trace_id"].encode(), orjson.dumps({**e, "tenant_id": tenant})) for e in events]
    bodies = [orjson.dumps({"interactions": events[i:i + args.batch]}) for i in range(0, len(events), args.batch)]

    port = free_port()
    env = {**os.environ, "LLMOPS_INGEST_PORT": str(port), "LLMOPS_INGEST_TOPIC": TOPIC, "LLMOPS_LOG_LEVEL": "WARNING",
           "LLMOPS_INGEST_RATE_LIMIT_BURST": "10000000"}
    server = subprocess.Popen([sys.executable, "-m", "llmops_ingest.api"], env=env)  # noqa: ASYNC220
    try:
        if not wait_for(lambda: port_open(port), 30):
            raise RuntimeError("ingest API did not start")
        url = f"http://127.0.0.1:{port}"
        await ingest_round(url, key, bodies[:20], 20 * args.batch, args.concurrency)  # warm-up
        await raw_producer_round(settings, payloads[: 20 * args.batch], args.batch)
        raw_rates, ingest_rates = [], []
        for r in range(args.rounds):
            raw_rates.append(await raw_producer_round(settings, payloads, args.batch))
            ingest_rates.append(await ingest_round(url, key, bodies, len(events), args.concurrency))
            print(f"round {r + 1}: raw producer {raw_rates[-1]:,.0f} ev/s, ingest {ingest_rates[-1]:,.0f} ev/s",
                  flush=True)
        lat_bodies = [orjson.dumps({"interactions": realistic_events(100)}) for _ in range(args.latency_samples)]
        latencies = await batch_latencies(url, key, lat_bodies)
    finally:
        server.terminate()
        server.wait(timeout=20)

    raw_med, ingest_med = statistics.median(raw_rates), statistics.median(ingest_rates)
    print()
    print(f"events: {len(events)} per round, {args.rounds} rounds, batch {args.batch}, concurrency {args.concurrency}")
    print(f"raw aiokafka producer (baseline): median {raw_med:,.0f} events/s")
    print(f"ingest API (HTTP batch -> Kafka): median {ingest_med:,.0f} events/s")
    print(f"ratio ingest/raw: {ingest_med / raw_med:.2f} (target >= 0.5)")
    print(f"ack latency of one 100-event batch over {len(latencies)} sequential requests: "
          f"p50 {pct(latencies, 0.5):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-samples", type=int, default=300)
    local.infrastructure_up(CommonSettings(), say=lambda _m: None)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
