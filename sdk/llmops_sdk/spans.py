"""What the framework integrations (LangChain, LlamaIndex) share: a table of the runs in flight, placed in
traces, and the text of a step's input or output.

A framework's run tree becomes one trace: each run is a span (its id the run's id), its parent the parent
run's span. A root run joins the trace the code runs in (`llmops_sdk.trace()` / `span()`) when there is
one, under the enclosing span; otherwise it starts a trace whose id is its own run id.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmops_sdk.context import CURRENT
from llmops_sdk.tokens import get

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")  # the contract's pattern for ids
MAX_TEXT = 100_000  # characters of a step's input or output kept (the contract allows 500,000)
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass
class Run:
    """One run in flight: where it sits in its trace, and what its start said."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str
    name: str | None
    started: float = field(default_factory=time.perf_counter)
    started_wall: float = field(default_factory=time.time)
    fields: dict[str, Any] = field(default_factory=dict)  # event fields known at the start
    first_token_at: float | None = None
    awaiting_end: bool = False  # an LLM call began in this run and has not ended (a stream outlives its span)
    span_closed: bool = False  # the framework closed the run while its LLM call goes on

    def event(self, **fields: Any) -> dict[str, Any]:
        """The run's event as it ends now."""
        latency_ms = (time.perf_counter() - self.started) * 1000
        event: dict[str, Any] = {"occurred_at": self.started_wall, "trace_id": self.trace_id, "span_id": self.span_id,
                                 "span_kind": self.kind, "latency_ms": latency_ms, "status": "ok", **self.fields}
        if self.parent_span_id is not None:
            event["parent_span_id"] = self.parent_span_id
        if self.name:
            event["name"] = self.name[:256]
        if self.first_token_at is not None:
            event["time_to_first_token_ms"] = min((self.first_token_at - self.started) * 1000, latency_ms)
        event.update(fields)
        return event


class RunTable:
    """The runs in flight, by run id; bounded (a run that never ends is forgotten, oldest first)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def start(self, run_id: str, parent_run_id: str | None, kind: str, name: str | None) -> Run:
        with self._lock:
            parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
        span_id = identifier(run_id)
        if parent is not None:
            run = Run(parent.trace_id, span_id, parent.span_id, kind, name)
        else:
            context = CURRENT.get()
            if context is not None:
                run = Run(context.trace_id, span_id, context.span_id, kind, name)
            else:
                run = Run(identifier(parent_run_id or run_id), span_id, None, kind, name)
        with self._lock:
            self._runs[run_id] = run
            while len(self._runs) > self._limit:
                self._runs.pop(next(iter(self._runs)))
        return run

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def end(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.pop(run_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)


def identifier(value: str) -> str:
    """A framework's run or span id as the contract's id: as it is when it fits the pattern and 128
    characters, else its allowed characters and a hash of the whole (the same id always maps alike)."""
    if len(value) <= 128 and _IDENTIFIER.match(value):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]
    prefix = re.sub(r"[^A-Za-z0-9._:/@-]", "_", value)[:95]
    prefix = re.sub(r"^[^A-Za-z0-9]+", "", prefix)
    return f"{prefix}-{digest}" if prefix else digest


def as_text(value: Any) -> str | None:
    """A step's input or output as text: a string as it is, anything else as JSON; at most `MAX_TEXT`."""
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, Mapping) and len(value) == 1:
            (only,) = value.values()
            if isinstance(only, str):
                value = only
        if not isinstance(value, str):
            value = json.dumps(value, default=_plain, ensure_ascii=False)
    return value[:MAX_TEXT]


def _plain(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            return str(obj)
    content = getattr(obj, "content", None)  # messages and documents
    if isinstance(content, str):
        return content
    page = getattr(obj, "page_content", None)
    if isinstance(page, str):
        return page
    return str(obj)


def chat_message(role: Any, content: Any, *, tool_calls: Any = None, tool_call_id: Any = None,
                 name: Any = None) -> dict[str, Any] | None:
    """One message in the contract's shape; None for a role the contract does not know."""
    role = getattr(role, "value", role)
    if role not in _ROLES:
        return None
    out: dict[str, Any] = {"role": role}
    if isinstance(content, str):
        out["content"] = content[:MAX_TEXT]
    elif isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
                continue
            kind = get(part, "type") or get(part, "block_type")
            if isinstance(kind, str) and kind:
                text = get(part, "text")
                parts.append({"type": kind, "text": text} if isinstance(text, str) else {"type": kind})
        if parts:
            out["content"] = parts
    calls = [c for c in (_tool_call(c) for c in tool_calls or ()) if c]
    if calls:
        out["tool_calls"] = calls
    if isinstance(tool_call_id, str) and tool_call_id:
        out["tool_call_id"] = tool_call_id[:256]
    if isinstance(name, str) and name:
        out["name"] = name[:256]
    return out


def _tool_call(call: Any) -> dict[str, Any] | None:
    function = get(call, "function")
    name = get(call, "name") or get(function, "name") or get(call, "tool_name")
    if not isinstance(name, str) or not name:
        return None
    arguments = get(call, "args")
    if arguments is None:
        arguments = get(function, "arguments") if function is not None else get(call, "tool_kwargs")
    out: dict[str, Any] = {"type": "function", "name": name[:256],
                           "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments, default=str)}
    call_id = get(call, "id") or get(call, "tool_id")
    if isinstance(call_id, str) and call_id:
        out["id"] = call_id[:256]
    return out
