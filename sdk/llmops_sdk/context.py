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
import threading
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


def new_event_id() -> str:
    """A random (version 4) UUID, as text."""
    return str(uuid.UUID(bytes=random_bytes(16), version=4))


def new_trace_id() -> str:
    return uuid.UUID(bytes=random_bytes(16), version=4).hex


def new_span_id() -> str:
    return random_bytes(8).hex()


# Random bytes for ids, drawn from `os.urandom` 4 KiB at a time per thread. `os.urandom` releases the GIL
# around its system call, so calling it for every event made `record()` hand the GIL to the sender thread
# on every call, and wait until the sender let go of it again. A forked child starts with a fresh pool,
# never with bytes its parent also uses.
_POOL_BYTES = 4096


class _Pool(threading.local):
    block = b""
    pos = 0


_pool = _Pool()


def random_bytes(n: int) -> bytes:
    """`n` (at most 4096) bytes from `os.urandom`, through this thread's pool."""
    pool = _pool
    pos = pool.pos
    if pos + n > len(pool.block):
        pool.block, pos = os.urandom(_POOL_BYTES), 0
    pool.pos = pos + n
    return pool.block[pos:pos + n]


def _fresh_pool_in_child() -> None:
    _pool.block, _pool.pos = b"", 0  # the child's one thread is the one that forked


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_pool_in_child)


def restore(token: contextvars.Token[TraceContext | None], previous: TraceContext | None) -> None:
    """Undo a `CURRENT.set()` made on entering a block, on leaving it."""
    try:
        CURRENT.reset(token)
    except ValueError:
        # Exited in another context than it was entered in (a generator resumed elsewhere, a task
        # switch): put back what was current on entry instead.
        CURRENT.set(previous)
