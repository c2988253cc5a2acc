"""`instrument_openai`: the wrapped client behaves exactly like the unwrapped one against a local
OpenAI-compatible server, and each call becomes one valid interaction event."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import openai
import pytest

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_sdk import Recorder, instrument_openai, span
from llmops_sdk.instrument import _message
from llmops_shared.contract import ChatMessage, Interaction
from tests.unit.sdk.receiver import Receiver

MakeRecorder = Callable[..., Recorder]
MESSAGES = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Where is my order number 1234?"}]


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer()
    httpd = server._httpd
    # The fake writes headers and body in two sends: without this each reply waits ~40 ms for a delayed
    # ACK. And a stream the client leaves early resets its connection, which the server would print.
    httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]

    def quiet_resets(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            ThreadingHTTPServer.handle_error(httpd, request, client_address)

    httpd.handle_error = quiet_resets  # type: ignore[method-assign]
    with server:
        yield server


@pytest.fixture
def fake(llm: FakeLLMServer) -> FakeLLMServer:
    llm.reset()
    llm.config.reply_text = None
    return llm


@pytest.fixture
def recorder(receiver: Receiver, make_recorder: MakeRecorder) -> Recorder:
    return make_recorder(receiver.url)


def clients(fake: FakeLLMServer, recorder: Recorder, *, is_async: bool) -> tuple[Any, Any]:
    kind = openai.AsyncOpenAI if is_async else openai.OpenAI
    plain = kind(base_url=fake.url, api_key="sk-test", max_retries=0)
    wrapped = instrument_openai(kind(base_url=fake.url, api_key="sk-test", max_retries=0), recorder)
    return plain, wrapped


def comparable(obj: Any) -> Any:
    """A response or chunk as data, without the server's clock (`created` may tick between calls)."""
    data = obj.model_dump()
    data.pop("created", None)
    return data


def events_of(recorder: Recorder, receiver: Receiver) -> list[dict[str, Any]]:
    assert recorder.flush(5)
    events = receiver.events()
    for event in events:
        Interaction.model_validate({**event, "tenant_id": "t-1"})  # what the ingest API will check
    return events


async def call(client: Any, **kwargs: Any) -> Any:
    result = client.chat.completions.create(**kwargs)
    return await result if isinstance(client, openai.AsyncOpenAI) else result


