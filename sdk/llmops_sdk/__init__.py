"""llmops-sdk: the thin producer of the LLMOps suite.

    import llmops_sdk

    llmops_sdk.configure(endpoint="http://127.0.0.1:8080", api_key="...", app_id="support-bot")
    client = llmops_sdk.instrument_openai(openai.OpenAI())      # one event per chat completion
    with llmops_sdk.trace(), llmops_sdk.span("answer", kind="chain"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
    llmops_sdk.record(name="custom-step", span_kind="tool", latency_ms=12.5)
    llmops_sdk.configure_prompts(endpoint="http://127.0.0.1:8085", api_key="...")
    prompt = llmops_sdk.get_prompt("support-answer", fallback="Answer: {{ question }}")
    text = prompt.compile(question=q)       # events recorded from here on carry the prompt's reference

Standard library only; `llmops-sdk[kafka]` adds the Kafka transport, `llmops-sdk[openai]` the client, and
`[anthropic]`, `[langchain]`, `[llamaindex]`, `[litellm]` the integrations (docs/integrations/).
See docs/sdk.md. Modules, each importing only those above it:

    context     the trace context (contextvars)
    transport   where batches go: the ingest API over HTTP, or Kafka
    wire        one event as JSON, made on the sender thread; `Deferred`
    config      `RecorderConfig`
    sender      the sender thread and the outbox it shares with the app's threads
    recorder    `Recorder`: what the app's threads call; flushed at exit, reset after fork
    client      the module-level default recorder: `configure`, `record`, `flush`, `close`
    tracing     `trace`, `span`
    instrument  `instrument_openai`
    tokens      providers' token counts mapped onto the contract's `usage`
    anthropic   `instrument_anthropic` (the `anthropic` extra)
    spans       the run table the framework integrations share
    langchain   `LLMOpsCallbackHandler` (the `langchain` extra; import `llmops_sdk.langchain`)
    llamaindex  `instrument_llamaindex` (the `llamaindex` extra; import `llmops_sdk.llamaindex`)
    litellm     `LLMOpsLogger` (the `litellm` extra; import `llmops_sdk.litellm`)
    prompts     `get_prompt`, `Prompt.compile`: managed prompts, cached, with experiments' variants
"""

from llmops_sdk.anthropic import instrument_anthropic
from llmops_sdk.client import close, configure, default_recorder, flush, record
from llmops_sdk.config import RecorderConfig
from llmops_sdk.context import TraceContext, current
from llmops_sdk.instrument import instrument_openai
from llmops_sdk.prompts import MissingVariables, Prompt, PromptClient, PromptUnavailable, configure_prompts, get_prompt
from llmops_sdk.recorder import Recorder, RecorderStats
from llmops_sdk.tracing import span, trace
from llmops_sdk.transport import Delivery, HTTPTransport, KafkaTransport, Payload
from llmops_sdk.wire import Deferred

__version__ = "0.1.0"

__all__ = [
    "Deferred",
    "Delivery",
    "HTTPTransport",
    "KafkaTransport",
    "MissingVariables",
    "Payload",
    "Prompt",
    "PromptClient",
    "PromptUnavailable",
    "Recorder",
    "RecorderConfig",
    "RecorderStats",
    "TraceContext",
    "close",
    "configure",
    "configure_prompts",
    "current",
    "default_recorder",
    "flush",
    "get_prompt",
    "instrument_anthropic",
    "instrument_openai",
    "record",
    "span",
    "trace",
]
