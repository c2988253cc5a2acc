"""`POST /v1/traces` on real Kafka, Postgres and Redis: the OpenTelemetry SDK's own OTLP/HTTP exporter, the
spec's OTLP/JSON example, and each answer of the OTLP specification in the request's encoding."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import StatusCode

from llmops_ingest.api import create_app
from llmops_ingest.otlp.mapping import event_id
from llmops_ingest.settings import IngestSettings
from llmops_shared.clock import fixed
from llmops_shared.contract import decode_interaction
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import INTERACTIONS_RAW
from tests.support.events import collect, end_offsets
from tests.support.otlp import NOW_NS, request, span
from tests.support.servers import free_port, serve

pytestmark = pytest.mark.integration

PROTOBUF = "application/x-protobuf"
NOW = datetime.fromtimestamp(NOW_NS / 1e9, UTC)


def settings_for(stack: CommonSettings, **overrides: object) -> IngestSettings:
    values = {"rate_limit_per_s": 1000, "rate_limit_burst": 2000, "max_body_bytes": 256 * 1024, **overrides}
    return IngestSettings(**{**stack.model_dump(), **values})


@pytest.fixture(scope="module")
def live_url(stack: CommonSettings) -> Iterator[str]:
    """The API on the real clock, for the SDK's spans (stamped with the real time)."""
    with serve(create_app(settings_for(stack))) as url:
        yield url


@pytest.fixture(scope="module")
def url(stack: CommonSettings) -> Iterator[str]:
    """The API at a fixed instant, for spans built by the tests."""
    with serve(create_app(settings_for(stack), clock=fixed(NOW))) as url:
        yield url


def auth(key: str, content_type: str = PROTOBUF) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "content-type": content_type}


async def events_of(stack: CommonSettings, since: dict, tenant: str, count: int) -> list:
    records = await collect(stack.kafka_bootstrap, INTERACTIONS_RAW, since,
                            keep=lambda r: orjson.loads(r.value)["tenant_id"] == tenant,
                            until=lambda found: len(found) >= count)
    return records


