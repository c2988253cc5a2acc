"""Each SDK integration with the real package, against a local fake provider, through the real ingest API
and Kafka into the billing worker (its own process, as in production): the ledger holds the tokens the
provider reported and the cost the price file gives for them, and the events on Kafka form the right trace
tree. The ingest API and the worker use a topic of this module's own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest
import pytest_asyncio

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: LiteLLM's bundled cost map

from llmops_devtools.fake_anthropic import FakeAnthropicConfig, FakeAnthropicServer
from llmops_devtools.fake_openai import FakeLLMServer
from llmops_devtools.testing import litellm_price_table
from llmops_ingest.api import create_app
from llmops_ingest.settings import IngestSettings
from llmops_sdk import Recorder, span, trace
from llmops_shared.contract import Interaction, decode_interaction
from llmops_shared.kafka import ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from tests.support.events import collect, end_offsets
from tests.support.servers import serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

GPT, CLAUDE = "gpt-4o-mini", "claude-sonnet-4-20250514"
PRICES = litellm_price_table([GPT, CLAUDE])


def expected_cost(model: str, usage: dict[str, int]) -> Decimal:
    """Plain Decimal arithmetic on the price file's numbers (the contract: input includes the cache counts)."""
    p = PRICES[model]
    cache_read, cache_write = usage.get("cache_read_input_tokens", 0), usage.get("cache_write_input_tokens", 0)
    return ((usage["input_tokens"] - cache_read - cache_write) * p["input"] + cache_read * p["cache_read"]
            + cache_write * p["cache_write"] + usage["output_tokens"] * p["output"] + p["request"])


class Pipeline:
    def __init__(self, stack: CommonSettings, topic: str, ingest_url: str) -> None:
        self.stack, self.topic, self.ingest_url = stack, topic, ingest_url


