"""llmops-sdk: the thin producer of the LLMOps suite.

    import llmops_sdk

    llmops_sdk.configure(endpoint="http://127.0.0.1:8080", api_key="...", app_id="support-bot")
    client = llmops_sdk.instrument_openai(openai.OpenAI())      # one event per chat completion
    with llmops_sdk.trace(), llmops_sdk.span("answer", kind="chain"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
    llmops_sdk.record(name="custom-step", span_kind="tool", latency_ms=12.5)

Standard library only; `llmops-sdk[kafka]` adds the Kafka transport, `llmops-sdk[openai]` the client.
See docs/sdk.md.
"""

from llmops_sdk.client import (
    Deferred,
    Recorder,
    RecorderConfig,
    RecorderStats,
    close,
    configure,
    default_recorder,
    flush,
    record,
)
from llmops_sdk.instrument import instrument_openai
from llmops_sdk.tracing import TraceContext, current, span, trace
from llmops_sdk.transport import Delivery, HTTPTransport, KafkaTransport, Payload

__version__ = "0.1.0"

__all__ = [
    "Deferred",
    "Delivery",
    "HTTPTransport",
    "KafkaTransport",
    "Payload",
    "Recorder",
    "RecorderConfig",
    "RecorderStats",
    "TraceContext",
    "close",
    "configure",
    "current",
    "default_recorder",
    "flush",
    "instrument_openai",
    "record",
    "span",
    "trace",
]
