"""Where the running code is: its trace and its span, carried through `contextvars`.

The bottom of the SDK (it imports nothing of it): the recorder reads the context to stamp events,
`trace()` and `span()` (`llmops_sdk.tracing`) set it.

Context variables follow the code: a thread sees its own context, and an `asyncio` task starts with a copy
of the context it was created in, so concurrent tasks under one span are siblings, not each other's
parents.
"""

from __future__ import annotations

import contextvars
import os
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class TraceContext:
    """Where the running code is: its trace, and the span it runs in (None at the top of a trace)."""

    trace_id: str
    span_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None


CURRENT: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("llmops_trace", default=None)
PROMPT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("llmops_prompt", default=None)
"""The managed prompt in use (`{name, version, variant}`), set by `Prompt.compile()` and `Prompt.use()`
(`llmops_sdk.prompts`); the recorder puts it on every event that names no `prompt` of its own."""


def current() -> TraceContext | None:
    """The trace context of the running code, or None outside any trace."""
    return CURRENT.get()


def new_trace_id() -> str:
    return uuid.uuid4().hex


def new_span_id() -> str:
    return os.urandom(8).hex()


def restore(token: contextvars.Token[TraceContext | None], previous: TraceContext | None) -> None:
    """Undo a `CURRENT.set()` made on entering a block, on leaving it."""
    try:
        CURRENT.reset(token)
    except ValueError:
        # Exited in another context than it was entered in (a generator resumed elsewhere, a task
        # switch): put back what was current on entry instead.
        CURRENT.set(previous)
