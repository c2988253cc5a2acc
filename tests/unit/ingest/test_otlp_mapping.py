"""OTLP span -> interaction event: both generations of the GenAI conventions, OpenInference, the trace tree,
the limits, the rejections. Spans are built with the real opentelemetry-proto classes."""

from __future__ import annotations

import gzip
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from google.protobuf import json_format

from llmops_ingest.intake import TimeWindow
from llmops_ingest.otlp import decode, mapping
from llmops_shared.contract import MAX_METADATA_BYTES, MAX_METADATA_KEYS, Interaction
from tests.support.otlp import NOW_NS, request, span

TENANT = "acme"
NOW = datetime.fromtimestamp(NOW_NS / 1e9, UTC)
WINDOW = TimeWindow(now=NOW, max_age=timedelta(days=30), max_ahead=timedelta(days=1))


def one(s: Any, **kwargs: Any) -> Interaction:
    mapped = mapping.map_request(decode.Decoded(request(s, **kwargs)), tenant_id=TENANT, window=WINDOW)
    assert not mapped.rejected, mapped.summary()
    return mapped.accepted[0]


def test_genai_current_names_messages_in_attributes() -> None:
    event = one(span(name="chat gpt-4o-mini", attrs={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30, "gen_ai.usage.cache_read.input_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 10, "gen_ai.conversation.id": "conv-1",
        "gen_ai.response.time_to_first_chunk": 0.05, "gen_ai.request.temperature": 0.2,
        "gen_ai.system_instructions": '[{"type": "text", "content": "Be brief."}]',
        "gen_ai.input.messages": orjson.dumps([
            {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "weather",
                                              "arguments": {"city": "Paris"}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "sunny"}]},
        ]).decode(),
        "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}], '
                                  '"finish_reason": "stop"}]',
    }))
    assert (event.span_kind, event.provider, event.model, event.response_model) == \
        ("llm", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert event.usage is not None and event.usage.model_dump() == {
        "input_tokens": 120, "output_tokens": 30, "cache_read_input_tokens": 100, "cache_write_input_tokens": 0,
        "reasoning_tokens": 10}
    assert isinstance(event.input, list)
    assert [(m.role, m.text()) for m in event.input] == [
        ("system", "Be brief."), ("user", "Weather in Paris?"), ("assistant", ""), ("tool", "sunny")]
    assert event.input[2].tool_calls is not None and event.input[2].tool_calls[0].name == "weather"
    assert orjson.loads(event.input[2].tool_calls[0].arguments) == {"city": "Paris"}
    assert event.input[3].tool_call_id == "c1"
    assert isinstance(event.output, list) and event.output[0].text() == "Sunny."
    assert event.session_id == "conv-1" and event.time_to_first_token_ms == pytest.approx(50)
    assert event.latency_ms == pytest.approx(250) and event.occurred_at == NOW
    assert event.metadata["gen_ai.request.temperature"] == 0.2  # unmapped attributes are kept
    assert "gen_ai.input.messages" not in event.metadata and event.app_id == "support-bot"


def test_genai_older_names_messages_in_span_events() -> None:
    event = one(span(attrs={"gen_ai.system": "OpenAI", "gen_ai.request.model": "gpt-4o",
                            "gen_ai.usage.prompt_tokens": 50, "gen_ai.usage.completion_tokens": 7},
                     events=[("gen_ai.system.message", {"gen_ai.system": "openai", "content": "Be brief."}),
                             ("gen_ai.user.message", {"content": "Hi"}),
                             ("gen_ai.choice", {"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": "Hello!"}})]))
    assert (event.span_kind, event.provider, event.model) == ("llm", "openai", "gpt-4o")
    assert event.usage is not None and (event.usage.input_tokens, event.usage.output_tokens) == (50, 7)
    assert isinstance(event.input, list) and [(m.role, m.text()) for m in event.input] == \
        [("system", "Be brief."), ("user", "Hi")]
    assert isinstance(event.output, list) and [(m.role, m.text()) for m in event.output] == [("assistant", "Hello!")]


