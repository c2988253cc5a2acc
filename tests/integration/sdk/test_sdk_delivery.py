"""The SDK on the real stack: through the ingest API (started here, with a real key) into Kafka, with the
API down at first, with a bad key, from an instrumented openai client, and straight to the broker."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import openai
import orjson
import pytest

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_ingest.api import create_app
from llmops_ingest.settings import IngestSettings
from llmops_sdk import Recorder, instrument_openai, span, trace
from llmops_shared.contract import Interaction, decode_interaction
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import INTERACTIONS_RAW
from tests.support.events import collect, end_offsets
from tests.support.servers import free_port, serve

pytestmark = pytest.mark.integration


def ingest_app(stack: CommonSettings):  # type: ignore[no-untyped-def]
    return create_app(IngestSettings(**stack.model_dump(), rate_limit_per_s=5_000, rate_limit_burst=10_000))


@pytest.fixture(scope="module")
def ingest_url(stack: CommonSettings) -> Iterator[str]:
    with serve(ingest_app(stack)) as url:
        yield url


def sdk(endpoint: str, key: str, **options: object) -> Recorder:
    settings: dict[str, object] = {"app_id": "sdk-it", "environment": "test", "flush_interval_s": 0.1,
                                   "backoff_base_s": 0.05, "backoff_max_s": 0.5, **options}
    return Recorder(endpoint=endpoint, api_key=key, **settings)  # type: ignore[arg-type]


async def arrived(stack: CommonSettings, since: dict, ids: set[str]) -> dict[str, Interaction]:  # type: ignore[type-arg]
    records = await collect(stack.kafka_bootstrap, INTERACTIONS_RAW, since,
                            keep=lambda r: orjson.loads(r.value)["event_id"] in ids,
                            until=lambda found: len({orjson.loads(r.value)["event_id"] for r in found}) >= len(ids))
    events = {}
    for record in records:
        event = decode_interaction(record.value)  # valid under the contract, as every consumer reads it
        assert record.key == event.trace_id.encode()  # keyed by trace: one trace, one partition
        events[str(event.event_id)] = event
    return events


async def test_events_reach_kafka_through_the_ingest_api(
        stack: CommonSettings, ingest_url: str, tenant: str, make_key) -> None:  # type: ignore[no-untyped-def]
    key = await make_key(tenant, ["ingest:write"])
    since = await end_offsets(stack.kafka_bootstrap, INTERACTIONS_RAW)
    recorder = sdk(ingest_url, key, batch_size=20)
    ids: set[str] = set()
    spans: dict[str, str] = {}  # span id -> trace id
    try:
        for turn in range(3):
            with trace(session_id=f"session-{turn}"), span("turn", recorder=recorder) as step:
                for i in range(10):
                    ids.add(recorder.record(name=f"call-{i}", provider="openai", model="gpt-4o-mini",
                                            input=[{"role": "user", "content": f"question {i}"}],
                                            output=f"answer {i}", usage={"input_tokens": 9, "output_tokens": 3},
                                            latency_ms=120.0) or "")
            spans[step.span_id or ""] = step.trace_id or ""
        assert await asyncio.to_thread(recorder.flush, 20)
        stats = recorder.stats()
        assert (stats.sent, stats.rejected, stats.failed) == (33, 0, 0)
    finally:
        recorder.close(5)

    records = await collect(stack.kafka_bootstrap, INTERACTIONS_RAW, since,
                            keep=lambda r: orjson.loads(r.value).get("tenant_id") == tenant,
                            until=lambda found: len(found) >= 33)
    events = [decode_interaction(r.value) for r in records]  # valid, as every consumer reads them
    assert all(r.key == e.trace_id.encode() for r, e in zip(records, events, strict=True))
    calls = {str(e.event_id): e for e in events if e.span_kind == "llm"}
    turns = [e for e in events if e.span_kind == "chain"]
    assert set(calls) == ids and len(events) == 33
    assert {t.span_id: t.trace_id for t in turns} == spans
    assert all(c.parent_span_id in spans and c.trace_id == spans[c.parent_span_id] for c in calls.values())
    assert all(e.app_id == "sdk-it" and e.environment == "test" and e.session_id for e in events)


async def test_with_ingest_down_at_first_events_arrive_once_it_starts(
        stack: CommonSettings, tenant: str, make_key) -> None:  # type: ignore[no-untyped-def]
    key = await make_key(tenant, ["ingest:write"])
    since = await end_offsets(stack.kafka_bootstrap, INTERACTIONS_RAW)
    port = free_port()
    recorder = sdk(f"http://127.0.0.1:{port}", key)
    try:
        ids = {recorder.record(name=f"early-{i}") or "" for i in range(15)}
        deadline = asyncio.get_running_loop().time() + 10
        while recorder.stats().retries < 2:  # it really was down, and the SDK kept trying
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        assert recorder.stats().sent == 0
        started = threading.Event()
        stop = threading.Event()

        def run_ingest() -> None:
            with serve(ingest_app(stack), port=port):
                started.set()
                stop.wait(60)

        server = threading.Thread(target=run_ingest, daemon=True)
        server.start()
        try:
            assert await asyncio.to_thread(started.wait, 30)
            assert await asyncio.to_thread(recorder.flush, 20)
        finally:
            stop.set()
        stats = recorder.stats()
        assert (stats.sent, stats.failed, stats.pending) == (15, 0, 0)
    finally:
        recorder.close(5)
    await asyncio.to_thread(server.join, 30)
    assert set(await arrived(stack, since, ids)) == ids


async def test_a_bad_key_is_rejected_once_and_not_retried(ingest_url: str) -> None:
    recorder = sdk(ingest_url, f"llmops_{uuid.uuid4().hex}")
    try:
        for _ in range(5):
            recorder.record()
        assert await asyncio.to_thread(recorder.flush, 10)
        stats = recorder.stats()
        assert (stats.rejected, stats.sent, stats.retries) == (5, 0, 0)
    finally:
        recorder.close(5)


async def test_an_instrumented_openai_call_reaches_kafka_as_a_valid_event(
        stack: CommonSettings, ingest_url: str, tenant: str, make_key) -> None:  # type: ignore[no-untyped-def]
    key = await make_key(tenant, ["ingest:write"])
    since = await end_offsets(stack.kafka_bootstrap, INTERACTIONS_RAW)
    recorder = sdk(ingest_url, key)
    with FakeLLMServer() as fake:
        client = instrument_openai(openai.AsyncOpenAI(base_url=fake.url, api_key="sk-test", max_retries=0),
                                   recorder)
        try:
            answer = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Where is my order?"}])
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "And the invoice?"}], stream=True,
                stream_options={"include_usage": True})
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert await asyncio.to_thread(recorder.flush, 20)
            assert recorder.stats().sent == 2
        finally:
            recorder.close(5)
            await client.close()
    records = await collect(stack.kafka_bootstrap, INTERACTIONS_RAW, since,
                            keep=lambda r: orjson.loads(r.value).get("tenant_id") == tenant,
                            until=lambda found: len(found) >= 2)
    events = sorted((decode_interaction(r.value) for r in records), key=lambda e: e.occurred_at)
    assert [e.output for e in events] == [answer.choices[0].message.content, streamed]
    assert all(e.usage is not None and e.usage.input_tokens > 0 and e.status == "ok" for e in events)
    assert events[1].time_to_first_token_ms is not None


async def test_the_kafka_transport_writes_straight_to_the_broker(stack: CommonSettings, tenant: str) -> None:
    since = await end_offsets(stack.kafka_bootstrap, INTERACTIONS_RAW)
    recorder = Recorder(app_id="sdk-it", environment="test", transport="kafka",
                        kafka_bootstrap=stack.kafka_bootstrap, kafka_topic=INTERACTIONS_RAW, tenant_id=tenant,
                        flush_interval_s=0.1)
    try:
        with trace() as t:
            ids = {recorder.record(name=f"direct-{i}", latency_ms=float(i)) or "" for i in range(12)}
        assert await asyncio.to_thread(recorder.flush, 30)
        assert recorder.stats().sent == 12
    finally:
        recorder.close(5)
    events = await arrived(stack, since, ids)
    assert set(events) == ids
    assert all(e.tenant_id == tenant and e.trace_id == t.trace_id for e in events.values())
