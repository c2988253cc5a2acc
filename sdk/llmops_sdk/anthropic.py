"""`instrument_anthropic(client)`: one interaction event per Messages API call of an `anthropic` client.

`pip install 'llmops-sdk[anthropic]'`. It hooks the one place both `client.messages.create(...)` (plain or
`stream=True`) and `client.messages.stream(...)` send their request: the `messages` resource's `_post`, on
that one client instance (sync `Anthropic` or async `AsyncAnthropic`). The request goes out unchanged and
the app gets the very object the client returned: a `Message`, or the same `Stream` / `AsyncStream`
(inside `messages.stream()`'s `MessageStream` too), whose iterator is wrapped in place so that every
server event passes through unchanged while the SDK notes the text, the time to the first token and the
usage. A call that raises is recorded with `status: "error"` and the exception propagates unchanged.

Usage: Anthropic reports `input_tokens` *without* the prompt tokens read from or written to the cache;
the contract's `input_tokens` includes them, so the event carries `input_tokens + cache_read_input_tokens
+ cache_creation_input_tokens`, with `cache_read_input_tokens` and `cache_write_input_tokens` (Anthropic's
`cache_creation_input_tokens`) also given, which billing prices at their own rates.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from llmops_sdk.client import default_recorder
from llmops_sdk.streams import watched, watched_async
from llmops_sdk.tokens import anthropic_usage, get
from llmops_sdk.tracing import error_info
from llmops_sdk.wire import Deferred

__all__ = ["instrument_anthropic"]

log = logging.getLogger("llmops_sdk")

_MARK = "__llmops_instrumented__"
_PATH = "/v1/messages"


def instrument_anthropic(client: Any, recorder: Any = None, *, provider: str = "anthropic",
                         capture_content: bool = True) -> Any:
    """Record every Messages API call of `client` (`messages.create`, `messages.stream`); returns `client`.

    `recorder` defaults to the one `llmops_sdk.configure()` set up (looked up at each call). With
    `capture_content=False` neither the prompt nor the answer is recorded. Instrumenting twice changes
    nothing.
    """
    messages = client.messages
    original = messages._post
    if getattr(original, _MARK, False):
        return client
    lookup = (lambda: recorder) if recorder is not None else default_recorder

    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def post_async(path: str, *args: Any, **kwargs: Any) -> Any:
            call = _Call.start(path, kwargs, provider, capture_content)
            if call is None:
                return await original(path, *args, **kwargs)
            try:
                result = await original(path, *args, **kwargs)
            except Exception as exc:
                call.failed(lookup(), exc)
                raise
            return call.returned(lookup(), result, is_async=True)

        setattr(post_async, _MARK, True)
        messages._post = post_async
    else:
        @functools.wraps(original)
        def post(path: str, *args: Any, **kwargs: Any) -> Any:
            call = _Call.start(path, kwargs, provider, capture_content)
            if call is None:
                return original(path, *args, **kwargs)
            try:
                result = original(path, *args, **kwargs)
            except Exception as exc:
                call.failed(lookup(), exc)
                raise
            return call.returned(lookup(), result, is_async=False)

        setattr(post, _MARK, True)
        messages._post = post
    return client


class _Call:
    """One Messages API call in flight. Its methods never raise."""

    __slots__ = ("blocks", "capture", "finished", "first_token_at", "model", "provider", "request",
                 "response_model", "started", "started_wall", "usage")

    def __init__(self, request: Mapping[str, Any], provider: str, capture: bool) -> None:
        self.started_wall = time.time()
        self.started = time.perf_counter()
        self.provider = provider
        self.capture = capture
        self.model = request.get("model")
        # The request's own lists are referenced, not copied: mapping them waits for the sender thread.
        self.request = {k: request.get(k) for k in ("system", "messages")} if capture else None
        self.first_token_at: float | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] = {}
        self.response_model: str | None = None
        self.finished = False

    @classmethod
    def start(cls, path: str, kwargs: dict[str, Any], provider: str, capture: bool) -> _Call | None:
        try:
            body = kwargs.get("body")
            if path != _PATH or not isinstance(body, Mapping):
                return None
            return cls(body, provider, capture)
        except Exception:
            return None

    def failed(self, recorder: Any, exc: BaseException) -> None:
        try:
            if self.finished or recorder is None:
                return
            self.finished = True
            event = self._event()
            event["status"] = "error"
            event["error"] = error_info(exc)
            self._add_streamed(event)
            recorder.record(event)
        except Exception:
            log.debug("llmops: could not record a failed Anthropic call", exc_info=True)

    def returned(self, recorder: Any, result: Any, *, is_async: bool) -> Any:
        try:
            if recorder is None:
                return result
            if hasattr(result, "_iterator"):  # a Stream / AsyncStream: wrapped in place, recorded at its end
                if is_async:
                    result._iterator = self._events_async(recorder, result._iterator)
                else:
                    result._iterator = self._events(recorder, result._iterator)
                return result
            if get(result, "usage") is None:  # a raw response (`with_raw_response`): not read here
                return result
            self.finished = True
            event = self._event()
            self.response_model = get(result, "model")
            if self.response_model:
                event["response_model"] = self.response_model
            event["usage"] = Deferred(anthropic_usage, get(result, "usage"))
            if self.capture:
                event["output"] = Deferred(_output, get(result, "content"))
            recorder.record(event)
        except Exception:
            log.debug("llmops: could not record an Anthropic call", exc_info=True)
        return result

    # -- streams ------------------------------------------------------------------------------------

    def _events(self, recorder: Any, inner: Any) -> Any:
        return watched(inner, self._server_event, functools.partial(self.failed, recorder),
                       functools.partial(self._stream_ended, recorder))

    def _events_async(self, recorder: Any, inner: Any) -> Any:
        return watched_async(inner, self._server_event, functools.partial(self.failed, recorder),
                             functools.partial(self._stream_ended, recorder))

    def _server_event(self, item: Any) -> None:
        try:
            kind = get(item, "type")
            if kind == "content_block_delta":
                if self.first_token_at is None:
                    self.first_token_at = time.perf_counter()
                if self.capture:
                    block = self.blocks.setdefault(get(item, "index") or 0, {"type": "text", "text": ""})
                    delta = get(item, "delta")
                    block["text"] = block.get("text", "") + str(get(delta, "text") or get(delta, "partial_json") or "")
            elif kind == "message_start":
                message = get(item, "message")
                self.response_model = get(message, "model")
                self._note_usage(get(message, "usage"))
            elif kind == "message_delta":
                self._note_usage(get(item, "usage"))
            elif kind == "content_block_start" and self.capture:
                started = get(item, "content_block")
                self.blocks[get(item, "index") or 0] = {"type": get(started, "type"), "id": get(started, "id"),
                                                        "name": get(started, "name"), "text": ""}
        except Exception:
            log.debug("llmops: could not read an Anthropic stream event", exc_info=True)

    def _note_usage(self, usage: Any) -> None:
        for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
            value = get(usage, name)
            if isinstance(value, int):
                self.usage[name] = value

    def _stream_ended(self, recorder: Any, complete: bool) -> None:
        try:
            if self.finished or recorder is None:
                return
            self.finished = True
            event = self._event()
            self._add_streamed(event)
            if not complete:
                event["metadata"] = {"stream_complete": False}
            recorder.record(event)
        except Exception:
            log.debug("llmops: could not record an Anthropic stream", exc_info=True)

    def _add_streamed(self, event: dict[str, Any]) -> None:
        if self.first_token_at is not None:
            event["time_to_first_token_ms"] = min((self.first_token_at - self.started) * 1000, event["latency_ms"])
        if self.response_model:
            event["response_model"] = self.response_model
        if self.usage:
            event["usage"] = Deferred(anthropic_usage, dict(self.usage))
        if self.capture and self.blocks:
            event["output"] = Deferred(_streamed_output, [b for _, b in sorted(self.blocks.items())])

    def _event(self) -> dict[str, Any]:
        event: dict[str, Any] = {"occurred_at": self.started_wall, "span_kind": "llm", "provider": self.provider,
                                 "latency_ms": (time.perf_counter() - self.started) * 1000, "status": "ok"}
        if isinstance(self.model, str):
            event["model"] = self.model
        if self.request is not None:
            event["input"] = Deferred(_input, self.request.get("system"), self.request.get("messages"))
        return event


# -- mapping onto the contract (on the sender thread) ------------------------------------------------

def _text_parts(content: Any) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """A message's content as the contract's content, and its `tool_use` blocks as tool calls."""
    if isinstance(content, str):
        return content, []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in content or ():
        kind = get(block, "type")
        if kind == "tool_use":
            calls.append(_tool_call(get(block, "id"), get(block, "name"), get(block, "input")))
        elif kind == "tool_result":
            inner = get(block, "content")
            text = inner if isinstance(inner, str) else " ".join(str(get(p, "text") or "") for p in inner or ())
            parts.append({"type": "tool_result", "text": text})
        elif isinstance(kind, str) and kind:
            text = get(block, "text") if kind == "text" else get(block, "thinking")
            parts.append({"type": kind, "text": text} if isinstance(text, str) else {"type": kind})
    if parts and all(p["type"] == "text" for p in parts):
        return "\n".join(p.get("text", "") for p in parts), calls
    return parts or None, calls


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, default=str)
    call = {"type": "function", "name": str(name), "arguments": args}
    if isinstance(call_id, str) and call_id:
        call["id"] = call_id
    return call


def _input(system: Any, messages: Any) -> list[dict[str, Any]] | None:
    out: list[dict[str, Any]] = []
    if system:
        content, _ = _text_parts(system)
        if content:
            out.append({"role": "system", "content": content})
    for message in messages if isinstance(messages, (list, tuple)) else ():
        role = get(message, "role")
        if role not in ("user", "assistant"):
            continue
        content, calls = _text_parts(get(message, "content"))
        item: dict[str, Any] = {"role": role}
        if content is not None:
            item["content"] = content
        if calls:
            item["tool_calls"] = calls
        out.append(item)
    return out or None


def _output(content: Any) -> str | list[dict[str, Any]] | None:
    text, calls = _text_parts(content)
    if not calls and isinstance(text, str):
        return text
    message: dict[str, Any] = {"role": "assistant"}
    if text is not None:
        message["content"] = text
    if calls:
        message["tool_calls"] = calls
    return [message]


def _streamed_output(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]] | None:
    content = [{"type": "tool_use", "id": b.get("id"), "name": b.get("name"), "input": b.get("text", "")}
               if b.get("type") == "tool_use" else {"type": b.get("type") or "text", "text": b.get("text", "")}
               for b in blocks]
    return _output(content)
