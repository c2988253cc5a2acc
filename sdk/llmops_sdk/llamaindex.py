"""LlamaIndex instrumentation: every span of LlamaIndex's instrumentation becomes a span event, and the LLM
and embedding calls inside become `llm` and `embedding` events.

`pip install 'llmops-sdk[llamaindex]'` (llama-index-core >= 0.10.20). Once, at start-up:

    from llmops_sdk.llamaindex import instrument_llamaindex
    instrument_llamaindex()          # adds a span handler and an event handler to the root dispatcher

A span handler follows LlamaIndex's span tree (span id -> `span_id`, parent span -> `parent_span_id`, the
root span's id -> `trace_id`, or inside `llmops_sdk.trace()` / `span()` that trace under the enclosing
span); an event handler notes the chat, completion and embedding events (`LLMChatStartEvent`,
`LLMChatInProgressEvent`, `LLMChatEndEvent`, the completion twins, `EmbeddingStartEvent` /
`EmbeddingEndEvent`), joined to their span on `span_id`. When a span ends its event is recorded: `llm`
with `provider`, `model`, the messages, the answer and `usage` (the provider's own report in
`response.raw`, else the counts the OpenAI integration puts in `additional_kwargs`), `embedding` with the
model, or a `retriever`, `tool`, `agent` or `chain` step named after the method. A span that raised is
recorded with `status: "error"`. Neither handler raises or blocks.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from pydantic import PrivateAttr

from llmops_sdk.client import default_recorder
from llmops_sdk.spans import Run, RunTable, as_text, chat_message
from llmops_sdk.tokens import any_usage, get
from llmops_sdk.tracing import error_info
from llmops_sdk.wire import Deferred

__all__ = ["LlamaIndexInstrumentation", "instrument_llamaindex"]

log = logging.getLogger("llmops_sdk")


class LlamaIndexInstrumentation:
    """The span handler and the event handler, sharing one table of spans in flight. `close()` detaches
    both from the dispatcher."""

    def __init__(self, recorder: Any = None, *, capture_content: bool = True, dispatcher: Any = None) -> None:
        self.recorder = recorder
        self.capture_content = capture_content
        self.runs = RunTable()
        self.dispatcher = dispatcher if dispatcher is not None else get_dispatcher()
        self.span_handler = _SpanHandler()
        self.span_handler._owner = self
        self.event_handler = _EventHandler()
        self.event_handler._owner = self
        self.dispatcher.add_span_handler(self.span_handler)
        self.dispatcher.add_event_handler(self.event_handler)

    def close(self) -> None:
        if self.span_handler in self.dispatcher.span_handlers:
            self.dispatcher.span_handlers.remove(self.span_handler)
        if self.event_handler in self.dispatcher.event_handlers:
            self.dispatcher.event_handlers.remove(self.event_handler)

    def _record(self, event: dict[str, Any]) -> None:
        recorder = self.recorder if self.recorder is not None else default_recorder()
        if recorder is not None:
            recorder.record(event)

    # -- spans ----------------------------------------------------------------------------------------

    def span_started(self, id_: str, parent_id: str | None, instance: Any) -> None:
        name = id_.rsplit("-", 5)[0] if id_.count("-") >= 5 else id_  # "OpenAI.chat-<uuid4>" -> "OpenAI.chat"
        self.runs.start(id_, parent_id, _kind(name, instance), name)

    def span_ended(self, id_: str, bound_args: Any, result: Any, err: BaseException | None) -> None:
        run = self.runs.get(id_)
        if run is None:
            return
        if run.awaiting_end and err is None:
            # A stream: the span ended when the generator was handed out; the call ends with its end event.
            run.span_closed = True
            return
        self.runs.end(id_)
        event = run.event()
        if run.kind not in ("llm", "embedding") and self.capture_content:
            if "input" not in event:
                arguments = _arguments(bound_args)
                if arguments is not None:
                    event["input"] = Deferred(as_text, arguments)
            if err is None and result is not None and not inspect.isawaitable(result):
                event["output"] = Deferred(as_text, _result_text(result))
        if err is not None:
            event["status"] = "error"
            event["error"] = error_info(err)
        self._record(event)

    # -- events ---------------------------------------------------------------------------------------

    def on_event(self, event: Any) -> None:
        kind = type(event).__name__
        run = self.runs.get(str(get(event, "span_id")))
        if run is None:
            return
        if kind in ("LLMChatStartEvent", "LLMCompletionStartEvent"):
            run.kind = "llm"
            run.awaiting_end = True
            _model_fields(run.fields, get(event, "model_dict"))
            if self.capture_content:
                if kind == "LLMChatStartEvent":
                    run.fields["input"] = Deferred(_messages, list(get(event, "messages") or ()))
                else:
                    run.fields["input"] = get(event, "prompt")
        elif kind in ("LLMChatInProgressEvent", "LLMCompletionInProgressEvent"):
            if run.first_token_at is None:
                run.first_token_at = time.perf_counter()
        elif kind in ("LLMChatEndEvent", "LLMCompletionEndEvent"):
            run.awaiting_end = False
            response = get(event, "response")
            if response is not None:
                self._note_answer(run, response)
            if run.span_closed:
                self.runs.end(str(get(event, "span_id")))
                self._record(run.event())
        elif kind == "EmbeddingStartEvent":
            run.kind = "embedding"
            _model_fields(run.fields, get(event, "model_dict"))
        elif kind == "EmbeddingEndEvent":
            chunks = get(event, "chunks") or ()
            run.fields["metadata"] = {"chunks": len(chunks)}
            if self.capture_content:
                run.fields["input"] = Deferred(as_text, list(chunks))

    def _note_answer(self, run: Run, response: Any) -> None:
        raw = get(response, "raw")
        model = get(raw, "model")
        if isinstance(model, str) and model:
            run.fields["response_model"] = model
        run.fields["usage"] = Deferred(_usage, raw, get(response, "additional_kwargs"))
        if self.capture_content:
            run.fields["output"] = Deferred(_answer, response)


def instrument_llamaindex(recorder: Any = None, *, capture_content: bool = True,
                          dispatcher: Any = None) -> LlamaIndexInstrumentation:
    """Record LlamaIndex's spans and LLM calls (see the module docstring); `recorder` defaults to the
    one `llmops_sdk.configure()` set up, looked up at each event. `dispatcher` defaults to the root one."""
    return LlamaIndexInstrumentation(recorder, capture_content=capture_content, dispatcher=dispatcher)


class _SpanHandler(BaseSpanHandler[SimpleSpan]):
    _owner: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "LLMOpsSpanHandler"

    def new_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                 parent_span_id: str | None = None, tags: dict[str, Any] | None = None,
                 **kwargs: Any) -> SimpleSpan | None:
        try:
            self._owner.span_started(id_, parent_span_id, instance)
        except Exception:
            log.debug("llmops: could not note a LlamaIndex span", exc_info=True)
        return SimpleSpan(id_=id_, parent_id=parent_span_id)

    def prepare_to_exit_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                             result: Any | None = None, **kwargs: Any) -> SimpleSpan | None:
        try:
            self._owner.span_ended(id_, bound_args, result, None)
        except Exception:
            log.debug("llmops: could not record a LlamaIndex span", exc_info=True)
        return self.open_spans.get(id_)

    def prepare_to_drop_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any | None = None,
                             err: BaseException | None = None, **kwargs: Any) -> SimpleSpan | None:
        try:
            self._owner.span_ended(id_, bound_args, None, err)
        except Exception:
            log.debug("llmops: could not record a failed LlamaIndex span", exc_info=True)
        return self.open_spans.get(id_)


class _EventHandler(BaseEventHandler):
    _owner: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "LLMOpsEventHandler"

    def handle(self, event: Any, **kwargs: Any) -> None:
        try:
            self._owner.on_event(event)
        except Exception:
            log.debug("llmops: could not note a LlamaIndex event", exc_info=True)


# -- helpers ------------------------------------------------------------------------------------------

def _kind(name: str, instance: Any) -> str:
    lowered = name.lower()
    owner = type(instance).__name__.lower() if instance is not None else ""
    if "retriev" in lowered or "retriever" in owner:
        return "retriever"
    if owner.endswith("tool") or (".call" in lowered and "tool" in owner):
        return "tool"
    if "agent" in owner or "agent" in lowered:
        return "agent"
    return "chain"


def _model_fields(fields: dict[str, Any], model_dict: Any) -> None:
    if not isinstance(model_dict, dict):
        return
    model = model_dict.get("model") or model_dict.get("model_name")
    if isinstance(model, str) and model:
        fields["model"] = model[:128]
    class_name = str(model_dict.get("class_name") or "").lower()
    for suffix in ("_llm", "_embedding", "embedding", "llm"):
        class_name = class_name.removesuffix(suffix)
    provider = "".join(c for c in class_name if c.isalnum() or c in "._-")[:128]
    if provider[:1].isalnum():
        fields["provider"] = provider


def _arguments(bound_args: Any) -> Any:
    arguments = dict(get(bound_args, "arguments") or {})
    arguments.pop("self", None)
    arguments.pop("kwargs", None)
    if not arguments:
        return None
    (first, *rest) = arguments.values()
    return first if not rest else arguments


def _result_text(result: Any) -> Any:
    response = get(result, "response")
    return response if isinstance(response, str) else result


def _messages(messages: list[Any]) -> list[dict[str, Any]] | None:
    mapped = [m for m in (chat_message(get(x, "role"), get(x, "content")) for x in messages) if m]
    return mapped or None


def _answer(response: Any) -> str | None:
    message = get(response, "message")
    text = get(message, "content") if message is not None else get(response, "text")
    return text if isinstance(text, str) else None


def _usage(raw: Any, additional_kwargs: Any) -> dict[str, int] | None:
    return any_usage(get(raw, "usage")) or any_usage(additional_kwargs)