def test_genai_oldest_prompt_events_and_flattened_prompt_attributes() -> None:
    by_event = one(span(attrs={"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4"},
                        events=[("gen_ai.content.prompt", {"gen_ai.prompt": '[{"role": "user", "content": "Q"}]'}),
                                ("gen_ai.content.completion",
                                 {"gen_ai.completion": '[{"role": "assistant", "content": "A"}]'})]))
    assert isinstance(by_event.input, list) and by_event.input[0].text() == "Q"
    assert isinstance(by_event.output, list) and by_event.output[0].text() == "A"
    flattened = one(span(attrs={"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4",
                                "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Q",
                                "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "A",
                                "gen_ai.completion.0.finish_reason": "stop"}))
    assert isinstance(flattened.input, list) and flattened.input[0].text() == "Q"
    assert isinstance(flattened.output, list) and flattened.output[0].text() == "A"
    assert not any(k.startswith(("gen_ai.prompt", "gen_ai.completion")) for k in flattened.metadata)


def test_openinference_llm_span() -> None:
    event = one(span(attrs={
        "openinference.span.kind": "LLM", "llm.model_name": "claude-sonnet-4-20250514", "llm.provider": "anthropic",
        "llm.token_count.prompt": 1000, "llm.token_count.completion": 40, "llm.token_count.total": 1040,
        "llm.token_count.prompt_details.cache_read": 800, "llm.token_count.prompt_details.cache_write": 100,
        "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "Be brief.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "What is this?",
        "llm.input_messages.1.message.contents.1.message_content.type": "image",
        "llm.input_messages.1.message.contents.1.message_content.image.image.url": "https://x.test/a.png",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "t1",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"q": "x"}',
        "llm.invocation_parameters": '{"temperature": 0}', "session.id": "s-9", "user.id": "u-1",
        "tag.tags": ["beta", "eu"], "metadata": '{"team": "search"}',
        "input.value": "raw prompt text", "input.mime_type": "text/plain",
    }))
    assert (event.span_kind, event.provider, event.model) == ("llm", "anthropic", "claude-sonnet-4-20250514")
    assert event.usage is not None and (event.usage.input_tokens, event.usage.cache_read_input_tokens,
                                        event.usage.cache_write_input_tokens) == (1000, 800, 100)
    assert isinstance(event.input, list) and event.input[0].text() == "Be brief."
    parts = event.input[1].content
    assert isinstance(parts, list) and [(p.type, p.text, p.url) for p in parts] == \
        [("text", "What is this?", None), ("image", None, "https://x.test/a.png")]
    assert isinstance(event.output, list) and event.output[0].tool_calls is not None
    assert (event.output[0].tool_calls[0].id, event.output[0].tool_calls[0].name) == ("t1", "lookup")
    assert (event.session_id, event.user_id, event.tags) == ("s-9", "u-1", ["beta", "eu"])
    assert event.metadata["team"] == "search" and event.metadata["llm.invocation_parameters"] == '{"temperature": 0}'
    assert "input.value" not in event.metadata  # prompt text never lands in metadata


def test_cache_tokens_reported_apart_are_added_into_input() -> None:
    event = one(span(attrs={"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-3-5-haiku",
                            "gen_ai.usage.input_tokens": 10, "gen_ai.usage.cache_read.input_tokens": 500,
                            "gen_ai.usage.output_tokens": 5}))
    assert event.usage is not None and (event.usage.input_tokens, event.usage.cache_read_input_tokens) == (510, 500)


@pytest.mark.parametrize(("attrs", "kind"), [
    ({"openinference.span.kind": "AGENT"}, "agent"), ({"openinference.span.kind": "CHAIN"}, "chain"),
    ({"openinference.span.kind": "TOOL", "tool.name": "search"}, "tool"),
    ({"openinference.span.kind": "RETRIEVER"}, "retriever"), ({"openinference.span.kind": "RERANKER"}, "retriever"),
    ({"openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small"}, "embedding"),
    ({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}, "agent"),
    ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}, "tool"),
    ({"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small"}, "embedding"),
    ({"gen_ai.request.model": "gpt-4o"}, "llm"),
    ({"http.route": "/ask"}, "chain"),
])
def test_span_kinds(attrs: dict[str, Any], kind: str) -> None:
    assert one(span(attrs=attrs)).span_kind == kind


def test_an_openinference_embedding_names_its_model_for_billing() -> None:
    event = one(span(attrs={"openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small",
                            "llm.token_count.prompt": 12, "embedding.embeddings.0.embedding.text": "refund policy",
                            "embedding.embeddings.0.embedding.vector": [0.1, 0.2]}))
    assert (event.span_kind, event.model, event.input) == ("embedding", "text-embedding-3-small", "refund policy")
    assert event.usage is not None and event.usage.input_tokens == 12
    assert not any(k.startswith("embedding.embeddings") for k in event.metadata)  # vectors are not metadata


