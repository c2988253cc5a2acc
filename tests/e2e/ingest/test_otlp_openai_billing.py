"""OpenTelemetry's official OpenAI instrumentation (`opentelemetry-instrumentation-openai-v2`) around the
`openai` client, talking to the local fake OpenAI server; the SDK's OTLP/HTTP exporter sends the spans to
the ingest API, which publishes them to a topic of this test's own; the billing worker (its own process,
as in production) prices them. The ledger must hold each LLM call once, with the tokens the fake answered
and the cost its price file says, even after the whole export is sent a second time; the events on the
topic must keep the trace tree (agent -> chat calls, tool)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from decimal import Decimal

import asyncpg
import httpx
import openai
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_devtools.testing import litellm_price_table
from llmops_ingest.api import create_app
from llmops_ingest.settings import IngestSettings
from llmops_shared.contract import decode_interaction
from llmops_shared.kafka import ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from tests.support.events import collect, end_offsets
from tests.support.servers import serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CALLS = [("gpt-4o-mini", "Where is my order 1234?"), ("gpt-4o", "Summarise the refund policy."),
         ("gpt-4o-mini", "Thanks!")]


def start_billing(stack: CommonSettings, topic: str, group: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LLMOPS_DATABASE_URL": stack.database_url, "LLMOPS_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
           "LLMOPS_BILLING_TOPIC": topic, "LLMOPS_BILLING_GROUP": group, "LLMOPS_BILLING_BATCH_MAX_WAIT_MS": "50",
           "LLMOPS_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "llmops_billing.worker"], env=env)


async def test_openai_v2_spans_reach_billing_with_tokens_cost_and_the_trace_tree(
        stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str, make_key, monkeypatch: pytest.MonkeyPatch) -> None:
    # the current GenAI conventions, messages on the span (the instrumentation reads these when instrumenting)
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    topic, group = f"{TOPIC_PREFIX}otlp.{uuid.uuid4().hex[:8]}", f"billing-otlp-{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, partitions=3, retention_ms=3_600_000),))
    key = await make_key(tenant, ["ingest:write"])
    since = await end_offsets(stack.kafka_bootstrap, topic)
    settings = IngestSettings(**{**stack.model_dump(), "topic": topic})
    worker = start_billing(stack, topic, group)
    instrumentor = OpenAIInstrumentor()
    try:
        with serve(create_app(settings)) as ingest_url, FakeLLMServer() as llm:
            provider = TracerProvider(resource=Resource.create({"service.name": "otel-bot"}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
                endpoint=f"{ingest_url}/v1/traces", headers={"Authorization": f"Bearer {key}"}, timeout=10)))
            kept = InMemorySpanExporter()  # the same spans, to send the export again below
            provider.add_span_processor(SimpleSpanProcessor(kept))
            instrumentor.instrument(tracer_provider=provider)
            client = openai.OpenAI(base_url=f"{llm.url}/v1", api_key="sk-test")
            tracer = provider.get_tracer("support-agent")
            usages = {}
            with tracer.start_as_current_span("invoke_agent support", attributes={
                    "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"}) as agent:
                for model, question in CALLS:
                    reply = client.chat.completions.create(
                        model=model, messages=[{"role": "system", "content": "You are ACME support."},
                                               {"role": "user", "content": question}])
                    usages[reply.id + question] = (model, reply.usage)
                with tracer.start_as_current_span("execute_tool lookup_order", attributes={
                        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"}):
                    pass
            assert provider.force_flush(10_000)

            # An exporter's resend (after a lost answer): the same spans again, same ids.
            resend = encode_spans(kept.get_finished_spans()).SerializeToString()
            async with httpx.AsyncClient() as http:
                again = await http.post(f"{ingest_url}/v1/traces", content=resend, headers={
                    "Authorization": f"Bearer {key}", "content-type": "application/x-protobuf"})
            assert again.status_code == 200
            provider.shutdown()

            deadline = asyncio.get_running_loop().time() + 60
            while await pg_pool.fetchval("SELECT count(*) FROM usage_ledger WHERE tenant_id = $1", tenant) < len(CALLS):
                assert worker.poll() is None, "the billing worker died"
                assert asyncio.get_running_loop().time() < deadline, "the ledger did not fill"
                await asyncio.sleep(0.1)
            records = await collect(stack.kafka_bootstrap, topic, since, until=lambda found: len(found) >= 10)
            await asyncio.sleep(1.0)  # the resent events, if billed again, would land by now
    finally:
        instrumentor.uninstrument()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)

    # The topic: every span twice (export and resend), with the same event ids; the trace tree intact.
    events = [decode_interaction(r.value) for r in records]
    assert len(events) == 2 * (len(CALLS) + 2) and len({e.event_id for e in events}) == len(CALLS) + 2
    agent_id = format(agent.get_span_context().span_id, "016x")
    chats = {e.span_id: e for e in events if e.span_kind == "llm"}
    assert len(chats) == len(CALLS) and {e.parent_span_id for e in chats.values()} == {agent_id}
    assert {(e.span_kind, e.parent_span_id) for e in events if e.span_id not in chats} == \
        {("agent", None), ("tool", agent_id)}
    assert {e.app_id for e in events} == {"otel-bot"} and {e.tenant_id for e in events} == {tenant}
    one = next(iter(chats.values()))
    assert isinstance(one.input, list) and [m.role for m in one.input] == ["system", "user"]
    assert isinstance(one.output, list) and one.output[0].role == "assistant" and one.output[0].text()

    # The ledger: each call once, the fake's token counts, the price file's cost.
    rows = await pg_pool.fetch("SELECT span_id, model, input_tokens, output_tokens, cost_total, unpriced "
                               "FROM usage_ledger WHERE tenant_id = $1", tenant)
    assert len(rows) == len(CALLS) and {r["span_id"] for r in rows} == set(chats)
    prices = litellm_price_table({m for m, _ in CALLS})
    expected = sorted((model, usage.prompt_tokens, usage.completion_tokens,
                       usage.prompt_tokens * prices[model]["input"] + usage.completion_tokens * prices[model]["output"]
                       + prices[model]["request"]) for model, usage in usages.values())
    got = sorted((r["model"], r["input_tokens"], r["output_tokens"], r["cost_total"]) for r in rows)
    assert got == expected and not any(r["unpriced"] for r in rows)
    assert sum((r["cost_total"] for r in rows), Decimal(0)) > 0
    assert orjson.loads(records[0].value)["tenant_id"] == tenant
