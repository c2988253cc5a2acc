"""Traces and spans: which trace and which span the code is running in (`llmops_sdk.context`).

`trace()` starts a trace (at a request boundary, say); `span(name, kind=...)` opens a step inside it (a
chain, a tool call, an agent turn, a retrieval) and records one span event when it ends, with its latency
and status. Every event recorded inside gets the trace's `trace_id` and the enclosing span's id as its
`parent_span_id`, so a trace store can rebuild the tree.

Context variables follow the code: a thread sees its own context, and an `asyncio` task starts with a copy
of the context it was created in, so concurrent tasks under one span are siblings, not each other's
parents. Imports go one way: tracing uses the recorder (`llmops_sdk.client`), which knows nothing of it.
"""

from __future__ import annotations

import contextvars
import logging
import time
from dataclasses import replace
from types import TracebackType
from typing import Any

from llmops_sdk.client import default_recorder
from llmops_sdk.context import CURRENT, PROMPT, TraceContext, current, new_span_id, new_trace_id, restore
from llmops_sdk.recorder import Recorder

__all__ = ["SPAN_KINDS", "TraceContext", "current", "error_info", "span", "trace"]

log = logging.getLogger("llmops_sdk")

SPAN_KINDS = frozenset({"llm", "chain", "tool", "retriever", "agent", "embedding"})


class trace:
    """Start a trace: events recorded inside share one `trace_id` (a new one unless given).

    Use it where a unit of work begins (an incoming request, a job), and pass the caller's trace id
    when there is one. `session_id` and `user_id` are attached to every event recorded inside that
    does not set its own. Records nothing itself; works with `with` and `async with`.
    """

    def __init__(self, trace_id: str | None = None, *, session_id: str | None = None,
                 user_id: str | None = None) -> None:
        self.context = TraceContext(trace_id=trace_id or new_trace_id(), session_id=session_id, user_id=user_id)
        self._token: contextvars.Token[TraceContext | None] | None = None
        self._previous: TraceContext | None = None
        self._prompt: dict[str, str] | None = None

    @property
    def trace_id(self) -> str:
        return self.context.trace_id

    def __enter__(self) -> trace:
        self._previous = CURRENT.get()
        self._prompt = PROMPT.get()  # a prompt compiled inside is in use until the trace ends, no longer
        self._token = CURRENT.set(self.context)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._token is not None:
            restore(self._token, self._previous)
            PROMPT.set(self._prompt)
            self._token = None

    async def __aenter__(self) -> trace:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


class span:
    """One step of a trace. On exit it records a span event (`span_kind`, `name`, `latency_ms`,
    `status`, and `error` if the block raised; the exception propagates unchanged).

    Inside the block, `input`, `output`, `metadata` and `tags` of the yielded object may be set; they
    go into the event. Outside any trace, a span starts a new one. `recorder` defaults to the one set
    up by `llmops_sdk.configure()`; without one the span still carries context but records nothing.
    """

    def __init__(self, name: str, kind: str = "chain", *, recorder: Recorder | None = None,
                 input: Any = None, metadata: dict[str, Any] | None = None,
                 tags: list[str] | None = None) -> None:
        self.name = name
        self.kind = kind if kind in SPAN_KINDS else "chain"
        self.recorder = recorder
        self.input = input
        self.output: Any = None
        self.metadata: dict[str, Any] = dict(metadata) if metadata else {}
        self.tags: list[str] = list(tags) if tags else []
        self.context: TraceContext | None = None
        self.parent_span_id: str | None = None
        self._token: contextvars.Token[TraceContext | None] | None = None
        self._previous: TraceContext | None = None
        self._started = 0.0
        self._started_wall = 0.0

    @property
    def trace_id(self) -> str | None:
        return self.context.trace_id if self.context else None

    @property
    def span_id(self) -> str | None:
        return self.context.span_id if self.context else None

    def __enter__(self) -> span:
        parent = CURRENT.get()
        self._previous = parent
        if parent is None:
            self.context = TraceContext(trace_id=new_trace_id(), span_id=new_span_id())
        else:
            self.parent_span_id = parent.span_id
            self.context = replace(parent, span_id=new_span_id())
        self._token = CURRENT.set(self.context)
        self._started_wall = time.time()
        self._started = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        latency_ms = (time.perf_counter() - self._started) * 1000
        if self._token is not None:
            restore(self._token, self._previous)
            self._token = None
        try:
            self._record(latency_ms, exc)
        except Exception:  # never let bookkeeping break the app's block
            log.debug("llmops: could not record a span event", exc_info=True)

    async def __aenter__(self) -> span:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    def _record(self, latency_ms: float, exc: BaseException | None) -> None:
        recorder = self.recorder
        if recorder is None:
            recorder = default_recorder()
        if recorder is None or self.context is None:
            return
        event: dict[str, Any] = {
            "occurred_at": self._started_wall,
            "trace_id": self.context.trace_id,
            "span_id": self.context.span_id,
            "parent_span_id": self.parent_span_id,
            "span_kind": self.kind,
            "name": self.name,
            "latency_ms": latency_ms,
            "status": "ok",
        }
        if self.context.session_id is not None:
            event["session_id"] = self.context.session_id
        if self.context.user_id is not None:
            event["user_id"] = self.context.user_id
        if self.input is not None:
            event["input"] = self.input
        if self.output is not None:
            event["output"] = self.output
        if self.metadata:
            event["metadata"] = self.metadata
        if self.tags:
            event["tags"] = self.tags
        if exc is not None and isinstance(exc, Exception):
            event["status"] = "error"
            event["error"] = error_info(exc)
        recorder.record(event)


def error_info(exc: BaseException) -> dict[str, Any]:
    """The contract's `error` object for an exception: its class name, message and code if any."""
    info: dict[str, Any] = {"type": type(exc).__name__[:256], "message": str(exc)[:4096]}
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not code:
        status = getattr(exc, "status_code", None)
        code = str(status) if isinstance(status, int) else None
    if code:
        info["code"] = code[:256]
    return info