async def test_the_sdk_exporter_sends_a_trace_tree_that_lands_on_the_raw_topic(
        stack: CommonSettings, live_url: str, tenant: str, make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    since = await end_offsets(stack.kafka_bootstrap, INTERACTIONS_RAW)
    exporter = OTLPSpanExporter(endpoint=f"{live_url}/v1/traces", headers={"Authorization": f"Bearer {key}"},
                                compression=Compression.Gzip, timeout=10)
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot",
                                                        "deployment.environment.name": "staging"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.otlp")
    with tracer.start_as_current_span("answer-ticket", attributes={"openinference.span.kind": "AGENT"}) as agent:
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 42,
                "gen_ai.usage.output_tokens": 7}) as chat:
            pass
        with tracer.start_as_current_span("execute_tool lookup_order", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"}) as tool:
            tool.set_status(StatusCode.ERROR, "order service down")
    assert provider.force_flush(10_000)
    provider.shutdown()

    records = await events_of(stack, since, tenant, 3)
    events = {e.span_id: e for e in (decode_interaction(r.value) for r in records)}
    agent_id, chat_id, tool_id = (format(s.get_span_context().span_id, "016x") for s in (agent, chat, tool))
    trace_id = format(agent.get_span_context().trace_id, "032x")
    assert set(events) == {agent_id, chat_id, tool_id}
    assert {r.key for r in records} == {trace_id.encode()}  # keyed by trace: one partition, in order
    assert events[agent_id].parent_span_id is None and events[agent_id].span_kind == "agent"
    assert events[chat_id].parent_span_id == agent_id == events[tool_id].parent_span_id
    chat_event = events[chat_id]
    assert (chat_event.span_kind, chat_event.model, chat_event.provider) == ("llm", "gpt-4o-mini", "openai")
    assert chat_event.usage is not None and (chat_event.usage.input_tokens, chat_event.usage.output_tokens) == (42, 7)
    assert (chat_event.tenant_id, chat_event.app_id, chat_event.environment) == (tenant, "support-bot", "staging")
    assert events[tool_id].status == "error" and events[tool_id].error is not None
    assert events[tool_id].error.message == "order service down"
    assert chat_event.event_id == event_id(tenant, trace_id, chat_id)


async def test_the_specs_otlp_json_example_is_accepted_with_hex_ids(stack: CommonSettings, tenant: str,
                                                                    make_key) -> None:
    # The example request of the OTLP specification (opentelemetry-proto, examples/trace.json), as it is.
    example = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
        "scopeSpans": [{
            "scope": {"name": "my.library", "version": "1.0.0",
                      "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
            "spans": [{"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
                       "parentSpanId": "EEE19B7EC3C1B173", "name": "I'm a server span",
                       "startTimeUnixNano": 1544712660000000000, "endTimeUnixNano": 1544712661000000000,
                       "kind": 2, "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}]}],
        }],
    }]}
    key = await make_key(tenant, ["ingest:write"])
    since = await end_offsets(stack.kafka_bootstrap, INTERACTIONS_RAW)
    then = datetime(2018, 12, 13, 15, tzinfo=UTC)  # the example's time, so its span is inside the window
    with serve(create_app(settings_for(stack), clock=fixed(then))) as url:
        async with httpx.AsyncClient() as client:
            resp = await client.post(f"{url}/v1/traces", content=orjson.dumps(example),
                                     headers=auth(key, "application/json"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json" and resp.json() == {}
    [record] = await events_of(stack, since, tenant, 1)
    event = decode_interaction(record.value)
    assert (event.trace_id, event.span_id, event.parent_span_id) == \
        ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173")
    assert (event.app_id, event.span_kind, event.name, event.latency_ms) == \
        ("my.service", "chain", "I'm a server span", 1000.0)
    assert event.occurred_at == datetime(2018, 12, 13, 14, 51, tzinfo=UTC)
    assert event.metadata == {"my.span.attr": "some value", "otel.scope.name": "my.library"}


async def test_a_mixed_request_accepts_the_valid_spans_and_reports_the_rejected(
        stack: CommonSettings, url: str, tenant: str, make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    good = [span(attrs={"gen_ai.request.model": "gpt-4o"}) for _ in range(3)]
    bad = [span(trace_id=b"\x00" * 16), span(span_id=b"\x01\x02\x03")]
    body = request(good[0], bad[0], good[1], bad[1], good[2]).SerializeToString()
    since = await end_offsets(stack.kafka_bootstrap, INTERACTIONS_RAW)
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{url}/v1/traces", content=body, headers=auth(key))
        # the same in OTLP/JSON (hex ids), one id not hex at all
        doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "ok",
             "startTimeUnixNano": str(NOW_NS), "endTimeUnixNano": str(NOW_NS + 10**6)},
            {"traceId": "zz", "spanId": "b7ad6b7169203332", "name": "bad", "startTimeUnixNano": str(NOW_NS)}]}]}]}
        as_json = await client.post(f"{url}/v1/traces", content=orjson.dumps(doc),
                                    headers=auth(key, "application/json"))
    assert resp.status_code == 200 and resp.headers["content-type"] == PROTOBUF
    answer = ExportTraceServiceResponse.FromString(resp.content)
    assert answer.partial_success.rejected_spans == 2
    assert "2 span(s) rejected: span 1 (trace 0000" in answer.partial_success.error_message
    assert "trace_id: must be 16 bytes" in answer.partial_success.error_message
    assert "span_id: must be 8 bytes" in answer.partial_success.error_message
    assert as_json.status_code == 200
    assert as_json.json()["partialSuccess"]["rejectedSpans"] in ("1", 1)
    assert "is not 32 hex digits" in as_json.json()["partialSuccess"]["errorMessage"]

    records = await events_of(stack, since, tenant, 4)
    assert {decode_interaction(r.value).span_id for r in records} == \
        {s.span_id.hex() for s in good} | {"b7ad6b7169203331"}


