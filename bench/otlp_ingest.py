"""OTLP ingestion: spans/s through `POST /v1/traces` (protobuf, and OTLP/JSON) into Kafka, against the JSON
batch endpoint `POST /v1/interactions` carrying the same events, in the same run.

    .venv/bin/python bench/otlp_ingest.py [--spans 20000] [--rounds 3] [--batch 100] [--concurrency 8]

The spans are what an instrumented app exports: per trace an agent span, two chat calls with the GenAI
conventions (model, provider, usage, messages in `gen_ai.input.messages`/`gen_ai.output.messages`) and a
tool span. The JSON batch bodies hold exactly the events these spans map to (the pure mapping, run here
once, beforehand), so both paths put the same events on Kafka and differ only in what the API does per
request: decode protobuf (or OTLP/JSON) and map each span, against validate each JSON event. The ingest
API runs as its own process (one uvicorn worker), as in production, and writes to a bench topic. Rounds
alternate the three; the report gives medians and ratios to the JSON batch endpoint. It also reports
the API's own CPU per event for each path, measured in this process on the same bodies (best of 5,
process time): what the HTTP figures cannot show on a loaded machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmops_devtools.stack import local
from llmops_devtools.stack.processes import port_open, wait_for
from llmops_devtools.testing import free_port
from llmops_ingest.intake import parse_body, validate_items
from llmops_ingest.otlp import decode, mapping
from llmops_shared import apikeys, db
from llmops_shared.kafka import ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import TopicSpec

TOPIC = "bench.interactions.raw"
TENANT = "bench"


def kv(key: str, value: str | int | float) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(double_value=value))


def trace_spans(t: int, start_ns: int) -> list[Span]:
    trace_id = os.urandom(16)
    agent_id = os.urandom(8)
    spans = [Span(trace_id=trace_id, span_id=agent_id, name="invoke_agent support", start_time_unix_nano=start_ns,
                  end_time_unix_nano=start_ns + 900_000_000,
                  attributes=[kv("gen_ai.operation.name", "invoke_agent"), kv("gen_ai.agent.name", "support")])]
    for c in range(2):
        question = f"Question {t}.{c}: how do I reset my password on device {t % 13}?"
        attrs = [kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"),
                 kv("gen_ai.request.model", "gpt-4o-mini"), kv("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
                 kv("gen_ai.response.id", f"chatcmpl-{t}-{c}"), kv("gen_ai.request.temperature", 0.2),
                 kv("gen_ai.usage.input_tokens", 180 + t % 50), kv("gen_ai.usage.output_tokens", 40 + t % 30),
                 kv("gen_ai.input.messages", orjson.dumps([
                     {"role": "system", "parts": [{"type": "text",
                                                   "content": "You are a careful assistant for ACME support. " * 4}]},
                     {"role": "user", "parts": [{"type": "text", "content": question}]}]).decode()),
                 kv("gen_ai.output.messages", orjson.dumps([
                     {"role": "assistant", "finish_reason": "stop", "parts": [
                         {"type": "text", "content": f"Answer {t}: open Settings, choose Security, then Reset. " * 3}]}
                 ]).decode())]
        spans.append(Span(trace_id=trace_id, span_id=os.urandom(8), parent_span_id=agent_id,
                          name="chat gpt-4o-mini", kind=Span.SpanKind.SPAN_KIND_CLIENT,
                          start_time_unix_nano=start_ns + (c * 300 + 10) * 1_000_000,
                          end_time_unix_nano=start_ns + (c * 300 + 290) * 1_000_000, attributes=attrs))
    spans.append(Span(trace_id=trace_id, span_id=os.urandom(8), parent_span_id=agent_id,
                      name="execute_tool lookup_order", start_time_unix_nano=start_ns + 700_000_000,
                      end_time_unix_nano=start_ns + 800_000_000,
                      attributes=[kv("gen_ai.operation.name", "execute_tool"), kv("gen_ai.tool.name", "lookup_order"),
                                  kv("gen_ai.tool.call.arguments", f'{{"order": {t}}}')]))
    return spans


def export_request(spans: list[Span]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend([kv("service.name", "support-bot"),
                                               kv("deployment.environment.name", "production")])
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.openai_v2"
    scope_spans.spans.extend(spans)
    return request


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as an exporter sends it: hex ids, not proto3 JSON's base64."""
    doc = json_format.MessageToDict(request)
    for span, proto in zip(doc["resourceSpans"][0]["scopeSpans"][0]["spans"],
                           request.resource_spans[0].scope_spans[0].spans, strict=True):
        span["traceId"], span["spanId"] = proto.trace_id.hex(), proto.span_id.hex()
        if proto.parent_span_id:
            span["parentSpanId"] = proto.parent_span_id.hex()
    return orjson.dumps(doc)