@pytest.fixture(scope="module")
def pipeline(stack: CommonSettings) -> Iterator[Pipeline]:
    topic, group = f"{TOPIC_PREFIX}sdk.integrations.{uuid.uuid4().hex[:8]}", f"billing-sdk-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(stack.kafka_bootstrap, (TopicSpec(topic, partitions=2, retention_ms=3_600_000),)))
    settings = IngestSettings(**stack.model_dump(), topic=topic, rate_limit_per_s=5_000, rate_limit_burst=10_000)
    env = {**os.environ, "LLMOPS_DATABASE_URL": stack.database_url, "LLMOPS_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
           "LLMOPS_BILLING_TOPIC": topic, "LLMOPS_BILLING_GROUP": group, "LLMOPS_BILLING_BATCH_MAX_WAIT_MS": "50",
           "LLMOPS_LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen([sys.executable, "-m", "llmops_billing.worker"], env=env)
    try:
        with serve(create_app(settings)) as url:
            yield Pipeline(stack, topic, url)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(poll_interval_s=0.1) as server:
        yield server


@pytest_asyncio.fixture
async def recorder(pipeline: Pipeline, tenant: str, make_key: Any) -> AsyncIterator[Recorder]:
    key = await make_key(tenant, ["ingest:write"])
    made = Recorder(endpoint=pipeline.ingest_url, api_key=key, app_id="integrations-e2e", environment="test",
                    flush_interval_s=0.1)
    yield made
    made.close(5)


async def delivered(recorder: Recorder, pipeline: Pipeline, since: dict, count: int) -> list[Interaction]:  # type: ignore[type-arg]
    """Flush, then the events that reached the topic (valid under the contract), by their start time."""
    assert await asyncio.to_thread(recorder.flush, 20)
    stats = recorder.stats()
    assert (stats.sent, stats.rejected, stats.invalid, stats.failed) == (count, 0, 0, 0)
    tenant_records = await collect(pipeline.stack.kafka_bootstrap, pipeline.topic, since,
                                   keep=lambda r: orjson.loads(r.value)["app_id"] == "integrations-e2e",
                                   until=lambda found: len(found) >= count)
    events = [decode_interaction(r.value) for r in tenant_records]
    return sorted(events, key=lambda e: e.occurred_at)


async def ledger(pool: asyncpg.Pool, tenant: str, count: int) -> dict[str, asyncpg.Record]:
    """The billing worker's ledger rows of `tenant`, by event id, once there are `count`."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        rows = await pool.fetch("SELECT event_id::text AS id, model, input_tokens, output_tokens, "
                                "cache_read_input_tokens, cache_write_input_tokens, unpriced, cost_total "
                                "FROM usage_ledger WHERE tenant_id = $1", tenant)
        if len(rows) >= count:
            assert len(rows) == count
            return {r["id"]: r for r in rows}
        assert asyncio.get_running_loop().time() < deadline, f"the ledger has {len(rows)} of {count} rows"
        await asyncio.sleep(0.2)


def assert_billed(rows: dict[str, asyncpg.Record], event: Interaction, model: str, usage: dict[str, int]) -> None:
    row = rows[str(event.event_id)]
    got = {"input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"],
           "cache_read_input_tokens": row["cache_read_input_tokens"],
           "cache_write_input_tokens": row["cache_write_input_tokens"]}
    assert got == {"cache_read_input_tokens": 0, "cache_write_input_tokens": 0, **usage}
    assert not row["unpriced"] and row["cost_total"] == expected_cost(model, usage)


def openai_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"input_tokens": prompt_tokens, "output_tokens": completion_tokens}


# -- Anthropic -----------------------------------------------------------------------------------------

async def test_anthropic_sync_async_and_streams_are_billed_with_cache_counts_added_into_input(
        pipeline: Pipeline, recorder: Recorder, pg_pool: asyncpg.Pool, tenant: str) -> None:
    import anthropic

    from llmops_sdk import instrument_anthropic

    since = await end_offsets(pipeline.stack.kafka_bootstrap, pipeline.topic)
    config = FakeAnthropicConfig(cache_read_input_tokens=1_200, cache_creation_input_tokens=300)
    ask = {"model": CLAUDE, "max_tokens": 100, "system": "You are terse.",
           "messages": [{"role": "user", "content": "Where is my order 1234?"}]}
    with FakeAnthropicServer(config=config) as fake:
        sync = instrument_anthropic(anthropic.Anthropic(base_url=fake.url, api_key="x", max_retries=0), recorder)
        aio = instrument_anthropic(anthropic.AsyncAnthropic(base_url=fake.url, api_key="x", max_retries=0), recorder)
        with trace() as t, span("support-turn", recorder=recorder) as turn:
            plain = sync.messages.create(**ask)
            events = list(sync.messages.create(**ask, stream=True))
            with sync.messages.stream(**ask) as stream:
                text = "".join(stream.text_stream)
                helper_final = stream.get_final_message()
            awaited = await aio.messages.create(**ask)
        await aio.close()
    # What Anthropic reported: a stream says its input in `message_start` and its output in `message_delta`.
    started, ended = events[0].message.usage, events[-2].usage  # type: ignore[union-attr]
    assert events[-2].type == "message_delta" and started.cache_read_input_tokens == 1_200
    reported = [(u.input_tokens, u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens)
                for u in (plain.usage, started, helper_final.usage, awaited.usage)]
    reported[1] = (*reported[1][:1], ended.output_tokens, *reported[1][2:])
    assert text == plain.content[0].text  # type: ignore[union-attr]

    got = await delivered(recorder, pipeline, since, 5)
    calls = [e for e in got if e.span_kind == "llm"]
    assert len(calls) == 4 and all(e.trace_id == t.trace_id and e.parent_span_id == turn.span_id for e in calls)
    assert [e.span_id for e in got if e.span_kind == "chain"] == [turn.span_id]
    assert calls[1].time_to_first_token_ms is not None and calls[2].output == text
    rows = await ledger(pg_pool, tenant, 4)
    for event, (input_tokens, output_tokens, cache_read, cache_creation) in zip(calls, reported, strict=True):
        # Anthropic's input_tokens leave the cache out; the contract's (and the ledger's) include it.
        assert (cache_read, cache_creation) == (1_200, 300)
        assert_billed(rows, event, CLAUDE, {"input_tokens": input_tokens + 1_500, "output_tokens": output_tokens,
                                            "cache_read_input_tokens": 1_200, "cache_write_input_tokens": 300})


# -- LangChain -----------------------------------------------------------------------------------------

async def test_langchain_run_tree_becomes_one_trace_and_its_llm_runs_are_billed(
        pipeline: Pipeline, openai_server: FakeLLMServer, recorder: Recorder, pg_pool: asyncpg.Pool,
        tenant: str) -> None:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    from llmops_sdk.langchain import LLMOpsCallbackHandler

    class Orders(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun
                                    ) -> list[Document]:
            return [Document(page_content=f"Order 1234 ships today ({query}).")]

    @tool
    def tracking(order: str) -> str:
        """The tracking number of an order."""
        return f"TRACK-{order}"

    since = await end_offsets(pipeline.stack.kafka_bootstrap, pipeline.topic)
    llm = ChatOpenAI(model=GPT, base_url=openai_server.url, api_key="sk-test", max_retries=0, stream_usage=True)
    prompt = ChatPromptTemplate.from_messages([("system", "Answer from: {docs} {track}"), ("user", "{question}")])
    chain = (
        {"docs": Orders(), "track": RunnableLambda(lambda q, config: tracking.invoke("1234", config=config)),
         "question": RunnableLambda(lambda q: q)}
        | prompt | llm
    )
    handler = LLMOpsCallbackHandler(recorder)
    answer = await chain.ainvoke("Where is my order?", config={"callbacks": [handler]})
    chunks = [c async for c in llm.astream("And the invoice?", config={"callbacks": [handler]})]
    streamed_usage = sum(chunks[1:], chunks[0]).usage_metadata  # type: ignore[arg-type]
    assert answer.usage_metadata and streamed_usage and len(handler.runs) == 0

    got = await delivered(recorder, pipeline, since, 9)
    roots = [e for e in got if e.parent_span_id is None]
    assert len(roots) == 2  # the chain, and the streamed call on its own
    by_span = {e.span_id: e for e in got}
    chain_events = [e for e in got if e.trace_id == roots[0].trace_id or e.trace_id == roots[1].trace_id]
    assert len(chain_events) == len(got)
    root = next(e for e in roots if e.span_kind == "chain")
    assert root.name == "RunnableSequence" and root.trace_id == root.span_id
    kinds = sorted(e.span_kind for e in got if e.trace_id == root.trace_id)
    assert kinds == ["chain"] * 5 + ["llm", "retriever", "tool"]  # sequence, parallel, 2 lambdas, prompt
    for event in got:  # every parent is an event of the same trace
        if event.parent_span_id is not None:
            assert by_span[event.parent_span_id].trace_id == event.trace_id
    tool_event = next(e for e in got if e.span_kind == "tool")
    assert tool_event.name == "tracking" and tool_event.output == "TRACK-1234"
    retrieved = next(e for e in got if e.span_kind == "retriever")
    assert retrieved.input == "Where is my order?" and "ships today" in str(retrieved.output)
    calls = [e for e in got if e.span_kind == "llm"]
    assert [c.parent_span_id for c in calls] == [root.span_id, None]
    assert all(c.provider == "openai" and c.model == GPT for c in calls)

    rows = await ledger(pg_pool, tenant, 2)
    assert_billed(rows, calls[0], GPT, openai_usage(answer.usage_metadata["input_tokens"],
                                                    answer.usage_metadata["output_tokens"]))
    assert_billed(rows, calls[1], GPT, openai_usage(streamed_usage["input_tokens"], streamed_usage["output_tokens"]))


# -- LlamaIndex ----------------------------------------------------------------------------------------

async def test_llamaindex_spans_and_llm_events_joined_on_span_id_are_billed(
        pipeline: Pipeline, openai_server: FakeLLMServer, recorder: Recorder, pg_pool: asyncpg.Pool,
        tenant: str) -> None:
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai import OpenAI

    from llmops_sdk.llamaindex import instrument_llamaindex

    since = await end_offsets(pipeline.stack.kafka_bootstrap, pipeline.topic)
    llm = OpenAI(model=GPT, api_base=openai_server.url, api_key="sk-test", max_retries=0)
    dispatcher = get_dispatcher("tests.integrations")

    @dispatcher.span  # type: ignore[misc]
    def answer(question: str) -> tuple[Any, Any]:
        chat = llm.chat([ChatMessage(role="system", content="Be terse."), ChatMessage(role="user", content=question)])
        return chat, llm.complete(question)

    instrumentation = instrument_llamaindex(recorder)
    try:
        chat, completion = answer("Where is my order?")
        streamed = list(llm.stream_chat([ChatMessage(role="user", content="And the invoice?")],
                                        stream_options={"include_usage": True}))
    finally:
        instrumentation.close()
    usages = [chat.raw.usage, completion.raw.usage, streamed[-1].raw.usage]

    got = await delivered(recorder, pipeline, since, 4)
    step = next(e for e in got if (e.name or "").endswith("<locals>.answer"))
    assert step.span_kind == "chain" and step.parent_span_id is None and step.trace_id == step.span_id
    assert "<" not in step.span_id  # LlamaIndex's id holds the qualname: made a valid id, the same everywhere
    calls = [e for e in got if e.span_kind == "llm"]
    assert [c.name for c in calls] == ["OpenAI.chat", "OpenAI.complete", "OpenAI.stream_chat"]
    assert [c.parent_span_id for c in calls] == [step.span_id, step.span_id, None]
    assert calls[0].trace_id == calls[1].trace_id == step.trace_id != calls[2].trace_id
    assert calls[0].output == chat.message.content and calls[1].output == completion.text
    assert calls[2].output == "".join(c.delta or "" for c in streamed) and calls[2].time_to_first_token_ms is not None
    rows = await ledger(pg_pool, tenant, 3)
    for event, usage in zip(calls, usages, strict=True):
        assert_billed(rows, event, GPT, openai_usage(usage.prompt_tokens, usage.completion_tokens))


# -- LiteLLM -------------------------------------------------------------------------------------------

async def test_litellm_sync_async_and_stream_calls_are_billed_and_join_the_callers_trace(
        pipeline: Pipeline, openai_server: FakeLLMServer, recorder: Recorder, pg_pool: asyncpg.Pool,
        tenant: str) -> None:
    import litellm

    from llmops_sdk.litellm import LLMOpsLogger

    since = await end_offsets(pipeline.stack.kafka_bootstrap, pipeline.topic)
    ask: dict[str, Any] = {"model": f"openai/{GPT}", "api_base": openai_server.url, "api_key": "sk-test"}
    logger = LLMOpsLogger(recorder)
    previous, litellm.callbacks = litellm.callbacks, [logger]
    try:
        with trace() as t, span("gateway-turn", recorder=recorder) as turn:
            plain = await asyncio.to_thread(litellm.completion, **ask,
                                            messages=[{"role": "user", "content": "Where is my order?"}])
        awaited = await litellm.acompletion(**ask, messages=[{"role": "user", "content": "And the invoice?"}])
        stream = await litellm.acompletion(**ask, messages=[{"role": "user", "content": "Thanks!"}], stream=True,
                                           stream_options={"include_usage": True})
        chunks = [c async for c in stream]
        got = None
        deadline = asyncio.get_running_loop().time() + 20
        while recorder.stats().recorded < 4:  # LiteLLM logs after it answers, on its own thread or task
            assert asyncio.get_running_loop().time() < deadline, recorder.stats()
            await asyncio.sleep(0.05)
    finally:
        # LiteLLM copies `callbacks` into lists of its own when a call starts: empty those too.
        litellm.logging_callback_manager._reset_all_callbacks()
        litellm.callbacks = previous
    streamed_usage = next(c.usage for c in reversed(chunks) if getattr(c, "usage", None))

    got = await delivered(recorder, pipeline, since, 4)
    calls = [e for e in got if e.span_kind == "llm"]
    assert len(calls) == 3
    by_text = {str(c.input[0].content): c for c in calls}  # type: ignore[index,union-attr]
    first = by_text["Where is my order?"]
    assert first.trace_id == t.trace_id and first.parent_span_id == turn.span_id
    assert first.output == plain.choices[0].message.content and first.provider == "openai" and first.model == GPT
    assert by_text["Thanks!"].output == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    rows = await ledger(pg_pool, tenant, 3)
    for text, usage in (("Where is my order?", plain.usage), ("And the invoice?", awaited.usage),
                        ("Thanks!", streamed_usage)):
        assert_billed(rows, by_text[text], GPT, openai_usage(usage.prompt_tokens, usage.completion_tokens))
