"""A LangChain callback handler: every run of a LangChain (or LangGraph) invocation becomes a span event.

`pip install 'llmops-sdk[langchain]'` (langchain-core). Pass it where LangChain takes callbacks:

    from llmops_sdk.langchain import LLMOpsCallbackHandler
    chain.invoke(inputs, config={"callbacks": [LLMOpsCallbackHandler()]})

The run tree becomes one trace: run id -> `span_id`, parent run id -> `parent_span_id`, the root run's id
-> `trace_id` (or, inside `llmops_sdk.trace()` / `span()`, that trace and the enclosing span). Chat model
and LLM runs are `llm` events with `provider` and `model` (from LangChain's `ls_provider` /
`ls_model_name` metadata or the invocation parameters), `response_model`, the messages, the answer, the
time to the first streamed token and `usage` (from the answer's `usage_metadata`, else the older
`llm_output["token_usage"]` / `llm_output["usage"]`). Tool, retriever and chain runs are `tool`,
`retriever` and `chain` events with their input and output as text. A run that fails is recorded with
`status: "error"`; LangChain raises the exception as usual. The handler never raises and never blocks:
its callbacks note a few references and hand the event to the recorder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from llmops_sdk.client import default_recorder
from llmops_sdk.spans import Run, RunTable, as_text, chat_message
from llmops_sdk.tokens import any_usage, get, langchain_usage
from llmops_sdk.tracing import error_info
from llmops_sdk.wire import Deferred

__all__ = ["LLMOpsCallbackHandler"]

log = logging.getLogger("llmops_sdk")

_ROLE_OF_TYPE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "function",
                 "developer": "developer", "AIMessageChunk": "assistant", "HumanMessageChunk": "user"}


class LLMOpsCallbackHandler(BaseCallbackHandler):
    """Records LangChain runs as interaction events (see the module docstring).

    `recorder` defaults to the one `llmops_sdk.configure()` set up (looked up at each event). With
    `capture_content=False` no prompt, answer or step input/output is recorded.
    """

    run_inline = True  # called on the caller's thread and context, also in async runs: it only notes things
    raise_error = False

    def __init__(self, recorder: Any = None, *, capture_content: bool = True) -> None:
        super().__init__()
        self.recorder = recorder
        self.capture_content = capture_content
        self.runs = RunTable()

    # -- LLM and chat model runs ---------------------------------------------------------------------

    def on_chat_model_start(self, serialized: dict[str, Any] | None, messages: list[list[Any]], *, run_id: UUID,
                            parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None,
                            **kwargs: Any) -> None:
        try:
            run = self._start_llm(serialized, run_id, parent_run_id, metadata, kwargs)
            if self.capture_content and messages:
                run.fields["input"] = Deferred(_messages, list(messages[0]))
        except Exception:
            log.debug("llmops: could not note a LangChain chat model start", exc_info=True)

    def on_llm_start(self, serialized: dict[str, Any] | None, prompts: list[str], *, run_id: UUID,
                     parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None,
                     **kwargs: Any) -> None:
        try:
            run = self._start_llm(serialized, run_id, parent_run_id, metadata, kwargs)
            if self.capture_content and prompts:
                run.fields["input"] = prompts[0] if len(prompts) == 1 else Deferred(as_text, list(prompts))
        except Exception:
            log.debug("llmops: could not note a LangChain LLM start", exc_info=True)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self.runs.get(str(run_id))
            if run is not None and run.first_token_at is None:
                run.first_token_at = time.perf_counter()
        except Exception:
            log.debug("llmops: could not note a LangChain token", exc_info=True)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self.runs.end(str(run_id))
            if run is None:
                return
            generations = [g for batch in get(response, "generations") or () for g in batch or ()]
            first = generations[0] if generations else None
            message = get(first, "message")
            llm_output = get(response, "llm_output") or {}
            event = run.event()
            response_model = (get(get(message, "response_metadata"), "model_name")
                              or get(llm_output, "model_name") or get(llm_output, "model"))
            if isinstance(response_model, str) and response_model:
                event["response_model"] = response_model
            usage = Deferred(_usage, [get(g, "message") for g in generations], llm_output)
            event["usage"] = usage
            if self.capture_content and first is not None:
                event["output"] = Deferred(_output, first)
            self._record(event)
        except Exception:
            log.debug("llmops: could not record a LangChain LLM run", exc_info=True)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    def _start_llm(self, serialized: dict[str, Any] | None, run_id: UUID, parent_run_id: UUID | None,
                   metadata: dict[str, Any] | None, kwargs: dict[str, Any]) -> Run:
        params = kwargs.get("invocation_params") or {}
        metadata = metadata or {}
        run = self.runs.start(str(run_id), _id(parent_run_id), "llm", _name(serialized, kwargs))
        provider = metadata.get("ls_provider") or params.get("_type") or _serialized_name(serialized)
        model = metadata.get("ls_model_name") or params.get("model") or params.get("model_name")
        if isinstance(provider, str) and provider:
            run.fields["provider"] = _identifier(provider)
        if isinstance(model, str) and model:
            run.fields["model"] = _identifier(model)
        return run

    # -- chains, tools, retrievers -------------------------------------------------------------------

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        name = _name(serialized, kwargs)
        kind = "agent" if name and "agent" in name.lower() else "chain"
        self._start_step(kind, name, run_id, parent_run_id, inputs)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_step(run_id, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    def on_tool_start(self, serialized: dict[str, Any] | None, input_str: str, *, run_id: UUID,
                      parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._start_step("tool", _name(serialized, kwargs), run_id, parent_run_id, input_str)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_step(run_id, output)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    def on_retriever_start(self, serialized: dict[str, Any] | None, query: str, *, run_id: UUID,
                           parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        self._start_step("retriever", _name(serialized, kwargs), run_id, parent_run_id, query)

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        self._end_step(run_id, list(documents))

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    def _start_step(self, kind: str, name: str | None, run_id: UUID, parent_run_id: UUID | None,
                    value: Any) -> None:
        try:
            run = self.runs.start(str(run_id), _id(parent_run_id), kind, name)
            if self.capture_content and value is not None:
                run.fields["input"] = Deferred(as_text, value)
        except Exception:
            log.debug("llmops: could not note a LangChain run start", exc_info=True)

    def _end_step(self, run_id: UUID, value: Any) -> None:
        try:
            run = self.runs.end(str(run_id))
            if run is None:
                return
            event = run.event()
            if self.capture_content and value is not None:
                event["output"] = Deferred(as_text, value)
            self._record(event)
        except Exception:
            log.debug("llmops: could not record a LangChain run", exc_info=True)

    def _fail(self, run_id: UUID, error: BaseException) -> None:
        try:
            run = self.runs.end(str(run_id))
            if run is not None:
                self._record(run.event(status="error", error=error_info(error)))
        except Exception:
            log.debug("llmops: could not record a failed LangChain run", exc_info=True)

    def _record(self, event: dict[str, Any]) -> None:
        recorder = self.recorder if self.recorder is not None else default_recorder()
        if recorder is not None:
            recorder.record(event)


# -- helpers ------------------------------------------------------------------------------------------

def _id(run_id: UUID | None) -> str | None:
    return None if run_id is None else str(run_id)


def _serialized_name(serialized: dict[str, Any] | None) -> str | None:
    if not serialized:
        return None
    name = serialized.get("name")
    if isinstance(name, str) and name:
        return name
    path = serialized.get("id")
    return str(path[-1]) if isinstance(path, list) and path else None


def _name(serialized: dict[str, Any] | None, kwargs: dict[str, Any]) -> str | None:
    name = kwargs.get("name")
    return name if isinstance(name, str) and name else _serialized_name(serialized)


def _identifier(value: str) -> str:
    """A provider or model name within the contract's identifier pattern (LangChain's are already)."""
    cleaned = "".join(c if c.isalnum() or c in "._:/@-" else "-" for c in value.strip())[:128]
    return cleaned if cleaned[:1].isalnum() else f"x{cleaned}"[:128]


def _message(message: Any) -> dict[str, Any] | None:
    kind = get(message, "type")
    role = get(message, "role") if kind == "chat" else _ROLE_OF_TYPE.get(str(kind))
    return chat_message(role, get(message, "content"), tool_calls=get(message, "tool_calls"),
                        tool_call_id=get(message, "tool_call_id"), name=get(message, "name"))


def _messages(messages: list[Any]) -> list[dict[str, Any]] | None:
    mapped = [m for m in (_message(x) for x in messages) if m]
    return mapped or None


def _output(generation: Any) -> str | list[dict[str, Any]] | None:
    message = get(generation, "message")
    if message is not None and get(message, "tool_calls"):
        mapped = _message(message)
        return [mapped] if mapped else None
    text = get(generation, "text")
    if isinstance(text, str) and text:
        return text
    content = get(message, "content")
    return content if isinstance(content, str) else None


def _usage(messages: list[Any], llm_output: Any) -> dict[str, int] | None:
    for message in messages:
        usage = langchain_usage(get(message, "usage_metadata"))
        if usage is not None:
            return usage
    return any_usage(get(llm_output, "token_usage")) or any_usage(get(llm_output, "usage"))