async def test_a_resent_export_carries_the_same_event_ids(stack: CommonSettings, url: str, tenant: str,
                                                          make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    body = gzip.compress(request(span(), span()).SerializeToString())
    since = await end_offsets(stack.kafka_bootstrap, INTERACTIONS_RAW)
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            resp = await client.post(f"{url}/v1/traces", content=body,
                                     headers={**auth(key), "content-encoding": "gzip"})
            assert resp.status_code == 200 and resp.content == b""
    records = await events_of(stack, since, tenant, 4)
    ids = [orjson.loads(r.value)["event_id"] for r in records]
    assert len(ids) == 4 and len(set(ids)) == 2  # twice on the topic, one id each: consumers count them once


def status_of(resp: httpx.Response) -> Status:
    assert resp.headers["content-type"] == PROTOBUF
    return Status.FromString(resp.content)


async def test_the_specs_error_answers_in_the_requests_encoding(stack: CommonSettings, url: str, tenant: str,
                                                                make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    reader = await make_key(tenant, ["billing:read"])
    endpoint = f"{url}/v1/traces"
    async with httpx.AsyncClient() as client:
        corrupt = await client.post(endpoint, content=b"not a protobuf", headers=auth(key))
        assert corrupt.status_code == 400 and status_of(corrupt).code == 3
        assert "not an ExportTraceServiceRequest" in status_of(corrupt).message
        bad_json = await client.post(endpoint, content=b'{"resourceSpans": 7}', headers=auth(key, "application/json"))
        assert bad_json.status_code == 400 and bad_json.headers["content-type"] == "application/json"
        assert bad_json.json()["code"] == 3 and "OTLP/JSON" in bad_json.json()["message"]
        wrong_type = await client.post(endpoint, content=b"x", headers=auth(key, "text/plain"))
        assert wrong_type.status_code == 415 and wrong_type.json()["code"] == 3
        unknown_coding = await client.post(endpoint, content=b"x", headers={**auth(key), "content-encoding": "br"})
        assert unknown_coding.status_code == 415 and "Content-Encoding" in status_of(unknown_coding).message
        oversized = await client.post(endpoint, content=b"\0" * (300 * 1024), headers=auth(key))
        assert oversized.status_code == 413 and "limit" in status_of(oversized).message
        bomb = await client.post(endpoint, content=gzip.compress(b"\0" * (2 * 1024 * 1024)),
                                 headers={**auth(key), "content-encoding": "gzip"})
        assert bomb.status_code == 413 and "once decompressed" in status_of(bomb).message
        too_many = await client.post(endpoint, content=request(*[span() for _ in range(1001)]).SerializeToString(),
                                     headers=auth(key))
        assert too_many.status_code == 413 and "1001 spans" in status_of(too_many).message
        unauthenticated = await client.post(endpoint, content=b"", headers={"content-type": PROTOBUF})
        assert unauthenticated.status_code == 401 and status_of(unauthenticated).code == 16
        forbidden = await client.post(endpoint, content=b"", headers=auth(reader))
        assert forbidden.status_code == 403 and "ingest:write" in status_of(forbidden).message
        empty = await client.post(endpoint, content=b"", headers=auth(key))
        assert empty.status_code == 200 and empty.content == b""


async def test_past_the_keys_event_limit_is_429_with_retry_after(stack: CommonSettings, tenant: str,
                                                                 make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    with serve(create_app(settings_for(stack, rate_limit_per_s=2, rate_limit_burst=5), clock=fixed(NOW))) as url:
        async with httpx.AsyncClient() as client:
            first = await client.post(f"{url}/v1/traces", content=request(*[span() for _ in range(5)])
                                      .SerializeToString(), headers=auth(key))
            second = await client.post(f"{url}/v1/traces", content=request(span(), span()).SerializeToString(),
                                       headers=auth(key))
            as_json = await client.post(f"{url}/v1/traces", content=b"{}", headers=auth(key, "application/json"))
    assert first.status_code == 200
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
    assert status_of(second).code == 8 and "rate limit" in status_of(second).message
    assert as_json.status_code == 200  # no span, nothing to count


async def test_kafka_unavailable_is_503_with_retry_after(stack: CommonSettings, tenant: str, make_key) -> None:
    key = await make_key(tenant, ["ingest:write"])
    settings = settings_for(stack, kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_timeout_s=1.0)
    with serve(create_app(settings, clock=fixed(NOW))) as url:
        async with httpx.AsyncClient(timeout=30) as client:
            resp = await client.post(f"{url}/v1/traces", content=request(span()).SerializeToString(),
                                     headers=auth(key, "application/x-protobuf"))
            as_json = await client.post(f"{url}/v1/traces", content=orjson.dumps(
                {"resourceSpans": [{"scopeSpans": [{"spans": [{
                    "traceId": uuid.uuid4().hex, "spanId": "b7ad6b7169203331",
                    "startTimeUnixNano": str(NOW_NS)}]}]}]}), headers=auth(key, "application/json"))
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    assert status_of(resp).code == 14
    assert as_json.status_code == 503 and as_json.json()["code"] == 14


def test_the_exporter_reports_a_refused_key_as_a_failure(stack: CommonSettings, live_url: str) -> None:
    """The exporter reads our 401 (a google.rpc.Status) as a failed export, not as success."""
    exporter = OTLPSpanExporter(endpoint=f"{live_url}/v1/traces", headers={"Authorization": "Bearer lk_nope"},
                                timeout=5)
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("x") as one:
        pass
    assert exporter.export([one]) is SpanExportResult.FAILURE  # type: ignore[list-item]