def test_non_llm_spans_keep_the_trace_tree_and_their_payloads() -> None:
    trace = os.urandom(16)
    root, tool, retriever = os.urandom(8), os.urandom(8), os.urandom(8)
    req = request(
        span(trace_id=trace, span_id=root, name="agent", attrs={"openinference.span.kind": "AGENT"}),
        span(trace_id=trace, span_id=tool, parent=root, name="execute_tool search",
             attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": '{"q": "refund"}',
                    "gen_ai.tool.call.result": "3 hits"}),
        span(trace_id=trace, span_id=retriever, parent=root, name="retrieve",
             attrs={"openinference.span.kind": "RETRIEVER", "input.value": "refund policy",
                    "retrieval.documents.0.document.content": "Refunds within 30 days.",
                    "retrieval.documents.0.document.id": "doc-1",
                    "retrieval.documents.1.document.content": "Keep the receipt."}),
    )
    mapped = mapping.map_request(decode.Decoded(req), tenant_id=TENANT, window=WINDOW)
    by_span = {e.span_id: e for e in mapped.accepted}
    assert by_span[root.hex()].parent_span_id is None
    assert by_span[tool.hex()].parent_span_id == root.hex() == by_span[retriever.hex()].parent_span_id
    assert {e.trace_id for e in mapped.accepted} == {trace.hex()}
    assert (by_span[tool.hex()].input, by_span[tool.hex()].output) == ('{"q": "refund"}', "3 hits")
    assert by_span[retriever.hex()].input == "refund policy"
    assert by_span[retriever.hex()].output == "Refunds within 30 days.\n\nKeep the receipt."
    assert not any(k.startswith("retrieval.documents") for k in by_span[retriever.hex()].metadata)


def test_status_and_exception_events_make_an_error() -> None:
    event = one(span(error="rate limited", attrs={"gen_ai.request.model": "gpt-4o"},
                     events=[("exception", {"exception.type": "openai.RateLimitError",
                                            "exception.message": "429 Too Many Requests"})]))
    assert event.status == "error" and event.error is not None
    assert (event.error.type, event.error.message) == ("openai.RateLimitError", "rate limited")
    typed = one(span(attrs={"gen_ai.request.model": "gpt-4o", "error.type": "timeout"}))
    assert typed.status == "error" and typed.error is not None and typed.error.type == "timeout"
    assert one(span(attrs={"gen_ai.request.model": "gpt-4o"})).status == "ok"


def test_app_and_environment_from_the_resource_with_fallbacks() -> None:
    event = one(span(), resource={"service.name": "checkout api", "deployment.environment.name": "staging",
                                  "service.version": "1.2.3"})
    assert (event.app_id, event.environment, event.metadata["service.version"]) == ("checkout-api", "staging", "1.2.3")
    older = one(span(), resource={"service.name": "bot", "deployment.environment": "dev"})
    assert (older.app_id, older.environment) == ("bot", "dev")
    assert (one(span(), resource={}).app_id, one(span(), resource={}).environment) == ("unknown_service", "production")


def test_event_ids_are_deterministic_per_tenant_trace_and_span() -> None:
    s = span()
    first = mapping.map_request(decode.Decoded(request(s)), tenant_id=TENANT, window=WINDOW).accepted[0]
    again = mapping.map_request(decode.Decoded(request(s)), tenant_id=TENANT, window=WINDOW).accepted[0]
    other = mapping.map_request(decode.Decoded(request(s)), tenant_id="globex", window=WINDOW).accepted[0]
    assert first.event_id == again.event_id != other.event_id
    assert first.event_id == mapping.event_id(TENANT, s.trace_id.hex(), s.span_id.hex())
    assert first.event_id.version == 5 and isinstance(first.event_id, uuid.UUID)


def test_unmapped_attributes_fit_the_contracts_limits_and_never_cost_the_span() -> None:
    attrs: dict[str, Any] = {f"custom.attr.{i}": f"value {i} " + "x" * 400 for i in range(200)}
    attrs["custom.huge"] = "y" * 100_000
    attrs["custom.control"] = "a\x00b"
    attrs["custom.nested"] = {"a": [1, 2, {"b": "c"}]}
    attrs = {"custom.huge": attrs.pop("custom.huge"), "custom.control": attrs.pop("custom.control"),
             "custom.nested": attrs.pop("custom.nested"), **attrs}
    event = one(span(attrs={"gen_ai.request.model": "gpt-4o", **attrs}))
    meta = event.metadata
    assert len(meta) <= MAX_METADATA_KEYS and len(orjson.dumps(meta)) <= MAX_METADATA_BYTES
    assert len(meta["custom.huge"]) == mapping.METADATA_VALUE_CHARS
    assert meta["custom.control"] == "a\ufffdb" and meta["custom.nested"] == '{"a":[1,2,{"b":"c"}]}'
    kept = sum(1 for k in meta if k.startswith("custom."))
    assert meta["otel.dropped_attributes"] == len(attrs) - kept > 0
    assert meta["otel.truncated_attributes"] >= 1


