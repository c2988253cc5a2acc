"""A LiteLLM callback: every call LiteLLM makes (its SDK, or its proxy) becomes one interaction event.

`pip install 'llmops-sdk[litellm]'`. In the SDK:

    import litellm, llmops_sdk
    from llmops_sdk.litellm import LLMOpsLogger

    llmops_sdk.configure()
    litellm.callbacks = [LLMOpsLogger()]

For the proxy, name an instance in its `config.yaml` (`litellm_settings: callbacks: ...`, see
docs/integrations/litellm.md). The callback reads what LiteLLM hands every logger: the request's
`messages`, the response, and its `standard_logging_object` (model, provider, token counts, times, cache
hit, error). Usage is the response's own (OpenAI's shape, as LiteLLM normalises every provider to it:
`prompt_tokens` include cache reads and writes, which are also given apart); an answer served from
LiteLLM's own cache carries no usage (the provider was not paid for it) and `metadata.litellm_cache_hit`.
The event id is derived from LiteLLM's call id, so a call logged twice (sync and async hooks) is still
one event. The callback never raises (LiteLLM would only log it) and never blocks.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from llmops_sdk.client import default_recorder
from llmops_sdk.context import CURRENT, TraceContext
from llmops_sdk.instrument import _completion_output, _message
from llmops_sdk.tokens import get, openai_usage

__all__ = ["LLMOpsLogger"]

log = logging.getLogger("llmops_sdk")

_NAMESPACE = uuid.UUID("5d0b8f8e-1c1f-4b7e-9a47-2b1f6f3c0a11")  # event ids from LiteLLM call ids
_REMEMBERED = 10_000


class LLMOpsLogger(CustomLogger):
    """Records each LiteLLM call (see the module docstring). `recorder` defaults to the one
    `llmops_sdk.configure()` set up; with `capture_content=False` no prompt or answer is recorded."""

    def __init__(self, recorder: Any = None, *, capture_content: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorder = recorder
        self.capture_content = capture_content
        self._lock = threading.Lock()
        self._contexts: OrderedDict[str, TraceContext] = OrderedDict()  # call id -> the caller's trace
        self._logged: OrderedDict[str, None] = OrderedDict()

    # LiteLLM calls the pre-call hook on the caller's thread, the success and failure hooks on its own
    # (a thread pool, or the event loop): the caller's trace is noted here to be found there.
    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        try:
            context = CURRENT.get()
            call_id = _call_id(kwargs)
            if context is not None and call_id:
                with self._lock:
                    self._contexts[call_id] = context
                    while len(self._contexts) > _REMEMBERED:
                        self._contexts.popitem(last=False)
        except Exception:
            log.debug("llmops: could not note a LiteLLM call's trace", exc_info=True)

    async def async_log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        self.log_pre_api_call(model, messages, kwargs)

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._log(kwargs, response_obj, start_time, end_time, failed=False)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._log(kwargs, response_obj, start_time, end_time, failed=True)

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._log(kwargs, response_obj, start_time, end_time, failed=False)

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._log(kwargs, response_obj, start_time, end_time, failed=True)

    def _log(self, kwargs: Any, response: Any, start_time: Any, end_time: Any, *, failed: bool) -> None:
        try:
            recorder = self.recorder if self.recorder is not None else default_recorder()
            if recorder is None or not isinstance(kwargs, Mapping):
                return
            call_id = _call_id(kwargs)
            with self._lock:
                if call_id in self._logged:
                    return
                if call_id:
                    self._logged[call_id] = None
                    while len(self._logged) > _REMEMBERED:
                        self._logged.popitem(last=False)
                context = self._contexts.pop(call_id, None) if call_id else None
            recorder.record(self._event(kwargs, response, start_time, end_time, failed=failed, call_id=call_id,
                                        context=context))
        except Exception:
            log.debug("llmops: could not record a LiteLLM call", exc_info=True)

    def _event(self, kwargs: Mapping[str, Any], response: Any, start_time: Any, end_time: Any, *, failed: bool,
               call_id: str | None, context: TraceContext | None) -> dict[str, Any]:
        slo = kwargs.get("standard_logging_object") or {}
        started = _epoch(get(slo, "startTime")) or _epoch(start_time)
        ended = _epoch(get(slo, "endTime")) or _epoch(end_time)
        event: dict[str, Any] = {"span_kind": "llm", "status": "ok"}
        if call_id:
            event["event_id"] = str(uuid.uuid5(_NAMESPACE, call_id))
        if started is not None:
            event["occurred_at"] = started
            if ended is not None and ended >= started:
                event["latency_ms"] = (ended - started) * 1000
                first = _epoch(get(slo, "completionStartTime"))
                if kwargs.get("stream") and first is not None and started <= first <= ended:
                    event["time_to_first_token_ms"] = (first - started) * 1000
        if context is not None:
            event["trace_id"] = context.trace_id
            if context.span_id is not None:
                event["parent_span_id"] = context.span_id
        model = kwargs.get("model") or get(slo, "model")
        if isinstance(model, str) and model:
            event["model"] = model[:128]
        provider = get(slo, "custom_llm_provider") or get(kwargs.get("litellm_params"), "custom_llm_provider")
        if isinstance(provider, str) and provider:
            event["provider"] = provider[:128]
        messages = kwargs.get("messages")
        if self.capture_content and isinstance(messages, (list, tuple)):
            mapped = [m for m in (_message(x) for x in messages) if m]
            if mapped:
                event["input"] = mapped
        cache_hit = get(slo, "cache_hit") is True or kwargs.get("cache_hit") is True
        if failed:
            event["status"] = "error"
            event["error"] = _error(kwargs, slo)
        else:
            response_model = get(response, "model")
            if isinstance(response_model, str) and response_model:
                event["response_model"] = response_model[:128]
            usage = None if cache_hit else (openai_usage(get(response, "usage")) or _slo_usage(slo))
            if usage is not None:
                event["usage"] = usage
            if self.capture_content and get(response, "choices") is not None:
                output = _completion_output(response)
                if output is not None:
                    event["output"] = output
        if cache_hit:
            event["metadata"] = {"litellm_cache_hit": True}
        return event


def _call_id(kwargs: Any) -> str | None:
    call_id = get(kwargs, "litellm_call_id")
    return call_id if isinstance(call_id, str) and call_id else None


def _epoch(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp()  # a naive datetime is the machine's local time, as LiteLLM makes it
    return None


def _slo_usage(slo: Any) -> dict[str, int] | None:
    return openai_usage({"prompt_tokens": get(slo, "prompt_tokens"),
                         "completion_tokens": get(slo, "completion_tokens")})


def _error(kwargs: Mapping[str, Any], slo: Any) -> dict[str, Any]:
    exc = kwargs.get("exception")
    info = get(slo, "error_information") or {}
    kind = type(exc).__name__ if isinstance(exc, BaseException) else get(info, "error_class") or "LiteLLMError"
    message = str(exc) if isinstance(exc, BaseException) else get(slo, "error_str") or get(info, "error_message") or ""
    error: dict[str, Any] = {"type": str(kind)[:256], "message": str(message)[:4096]}
    code = get(exc, "status_code") if exc is not None else None
    code = code if code is not None else get(info, "error_code")
    if code not in (None, ""):
        error["code"] = str(code)[:256]
    return error