async def drain(stream: Any) -> list[Any]:
    if isinstance(stream, openai.AsyncStream):
        return [chunk async for chunk in stream]
    return list(stream)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_completion_is_returned_unchanged_and_recorded(
        is_async: bool, fake: FakeLLMServer, recorder: Recorder, receiver: Receiver) -> None:
    plain, wrapped = clients(fake, recorder, is_async=is_async)
    expected = await call(plain, model="gpt-4o-mini", messages=MESSAGES, temperature=0)
    got = await call(wrapped, model="gpt-4o-mini", messages=MESSAGES, temperature=0)

    assert type(got) is type(expected)
    assert comparable(got) == comparable(expected)
    assert fake.stats.bodies[0] == fake.stats.bodies[1]  # the request is not altered

    (event,) = events_of(recorder, receiver)
    usage = got.usage
    assert event["model"] == "gpt-4o-mini" and event["response_model"] == got.model
    assert event["provider"] == "127.0.0.1" and event["span_kind"] == "llm" and event["status"] == "ok"
    assert event["input"] == MESSAGES
    assert event["output"] == got.choices[0].message.content
    assert event["usage"] == {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
    assert event["latency_ms"] > 0 and "time_to_first_token_ms" not in event


@pytest.mark.parametrize("include_usage", [False, True], ids=["no-usage", "usage"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_stream_yields_the_same_chunks_in_order_and_is_recorded(
        is_async: bool, include_usage: bool, fake: FakeLLMServer, recorder: Recorder, receiver: Receiver) -> None:
    fake.config.reply_text = "Your order ships today from the Leeds warehouse."
    plain, wrapped = clients(fake, recorder, is_async=is_async)
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    expected_stream = await call(plain, model="gpt-4o-mini", messages=MESSAGES, stream=True, **options)
    got_stream = await call(wrapped, model="gpt-4o-mini", messages=MESSAGES, stream=True, **options)

    assert type(got_stream) is type(expected_stream)
    assert type(got_stream) is (openai.AsyncStream if is_async else openai.Stream)
    expected, got = await drain(expected_stream), await drain(got_stream)
    assert [type(c) for c in got] == [type(c) for c in expected]
    assert [comparable(c) for c in got] == [comparable(c) for c in expected]
    assert fake.stats.bodies[0] == fake.stats.bodies[1]
    assert ("stream_options" in fake.stats.bodies[1]) is include_usage  # nothing added to the request

    (event,) = events_of(recorder, receiver)
    assert event["output"] == "Your order ships today from the Leeds warehouse."
    assert event["input"] == MESSAGES and event["status"] == "ok"
    assert 0 < event["time_to_first_token_ms"] <= event["latency_ms"]
    if include_usage:
        usage = got[-1].usage
        assert event["usage"] == {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
    else:
        assert "usage" not in event


@pytest.mark.parametrize("mode", ["429", "500", "400", "malformed"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_errors_are_raised_the_same_and_recorded(
        is_async: bool, mode: str, fake: FakeLLMServer, recorder: Recorder, receiver: Receiver) -> None:
    fake.config.script.extend([mode, mode])
    plain, wrapped = clients(fake, recorder, is_async=is_async)
    outcomes = []
    for client in (plain, wrapped):
        try:
            result = await call(client, model="gpt-4o-mini", messages=MESSAGES)
        except Exception as exc:
            outcomes.append((type(exc), getattr(exc, "status_code", None), str(exc)))
        else:
            outcomes.append((type(result), None, None))
    assert outcomes[0] == outcomes[1]

    (event,) = events_of(recorder, receiver)
    error_class = outcomes[1][0]
    if issubclass(error_class, Exception):
        assert event["status"] == "error" and event["error"]["type"] == error_class.__name__
        if mode == "429":
            assert error_class is openai.RateLimitError and event["error"]["code"] == "rate_limit_exceeded"
        if mode == "500":
            assert error_class is openai.InternalServerError and event["error"]["code"] == "500"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_the_very_exception_the_client_raised_reaches_the_app(
        is_async: bool, fake: FakeLLMServer, recorder: Recorder) -> None:
    client = (openai.AsyncOpenAI if is_async else openai.OpenAI)(base_url=fake.url, api_key="sk-test",
                                                                  max_retries=0)
    real = client.chat.completions.create
    seen: list[Exception] = []

    def spy(**kwargs: Any) -> Any:
        try:
            return real(**kwargs)
        except Exception as exc:
            seen.append(exc)
            raise

    async def spy_async(**kwargs: Any) -> Any:
        try:
            return await real(**kwargs)
        except Exception as exc:
            seen.append(exc)
            raise

    client.chat.completions.create = spy_async if is_async else spy  # what the wrapper will call
    instrument_openai(client, recorder)
    fake.config.script.append("429")
    with pytest.raises(openai.RateLimitError) as raised:
        await call(client, model="gpt-4o-mini", messages=MESSAGES)
    assert len(seen) == 1 and raised.value is seen[0]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_stream_left_early_is_recorded_as_incomplete(
        is_async: bool, fake: FakeLLMServer, recorder: Recorder, receiver: Receiver) -> None:
    fake.config.reply_text = "one two three four five six seven eight nine ten"
    _, wrapped = clients(fake, recorder, is_async=is_async)
    stream = await call(wrapped, model="gpt-4o-mini", messages=MESSAGES, stream=True)
    if is_async:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream._iterator.aclose()  # what the event loop's async-generator finalizer does
        await stream.close()
    else:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        stream.close()
        del stream, chunk
        gc.collect()
    (event,) = events_of(recorder, receiver)
    assert event["metadata"] == {"stream_complete": False}
    assert event["status"] == "ok" and event["output"] == "one two "


def test_calls_inside_a_span_are_its_children(fake: FakeLLMServer, recorder: Recorder, receiver: Receiver) -> None:
    _, wrapped = clients(fake, recorder, is_async=False)
    with span("answer", recorder=recorder) as step:
        wrapped.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    by_kind = {e["span_kind"]: e for e in events_of(recorder, receiver)}
    assert by_kind["llm"]["parent_span_id"] == step.span_id
    assert by_kind["llm"]["trace_id"] == by_kind["chain"]["trace_id"] == step.trace_id


def test_instrumenting_twice_records_once_and_returns_the_client(
        fake: FakeLLMServer, recorder: Recorder, receiver: Receiver) -> None:
    client = openai.OpenAI(base_url=fake.url, api_key="sk-test", max_retries=0)
    assert instrument_openai(client, recorder) is client
    assert instrument_openai(client, recorder) is client
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(events_of(recorder, receiver)) == 1


def test_content_is_left_out_on_request(fake: FakeLLMServer, recorder: Recorder, receiver: Receiver) -> None:
    client = instrument_openai(openai.OpenAI(base_url=fake.url, api_key="sk-test", max_retries=0), recorder,
                               capture_content=False, provider="internal-gateway")
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (event,) = events_of(recorder, receiver)
    assert "input" not in event and "output" not in event
    assert event["provider"] == "internal-gateway" and event["usage"]["input_tokens"] > 0


def test_messages_given_as_a_generator_are_not_consumed(fake: FakeLLMServer, recorder: Recorder,
                                                        receiver: Receiver) -> None:
    _, wrapped = clients(fake, recorder, is_async=False)
    wrapped.chat.completions.create(model="gpt-4o-mini", messages=(m for m in MESSAGES))
    assert fake.stats.bodies[0]["messages"] == MESSAGES  # the client still read them all
    (event,) = events_of(recorder, receiver)
    assert "input" not in event


def test_openai_message_shapes_map_onto_the_contract() -> None:
    messages: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": 1}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "found"},
        {"role": "developer", "content": "be brief", "name": "ops"},
        openai.types.chat.ChatCompletionMessage(role="assistant", content="a reply"),
    ]
    mapped = [_message(m) for m in messages]
    for message in mapped:
        ChatMessage.model_validate(message)
    assert mapped[0]["content"] == [{"type": "text", "text": "What is in this picture?"},
                                    {"type": "image_url", "url": "https://example.com/a.png"},
                                    {"type": "image_url"}]
    assert mapped[1] == {"role": "assistant", "tool_calls": [
        {"id": "call_1", "type": "function", "name": "lookup", "arguments": "{\"id\": 1}"}]}
    assert mapped[2] == {"role": "tool", "tool_call_id": "call_1", "content": "found"}
    assert mapped[4] == {"role": "assistant", "content": "a reply"}
    assert _message({"role": "nobody", "content": "x"}) is None