@pytest.mark.parametrize(("broken", "reason"), [
    ({"trace_id": b"\x01" * 8}, "trace_id: must be 16 bytes"),
    ({"trace_id": b"\x00" * 16}, "trace_id: must be 16 bytes, not all zero"),
    ({"span_id": b""}, "span_id: must be 8 bytes"),
    ({"parent": b"\x01\x02"}, "parent_span_id: must be 8 bytes or empty"),
    ({"start_ns": 0}, "start_time_unix_nano: missing"),
    ({"duration_ms": -5}, None),  # no end time: accepted, no latency
    ({"start_ns": NOW_NS - 40 * 86_400 * 10**9}, "start_time_unix_nano: more than 30 day(s) before"),
    ({"attrs": {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": -4}}, "usage.input_tokens"),
])
def test_invalid_spans_are_rejected_alone_with_a_reason(broken: dict[str, Any], reason: str | None) -> None:
    good = span()
    mapped = mapping.map_request(decode.Decoded(request(good, span(**broken), span())),
                                 tenant_id=TENANT, window=WINDOW)
    if reason is None:
        assert len(mapped.accepted) == 3 and mapped.accepted[1].latency_ms is None
        return
    assert len(mapped.accepted) == 2 and [r.index for r in mapped.rejected] == [1]
    assert reason in mapped.rejected[0].reason
    assert mapped.summary().startswith("1 span(s) rejected: span 1 (trace ")


def test_otlp_json_ids_are_hex_and_a_bad_hex_id_rejects_only_its_span() -> None:
    good, bad = span(), span()
    doc = json_format.MessageToDict(request(good, bad))
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["traceId"], spans[0]["spanId"] = good.trace_id.hex().upper(), good.span_id.hex()
    spans[1]["traceId"], spans[1]["spanId"] = "not-hex-at-all", bad.span_id.hex()
    spans[0]["unknownField"] = {"ignored": True}
    decoded = decode.parse(orjson.dumps(doc), decode.Encoding.JSON)
    mapped = mapping.map_request(decoded, tenant_id=TENANT, window=WINDOW)
    assert [e.trace_id for e in mapped.accepted] == [good.trace_id.hex()]
    assert [r.index for r in mapped.rejected] == [1] and "is not 32 hex digits" in mapped.rejected[0].reason


def test_the_wire_content_types_gzip_and_corrupt_bodies() -> None:
    assert decode.encoding_of("application/x-protobuf") is decode.Encoding.PROTOBUF
    assert decode.encoding_of("Application/JSON; charset=utf-8") is decode.Encoding.JSON
    assert decode.encoding_of("text/plain") is None and decode.encoding_of(None) is None
    body = request(span()).SerializeToString()
    assert decode.decompress(gzip.compress(body), "gzip", max_bytes=10_000) == body
    with pytest.raises(decode.WireError) as too_big:
        decode.decompress(gzip.compress(b"\0" * 1_000_000), "gzip", max_bytes=10_000)
    assert too_big.value.status == 413
    with pytest.raises(decode.WireError) as unknown:
        decode.decompress(body, "br", max_bytes=10_000)
    assert unknown.value.status == 415
    for corrupt, encoding in ((b"not a protobuf", decode.Encoding.PROTOBUF), (body[:-3], decode.Encoding.PROTOBUF),
                              (b"{", decode.Encoding.JSON), (b"[]", decode.Encoding.JSON),
                              (b'{"resourceSpans": 5}', decode.Encoding.JSON)):
        with pytest.raises(decode.WireError) as error:
            decode.parse(corrupt, encoding)
        assert error.value.status == 400, corrupt
    with pytest.raises(decode.WireError) as truncated:
        decode.decompress(gzip.compress(body)[:-8], "gzip", max_bytes=10_000)
    assert truncated.value.status == 400


# Odd shapes instrumentations send (or a hostile client does): every one maps to an event or a rejection with
# a reason, never an exception (which would fail the request's other spans). A fixed seed: deterministic.
_KEYS = ["gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.prompt",
         "gen_ai.completion", "llm.input_messages.0.message.role", "llm.input_messages.0.message.content",
         "llm.input_messages.x.message.role", "llm.input_messages.0.message.tool_calls.0.tool_call.function.name",
         "llm.input_messages.0.message.tool_calls.0.tool_call.function.arguments",
         "llm.input_messages.0.message.contents.0.message_content.text",
         "llm.input_messages.0.message.contents.0.message_content.type",
         "llm.input_messages.0.message.contents.1.message_content.image.image.url",
         "llm.output_messages.0.message.role",
         "llm.output_messages.1.message.content", "gen_ai.prompt.0.role", "gen_ai.prompt.0.content",
         "gen_ai.completion.0.content", "input.value", "output.value", "gen_ai.tool.call.arguments",
         "retrieval.documents.0.document.content", "embedding.embeddings.0.embedding.text", "gen_ai.usage.input_tokens",
         "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.reasoning.output_tokens",
         "llm.token_count.prompt", "gen_ai.request.model", "gen_ai.provider.name", "gen_ai.system",
         "openinference.span.kind", "gen_ai.operation.name", "tag.tags", "metadata", "session.id", "user.id",
         "error.type", "gen_ai.response.time_to_first_chunk", "gen_ai.conversation.id"]
_VALUES: list[Any] = [
    "", "x", "user", "assistant", "LLM", "chat", 0, -1, 5, 10**15, 1.5, float("nan"), True, [], [1, "a"], {}, {"a": 1},
    '[{"role": "user", "parts": 5}]', '[{"role": "user", "parts": [5, {"type": 3}, {"type": "text", "content": 7}]}]',
    '[{"role": "tool", "parts": [{"type": "tool_call_response", "id": 5, "response": {"a": 1}}]}]',
    '[{"role": "assistant", "parts": [{"type": "tool_call", "name": "", "arguments": null}]}]',
    '{"role": "user", "content": [1, {"text": 5}]}', '[{"role": "user", "content": {"x": 1}, "tool_calls": "nope"}]',
    '[{"role": "user", "content": "a", "tool_calls": [{"function": 5}]}]', "[1,2", "{", '"str"', "\x00\x01", "a" * 2000,
    [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}], [{"id": 5, "function": {"name": 7}}],
    {"role": 5, "content": None}, {"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "g"}}]},
    '[{"role": "system", "parts": [{"type": "uri", "uri": 5}, {"type": "blob"}, '
    '{"type": "reasoning", "content": "r"}]}]',
    '[{"type": "text", "content": 5}]', '{"team": [1, {"a": "\\u0000"}]}', ["a\x00", 5], "12", "-3", "1e400"]
_EVENTS = ["gen_ai.user.message", "gen_ai.choice", "gen_ai.content.prompt", "exception", "other"]
_EVENT_KEYS = ["content", "role", "tool_calls", "id", "message", "gen_ai.event.content", "gen_ai.prompt",
               "exception.type", "exception.message"]


def test_no_attribute_shape_raises_anything_but_a_rejection() -> None:
    import random

    rng = random.Random(20261203)
    outcomes = {"accepted": 0, "rejected": 0}
    for _ in range(3_000):
        attrs = {rng.choice(_KEYS): rng.choice(_VALUES) for _ in range(rng.randint(0, 8))}
        events = [(rng.choice(_EVENTS), {rng.choice(_EVENT_KEYS): rng.choice(_VALUES) for _ in range(3)})
                  for _ in range(rng.randint(0, 3))]
        s = span(attrs=attrs, events=events, error=rng.choice([None, "boom"]))
        try:
            mapping.span_to_interaction(s, tenant_id=TENANT, origin=mapping.origin_of({}))
            outcomes["accepted"] += 1
        except mapping.SpanRejected:
            outcomes["rejected"] += 1
    assert outcomes["accepted"] > 1_000 and outcomes["rejected"] > 100


def test_a_span_that_breaks_the_mapping_is_rejected_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    real = mapping.conversation

    def breaks_on_one(attrs: Any, events: Any) -> Any:
        if attrs.get("poison"):
            raise RuntimeError("a shape no rule foresaw")
        return real(attrs, events)

    monkeypatch.setattr(mapping, "conversation", breaks_on_one)
    mapped = mapping.map_request(decode.Decoded(request(span(), span(attrs={"poison": True}), span())),
                                 tenant_id=TENANT, window=WINDOW)
    assert len(mapped.accepted) == 2
    assert [(r.index, r.reason) for r in mapped.rejected] == [(1, "could not be mapped (RuntimeError)")]
