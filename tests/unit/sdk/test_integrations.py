"""The integrations keep the SDK's promise with the real packages: with the suite unreachable (nothing
listens where the recorder sends) and with a recorder that fails on every call, each integration raises
nothing into the app and the app gets exactly what the library returned; and the token mappings add
Anthropic's cache counts into the contract's input."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: LiteLLM's bundled cost map

from llmops_devtools.fake_anthropic import FakeAnthropicConfig, FakeAnthropicServer
from llmops_devtools.fake_openai import FakeLLMServer
from llmops_devtools.testing import free_port
from llmops_sdk import Recorder, instrument_anthropic
from llmops_sdk.spans import identifier
from llmops_sdk.tokens import anthropic_usage, any_usage, langchain_usage, openai_usage


class Broken:
    """A recorder whose every method raises: the worst a recorder can do."""

    def record(self, *args: Any, **kwargs: Any) -> str:
        raise RuntimeError("recorder broken")


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(poll_interval_s=0.1) as server:
        yield server


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(config=FakeAnthropicConfig(cache_read_input_tokens=10)) as server:
        yield server


@pytest.fixture(params=["unreachable", "broken"])
def recorder(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "broken":
        yield Broken()
        return
    made = Recorder(endpoint=f"http://127.0.0.1:{free_port()}", api_key="k", app_id="offline",
                    flush_interval_s=0.05, max_retries=1, backoff_base_s=0.01, request_timeout_s=0.5)
    yield made
    made.close(0.5)


def dump(obj: Any) -> Any:
    data = obj.model_dump() if hasattr(obj, "model_dump") else obj
    if isinstance(data, dict):
        data.pop("created", None)
        data.pop("id", None)
    return data


def test_anthropic_calls_return_what_the_client_returns(anthropic_server: FakeAnthropicServer, recorder: Any) -> None:
    import anthropic

    ask: dict[str, Any] = {"model": "claude-sonnet-4-20250514", "max_tokens": 50,
                           "messages": [{"role": "user", "content": "Where is my order?"}]}
    plain = anthropic.Anthropic(base_url=anthropic_server.url, api_key="x", max_retries=0)
    wrapped = instrument_anthropic(anthropic.Anthropic(base_url=anthropic_server.url, api_key="x", max_retries=0),
                                   recorder)
    assert dump(wrapped.messages.create(**ask)) == dump(plain.messages.create(**ask))
    assert [dump(e) for e in wrapped.messages.create(**ask, stream=True)] == \
        [dump(e) for e in plain.messages.create(**ask, stream=True)]
    with wrapped.messages.stream(**ask) as ours, plain.messages.stream(**ask) as theirs:
        assert list(ours.text_stream) == list(theirs.text_stream)
    with pytest.raises(anthropic.RateLimitError) as raised:
        wrapped.messages.create(**ask, extra_headers={"x-fake-mode": "429"})
    assert raised.value.status_code == 429  # the client's own exception, unchanged

    async def both() -> tuple[Any, Any]:
        async with anthropic.AsyncAnthropic(base_url=anthropic_server.url, api_key="x", max_retries=0) as a, \
                anthropic.AsyncAnthropic(base_url=anthropic_server.url, api_key="x", max_retries=0) as b:
            instrument_anthropic(b, recorder)
            return await a.messages.create(**ask), await b.messages.create(**ask)

    theirs, ours = asyncio.run(both())
    assert dump(ours) == dump(theirs)


def test_langchain_handler_changes_nothing(openai_server: FakeLLMServer, recorder: Any) -> None:
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda
    from langchain_openai import ChatOpenAI

    from llmops_sdk.langchain import LLMOpsCallbackHandler

    llm = ChatOpenAI(model="gpt-4o-mini", base_url=openai_server.url, api_key="sk-test", max_retries=0)
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | llm
    handler = LLMOpsCallbackHandler(recorder)
    with_handler = chain.invoke({"q": "Where is my order?"}, config={"callbacks": [handler]})
    without = chain.invoke({"q": "Where is my order?"})
    assert with_handler.content == without.content and with_handler.usage_metadata == without.usage_metadata

    def fails(_: Any) -> None:
        raise ValueError("the app's own error")

    with pytest.raises(ValueError, match="the app's own error"):
        RunnableLambda(fails).invoke("x", config={"callbacks": [handler]})
    assert len(handler.runs) == 0  # every run ended, recorded or not


def test_llamaindex_instrumentation_changes_nothing(openai_server: FakeLLMServer, recorder: Any) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai import OpenAI

    from llmops_sdk.llamaindex import instrument_llamaindex

    llm = OpenAI(model="gpt-4o-mini", api_base=openai_server.url, api_key="sk-test", max_retries=0)
    messages = [ChatMessage(role="user", content="Where is my order?")]
    without = llm.chat(messages)
    instrumentation = instrument_llamaindex(recorder)
    try:
        with_handlers = llm.chat(messages)
        streamed = [c.delta for c in llm.stream_chat(messages)]
    finally:
        instrumentation.close()
    assert with_handlers.message.content == without.message.content
    assert "".join(d or "" for d in streamed) == without.message.content
    assert len(instrumentation.runs) == 0


def test_litellm_callback_changes_nothing(openai_server: FakeLLMServer, recorder: Any) -> None:
    import litellm

    from llmops_sdk.litellm import LLMOpsLogger

    ask: dict[str, Any] = {"model": "openai/gpt-4o-mini", "api_base": openai_server.url, "api_key": "sk-test",
                           "messages": [{"role": "user", "content": "Where is my order?"}]}
    without = litellm.completion(**ask)
    previous, litellm.callbacks = litellm.callbacks, [LLMOpsLogger(recorder)]
    try:
        with_callback = litellm.completion(**ask)
        with pytest.raises(litellm.BadRequestError):
            litellm.completion(**ask, extra_headers={"x-fake-mode": "400"}, num_retries=0)
    finally:
        # LiteLLM copies `callbacks` into lists of its own when a call starts: empty those too.
        litellm.logging_callback_manager._reset_all_callbacks()
        litellm.callbacks = previous
    assert with_callback.choices[0].message.content == without.choices[0].message.content
    assert with_callback.usage.prompt_tokens == without.usage.prompt_tokens


def test_anthropic_cache_counts_are_added_into_the_contracts_input() -> None:
    reported = {"input_tokens": 20, "output_tokens": 7, "cache_read_input_tokens": 1_000,
                "cache_creation_input_tokens": 300}
    assert anthropic_usage(reported) == any_usage(reported) == {
        "input_tokens": 1_320, "output_tokens": 7, "cache_read_input_tokens": 1_000, "cache_write_input_tokens": 300}
    # LangChain's usage_metadata and OpenAI's usage already include the cache in their input.
    assert langchain_usage({"input_tokens": 1_320, "output_tokens": 7,
                            "input_token_details": {"cache_read": 1_000, "cache_creation": 300}}) == \
        anthropic_usage(reported)
    assert openai_usage({"prompt_tokens": 1_020, "completion_tokens": 7,
                         "prompt_tokens_details": {"cached_tokens": 1_000}}) == \
        {"input_tokens": 1_020, "output_tokens": 7, "cache_read_input_tokens": 1_000}


def test_framework_ids_become_valid_contract_ids_the_same_way_every_time() -> None:
    assert identifier("OpenAI.chat-6e23ebd4-b681-4f56-889b-27ffb70c9553") == \
        "OpenAI.chat-6e23ebd4-b681-4f56-889b-27ffb70c9553"
    odd = "test_x.<locals>.answer-6e23ebd4-b681-4f56-889b-27ffb70c9553" + "x" * 100
    assert identifier(odd) == identifier(odd) != identifier(odd + "y")
    assert len(identifier(odd)) <= 128 and "<" not in identifier(odd)