def workload(spans: int, batch: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(protobuf bodies, OTLP/JSON bodies, JSON batch bodies), each request the same `batch` events."""
    start_ns = time.time_ns() - 3_600 * 10**9
    all_spans = [s for t in range(spans // 4 + 1) for s in trace_spans(t, start_ns + t * 10**6)][:spans]
    protobuf, as_json, batches = [], [], []
    for i in range(0, len(all_spans), batch):
        request = export_request(all_spans[i:i + batch])
        protobuf.append(request.SerializeToString())
        as_json.append(otlp_json(request))
        events = mapping.map_request(decode.Decoded(request), tenant_id=TENANT)
        assert not events.rejected, events.summary()
        batches.append(orjson.dumps({"interactions": [orjson.loads(p) for p in events.payloads]}))
    return protobuf, as_json, batches


async def post_round(url: str, path: str, content_type: str, key: str, bodies: list[bytes], *, spans: int,
                     concurrency: int) -> float:
    headers = {"Authorization": f"Bearer {key}", "content-type": content_type}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            resp = await client.post(f"{url}{path}", content=body, headers=headers)
            if resp.status_code not in (200, 202) or (path == "/v1/traces" and resp.content not in (b"", b"{}")):
                raise RuntimeError(f"{path} answered {resp.status_code}: {resp.content[:300]!r}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        return spans / (time.perf_counter() - started)


def cpu_per_event(protobuf: list[bytes], as_json: list[bytes], batches: list[bytes], events: int) -> dict[str, float]:
    """Microseconds of CPU per event for what each path does to a body: decode, map or validate, serialize."""

    def best(work: Callable[[], object]) -> float:
        times = []
        for _ in range(5):
            started = time.process_time()
            work()
            times.append(time.process_time() - started)
        return min(times) / events * 1e6

    return {
        "json-batch": best(lambda: [validate_items(parse_body(b, max_events=10_000)[0], tenant_id=TENANT)
                                    for b in batches]),
        "otlp-protobuf": best(lambda: [mapping.map_request(decode.parse(b, decode.Encoding.PROTOBUF),
                                                           tenant_id=TENANT) for b in protobuf]),
        "otlp-protobuf decode only": best(lambda: [decode.parse(b, decode.Encoding.PROTOBUF) for b in protobuf]),
        "otlp-json": best(lambda: [mapping.map_request(decode.parse(b, decode.Encoding.JSON), tenant_id=TENANT)
                                   for b in as_json]),
        "otlp-json decode only": best(lambda: [decode.parse(b, decode.Encoding.JSON) for b in as_json]),
    }


async def main_async(args: argparse.Namespace) -> None:
    settings = CommonSettings()
    await ensure_topics(settings.kafka_bootstrap, (TopicSpec(TOPIC, partitions=6, retention_ms=3_600_000),))
    pool = await db.create_pool(settings.database_url, max_size=2)
    key = (await apikeys.create_key(pool, tenant_id=TENANT, scopes=["ingest:write"], name="bench",
                                    rate_limit_per_s=10_000_000)).secret
    await pool.close()
    protobuf, as_json, batches = workload(args.spans, args.batch)
    sizes = {name: statistics.mean(map(len, bodies)) / args.batch
             for name, bodies in (("protobuf", protobuf), ("otlp-json", as_json), ("json-batch", batches))}

    port = free_port()
    env = {**os.environ, "LLMOPS_INGEST_PORT": str(port), "LLMOPS_INGEST_TOPIC": TOPIC, "LLMOPS_LOG_LEVEL": "WARNING",
           "LLMOPS_INGEST_RATE_LIMIT_BURST": "10000000"}
    server = subprocess.Popen([sys.executable, "-m", "llmops_ingest.api"], env=env)  # noqa: ASYNC220
    paths = {"json-batch": ("/v1/interactions", "application/json", batches),
             "otlp-protobuf": ("/v1/traces", "application/x-protobuf", protobuf),
             "otlp-json": ("/v1/traces", "application/json", as_json)}
    rates: dict[str, list[float]] = {name: [] for name in paths}
    try:
        if not wait_for(lambda: port_open(port), 30):
            raise RuntimeError("ingest API did not start")
        url = f"http://127.0.0.1:{port}"
        for path, content_type, bodies in paths.values():  # warm-up
            await post_round(url, path, content_type, key, bodies[:10], spans=10 * args.batch,
                             concurrency=args.concurrency)
        for r in range(args.rounds):
            for name, (path, content_type, bodies) in paths.items():
                rates[name].append(await post_round(url, path, content_type, key, bodies, spans=args.spans,
                                                    concurrency=args.concurrency))
            print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:,.0f} spans/s" for n, v in rates.items()), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=20)

    medians = {name: statistics.median(values) for name, values in rates.items()}
    cpu = cpu_per_event(protobuf[:20], as_json[:20], batches[:20], min(args.spans, 20 * args.batch))
    print()
    print(f"spans: {args.spans} per round, {args.rounds} rounds, batch {args.batch}, concurrency {args.concurrency}, "
          f"{datetime.now(UTC):%Y-%m-%d}")
    print("bytes per span on the wire: " + ", ".join(f"{n} {v:,.0f}" for n, v in sizes.items()))
    print(f"JSON batch endpoint (baseline): median {medians['json-batch']:,.0f} events/s")
    for name in ("otlp-protobuf", "otlp-json"):
        print(f"{name}: median {medians[name]:,.0f} spans/s, ratio to the JSON batch endpoint "
              f"{medians[name] / medians['json-batch']:.2f}")
    print("API CPU per event, in-process (best of 5): " + ", ".join(f"{n} {v:.1f} µs" for n, v in cpu.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    local.infrastructure_up(CommonSettings(), say=lambda _m: None)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
