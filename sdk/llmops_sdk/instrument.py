"""`instrument_openai(client)`: one interaction event per chat completion of an official `openai` client.

It replaces `client.chat.completions.create` on that one client instance (sync `OpenAI` or async
`AsyncOpenAI`, and their Azure variants) with a wrapper that calls the original with the very same
arguments and returns the very object it returned: a `ChatCompletion`, or for `stream=True` the same
`Stream` / `AsyncStream`, whose iterator is wrapped so that the chunks pass through unchanged while the
wrapper notes the time to the first token, the text and the usage. The request is never altered (in
particular, no `stream_options` is added: a stream reports usage only if the caller asks for it).

What an event carries: `model` (requested) and `response_model` (answered), `input` (the messages),
`output` (the text, or the assistant messages when there are tool calls or several choices), `usage`,
`latency_ms`, `time_to_first_token_ms` (streams), `status`, and `error` for a call that raised; the
exception is re-raised unchanged. A stream is recorded when it ends, when it fails, or when it is closed
or garbage-collected before its end (then with `metadata.stream_complete = false`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from llmops_sdk.client import default_recorder
from llmops_sdk.streams import watched, watched_async
from llmops_sdk.tokens import openai_usage
from llmops_sdk.tracing import error_info
from llmops_sdk.wire import Deferred

log = logging.getLogger("llmops_sdk")

_MARK = "__llmops_instrumented__"
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_MAX_URL = 4096


def instrument_openai(client: Any, recorder: Any = None, *, provider: str | None = None,
                      capture_content: bool = True) -> Any:
    """Record every `client.chat.completions.create` call of `client`; returns `client` itself.

    `recorder` defaults to the one `llmops_sdk.configure()` set up (looked up at each call).
    `provider` defaults to "openai" for api.openai.com, "azure" for Azure endpoints, else the base
    URL's host. With `capture_content=False` neither messages nor completions are recorded.
    Instrumenting a client twice changes nothing.
    """
    completions = client.chat.completions
    original = completions.create
    if getattr(original, _MARK, False):
        return client
    is_async = _is_async_client(client)
    name = provider or _provider_of(client)
    call_recorder = _recorder_lookup(recorder)

    if is_async:
        @functools.wraps(original)
        async def create_async(*args: Any, **kwargs: Any) -> Any:
            call = _Call(kwargs, name, capture_content)
            try:
                result = await original(*args, **kwargs)
            except Exception as exc:
                call.failed(call_recorder(), exc)
                raise
            return call.returned(call_recorder(), result, is_async=True)

        setattr(create_async, _MARK, True)
        completions.create = create_async
    else:
        @functools.wraps(original)
        def create(*args: Any, **kwargs: Any) -> Any:
            call = _Call(kwargs, name, capture_content)
            try:
                result = original(*args, **kwargs)
            except Exception as exc:
                call.failed(call_recorder(), exc)
                raise
            return call.returned(call_recorder(), result, is_async=False)

        setattr(create, _MARK, True)
        completions.create = create
    return client


def _recorder_lookup(recorder: Any) -> Any:
    if recorder is not None:
        return lambda: recorder

    return default_recorder


def _is_async_client(client: Any) -> bool:
    try:
        import openai
    except ImportError:  # pragma: no cover - a client without the package is not possible
        return False
    return isinstance(client, openai.AsyncOpenAI)


def _provider_of(client: Any) -> str:
    try:
        host = urlsplit(str(client.base_url)).hostname or ""
    except Exception:
        return "openai"
    if not host or host == "api.openai.com" or host.endswith(".openai.com"):
        return "openai"
    if host.endswith(".azure.com") or host.endswith(".azure-api.net"):
        return "azure"
    return host[:128]


class _Call:
    """One call in flight: what the request said, and the clock. Never raises out of its methods."""

    __slots__ = ("capture", "chunks", "finished", "first_token_at", "kwargs_messages", "model", "provider",
                 "response_model", "started", "started_wall", "stream", "text", "tool_calls", "usage")

    def __init__(self, kwargs: dict[str, Any], provider: str, capture: bool) -> None:
        self.started_wall = time.time()
        self.started = time.perf_counter()
        self.provider = provider
        self.capture = capture
        self.model = kwargs.get("model")
        self.stream = kwargs.get("stream") is True
        messages = kwargs.get("messages")
        # A copy of the list, not of the messages: the app often appends to its list right after the call.
        # Any other iterable is left alone (reading it would change what the client sends).
        self.kwargs_messages = list(messages) if capture and isinstance(messages, (list, tuple)) else None
        self.first_token_at: float | None = None
        self.text: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.usage: Any = None
        self.response_model: str | None = None
        self.chunks = 0
        self.finished = False

    # -- outcomes -----------------------------------------------------------------------------------

    def failed(self, recorder: Any, exc: BaseException) -> None:
        try:
            if self.finished or recorder is None:
                return
            self.finished = True
            event = self._event((time.perf_counter() - self.started) * 1000)
            event["status"] = "error"
            event["error"] = error_info(exc)
            if self.first_token_at is not None:
                self._add_stream_fields(event)
            recorder.record(event)
        except Exception:
            log.debug("llmops: could not record a failed call", exc_info=True)

    def returned(self, recorder: Any, result: Any, *, is_async: bool) -> Any:
        """What the wrapper returns: `result` itself (only a stream of an unknown make gets a proxy)."""
        try:
            if recorder is None:  # nothing configured to record into: leave the result alone
                return result
            if self.stream and not hasattr(result, "choices"):
                return self._wrap_stream(recorder, result, is_async)
            self.finished = True
            event = self._event((time.perf_counter() - self.started) * 1000)
            self._add_completion(event, result)
            recorder.record(event)
        except Exception:
            log.debug("llmops: could not record a call", exc_info=True)
        return result

    def _stream_ended(self, recorder: Any, complete: bool) -> None:
        try:
            if self.finished or recorder is None:
                return
            self.finished = True
            event = self._event((time.perf_counter() - self.started) * 1000)
            self._add_stream_fields(event)
            if not complete:
                event["metadata"] = {"stream_complete": False}
            recorder.record(event)
        except Exception:
            log.debug("llmops: could not record a stream", exc_info=True)

    # -- streams ------------------------------------------------------------------------------------

    def _wrap_stream(self, recorder: Any, stream: Any, is_async: bool) -> Any:
        """Wrap the stream's iterator in place (openai's `Stream` and `AsyncStream` keep it in
        `_iterator`), so the app gets the very object the client returned. Failing that, a proxy."""
        if not hasattr(stream, "_iterator"):
            if is_async and hasattr(stream, "__aiter__"):
                return _AsyncStreamProxy(stream, self._chunks_async(recorder, stream.__aiter__()))
            if not is_async and hasattr(stream, "__iter__"):
                return _StreamProxy(stream, self._chunks(recorder, iter(stream)))
            return stream
        if is_async:
            stream._iterator = self._chunks_async(recorder, stream._iterator)
        else:
            stream._iterator = self._chunks(recorder, stream._iterator)
        return stream

    def _chunks_async(self, recorder: Any, inner: Any) -> Any:
        return watched_async(inner, self._chunk, functools.partial(self.failed, recorder),
                             functools.partial(self._stream_ended, recorder))

    def _chunks(self, recorder: Any, inner: Any) -> Any:
        return watched(inner, self._chunk, functools.partial(self.failed, recorder),
                       functools.partial(self._stream_ended, recorder))

    def _chunk(self, chunk: Any) -> None:
        try:
            self.chunks += 1
            if self.response_model is None:
                self.response_model = getattr(chunk, "model", None)
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                self.usage = usage
            for choice in getattr(chunk, "choices", None) or ():
                if getattr(choice, "index", 0) != 0:
                    continue
                delta = choice.delta
                if delta is None:
                    continue
                content = delta.content
                if content:
                    if self.first_token_at is None:
                        self.first_token_at = time.perf_counter()
                    if self.capture:
                        self.text.append(content)
                for call in delta.tool_calls or ():
                    if self.first_token_at is None:
                        self.first_token_at = time.perf_counter()
                    if self.capture:
                        self._tool_call_delta(call)
        except Exception:
            log.debug("llmops: could not read a stream chunk", exc_info=True)

    def _tool_call_delta(self, delta: Any) -> None:
        slot = self.tool_calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
        if delta.id:
            slot["id"] = delta.id
        function = delta.function
        if function is not None:
            if function.name:
                slot["name"] += function.name
            if function.arguments:
                slot["arguments"] += function.arguments

    # Mapping messages and usage onto the contract is left to the sender thread (`Deferred`): the app's
    # thread only notes references (the message list is copied, the response objects are not changed
    # by openai after they are returned).

    def _add_stream_fields(self, event: dict[str, Any]) -> None:
        if self.first_token_at is not None:
            event["time_to_first_token_ms"] = min((self.first_token_at - self.started) * 1000,
                                                  event["latency_ms"])
        if self.response_model:
            event["response_model"] = self.response_model
        if self.usage is not None:
            event["usage"] = Deferred(openai_usage, self.usage)
        if self.capture and (self.chunks or self.tool_calls):
            event["output"] = Deferred(_stream_output, self.text, self.tool_calls)

    def _add_completion(self, event: dict[str, Any], completion: Any) -> None:
        model = getattr(completion, "model", None)
        if model:
            event["response_model"] = model
        usage = getattr(completion, "usage", None)
        if usage is not None:
            event["usage"] = Deferred(openai_usage, usage)
        if self.capture:
            event["output"] = Deferred(_completion_output, completion)

    def _event(self, latency_ms: float) -> dict[str, Any]:
        event: dict[str, Any] = {
            "occurred_at": self.started_wall,
            "span_kind": "llm",
            "provider": self.provider,
            "latency_ms": latency_ms,
            "status": "ok",
        }
        if isinstance(self.model, str):
            event["model"] = self.model
        if self.kwargs_messages is not None:
            event["input"] = Deferred(_messages, self.kwargs_messages)
        return event


class _StreamProxy:
    """Stands in for a stream that keeps no `_iterator` (another make of client): iterates through the
    recording generator, and hands everything else to the stream."""

    def __init__(self, stream: Any, chunks: Any) -> None:
        self._llmops_stream = stream
        self._llmops_chunks = chunks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llmops_stream, name)

    def __iter__(self) -> Any:
        return self._llmops_chunks

    def __next__(self) -> Any:
        return next(self._llmops_chunks)

    def __enter__(self) -> Any:
        self._llmops_stream.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._llmops_stream.__exit__(*exc)


class _AsyncStreamProxy:
    def __init__(self, stream: Any, chunks: Any) -> None:
        self._llmops_stream = stream
        self._llmops_chunks = chunks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llmops_stream, name)

    def __aiter__(self) -> Any:
        return self._llmops_chunks

    async def __anext__(self) -> Any:
        return await self._llmops_chunks.__anext__()

    async def __aenter__(self) -> Any:
        await self._llmops_stream.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._llmops_stream.__aexit__(*exc)


# -- from openai's shapes to the contract's ------------------------------------------------------------


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict) or isinstance(obj, Mapping):  # noqa: SIM101 - dict first: the common, fast case
        return obj.get(name)
    return getattr(obj, name, None)


def _messages(messages: list[Any]) -> list[dict[str, Any]] | None:
    mapped = [m for m in (_message(x) for x in messages) if m]
    return mapped or None


def _completion_output(completion: Any) -> str | list[dict[str, Any]] | None:
    """The text of a single plain answer; the assistant messages when there are tool calls or several."""
    choices = getattr(completion, "choices", None) or []
    messages = [m for m in (_message(getattr(c, "message", None)) for c in choices) if m]
    if len(messages) == 1 and not messages[0].get("tool_calls"):
        content = messages[0].get("content")
        return content if isinstance(content, str) else ""
    return messages or None


def _stream_output(text: list[str], tool_calls: dict[int, dict[str, Any]]) -> str | list[dict[str, Any]]:
    joined = "".join(text)
    if not tool_calls:
        return joined
    calls = [_tool_call(c["id"], c["name"], c["arguments"]) for _, c in sorted(tool_calls.items()) if c["name"]]
    return [_drop_none({"role": "assistant", "content": joined or None, "tool_calls": calls or None})]


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return _drop_none({"id": call_id if isinstance(call_id, str) and call_id else None, "type": "function",
                       "name": str(name), "arguments": arguments if isinstance(arguments, str) else ""})


def _content_part(part: Any) -> dict[str, Any] | None:
    kind = _get(part, "type")
    if not isinstance(kind, str) or not kind:
        return None
    out: dict[str, Any] = {"type": kind}
    text = _get(part, "text")
    if text is None and kind == "refusal":
        text = _get(part, "refusal")
    if isinstance(text, str):
        out["text"] = text
    url = _get(_get(part, "image_url"), "url") if kind == "image_url" else None
    # Inline data (base64 images) is neither useful downstream nor within the contract's limit.
    if isinstance(url, str) and len(url) <= _MAX_URL and not url.startswith("data:"):
        out["url"] = url
    return out


def _message(message: Any) -> dict[str, Any] | None:
    """One chat message (a dict as sent, or a pydantic message as returned) in the contract's shape."""
    role = _get(message, "role")
    if role not in _ROLES:
        return None
    out: dict[str, Any] = {"role": role}
    content = _get(message, "content")
    if isinstance(content, str):
        out["content"] = content
    elif isinstance(content, (list, tuple)):
        parts = [p for p in (_content_part(x) for x in content) if p]
        if parts:
            out["content"] = parts
    if content is None and role == "assistant":
        refusal = _get(message, "refusal")
        if isinstance(refusal, str):
            out["content"] = refusal
    name = _get(message, "name")
    if isinstance(name, str) and name:
        out["name"] = name
    tool_call_id = _get(message, "tool_call_id")
    if isinstance(tool_call_id, str) and tool_call_id:
        out["tool_call_id"] = tool_call_id
    calls = _get(message, "tool_calls")
    if calls:
        out["tool_calls"] = [
            _tool_call(_get(c, "id"), _get(_get(c, "function"), "name"), _get(_get(c, "function"), "arguments"))
            for c in calls if _get(_get(c, "function"), "name")
        ] or None
        if out["tool_calls"] is None:
            del out["tool_calls"]
    return out
