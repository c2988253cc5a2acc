"""The recorder: takes interaction events on the app's threads and hands them to its sender thread.

`Recorder.record()` is all an app's thread pays for: it copies the event, stamps `event_id`,
`occurred_at` and the trace context, and appends it to a bounded in-memory buffer. When the buffer is
full the event is dropped and counted; `record()` never blocks and never raises. One daemon thread per
recorder (`llmops_sdk.sender`) does the rest. `flush()` and `close()` wait for delivery up to a timeout,
and every live recorder is flushed at interpreter exit (bounded by `exit_timeout_s`).

Delivery is at least once: a batch whose answer was lost (a timeout) is sent again with the same
`event_id`s, and every consumer de-duplicates on `event_id`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmops_sdk.config import RecorderConfig
from llmops_sdk.context import CURRENT, PROMPT, new_event_id
from llmops_sdk.sender import Outbox, Sender
from llmops_sdk.transport import Transport

log = logging.getLogger("llmops_sdk")


@dataclass(frozen=True)
class RecorderStats:
    """Counters since the recorder started (or since a fork, in the child).

    `recorded` events entered the buffer; `dropped` did not (buffer full, or recorder closed);
    `invalid` were not events at all, or could not be serialized, or exceed the size limit per event.
    Of the recorded ones, `sent` were accepted by the ingest API (or Kafka), `rejected` were refused for
    good (a 4xx, or per event in a 207), `failed` were given up after `max_retries` (or when `close()`
    ran out of time), and `pending` are still buffered or in flight. `retries` counts repeated requests.
    """

    recorded: int = 0
    dropped: int = 0
    invalid: int = 0
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    pending: int = 0
    retries: int = 0
    batches: int = 0


class Recorder:
    """Records interaction events without slowing or breaking the app. See the module docstring.

    `Recorder(app_id=..., endpoint=..., api_key=...)`, or with a ready `RecorderConfig`, or with any
    object that has `send(list[Payload]) -> Delivery` and `close()` as `custom_transport=`.
    """

    def __init__(self, config: RecorderConfig | None = None, *, custom_transport: Transport | None = None,
                 **options: Any) -> None:
        if config is None:
            config = RecorderConfig(**options)
        elif options:
            raise TypeError("give either a RecorderConfig or keyword options, not both")
        if custom_transport is None:
            config.check_transport()
        self.config = config
        self._custom_transport = custom_transport
        self._defaults: dict[str, Any] = {"app_id": config.app_id, "environment": config.environment}
        if config.transport == "kafka":
            self._defaults["tenant_id"] = config.tenant_id
        self._init_runtime()
        _LIVE.add(self)

    def _init_runtime(self) -> None:
        """Outbox and sender (its thread not started yet): fresh at start, and in a forked child."""
        self._outbox = Outbox()
        self._sender = Sender(self.config, self._outbox, defaults=self._defaults,
                              custom_transport=self._custom_transport, owner=self)
        self._max_buffer = self.config.max_buffer
        self._batch_size = self.config.batch_size

    # -- the app's side ----------------------------------------------------------------------------

    def record(self, interaction: Any = None, /, **fields: Any) -> str | None:
        """Queue one interaction event; returns its `event_id`, or None if it was not queued.

        Takes a dict (or any mapping, or a pydantic model) with the contract's fields, and/or the
        fields as keywords. Missing `event_id`, `occurred_at`, `app_id`, `environment` and trace
        fields are filled in. Never blocks, never raises: problems are counted (see `stats()`).
        """
        try:
            if interaction is None:
                event = fields
            elif type(interaction) is dict:
                event = interaction.copy()
                if fields:
                    event.update(fields)
            else:
                coerced = _as_dict(interaction)
                if coerced is None:
                    self._count_invalid("record() takes a dict of event fields")
                    return None
                event = coerced
                if fields:
                    event.update(fields)
            event_id = event.get("event_id")
            if event_id is None:
                event_id = event["event_id"] = new_event_id()
            if "occurred_at" not in event:
                event["occurred_at"] = time.time()
            context = CURRENT.get()
            if context is not None:
                if "trace_id" not in event:
                    event["trace_id"] = context.trace_id
                    if "parent_span_id" not in event and context.span_id is not None:
                        event["parent_span_id"] = context.span_id
                if context.session_id is not None and "session_id" not in event:
                    event["session_id"] = context.session_id
                if context.user_id is not None and "user_id" not in event:
                    event["user_id"] = context.user_id
            prompt = PROMPT.get()
            if prompt is not None and "prompt" not in event:
                event["prompt"] = prompt
            outbox = self._outbox
            with outbox.lock:
                if outbox.closed or len(outbox.buffer) >= self._max_buffer:
                    outbox.counters.dropped += 1
                    return None
                outbox.buffer.append(event)
                outbox.counters.recorded += 1
                ready = len(outbox.buffer) >= self._batch_size
            if self._sender.thread is None:
                self._sender.start()
            elif ready and not outbox.wake.is_set():
                outbox.wake.set()
            return str(event_id)
        except Exception:
            with contextlib.suppress(Exception):  # the promise is never to raise into the app
                self._count_invalid("record() could not take an event")
            return None

    def _count_invalid(self, why: str) -> None:
        outbox = self._outbox
        with outbox.lock:
            outbox.counters.invalid += 1
            first = why not in outbox.counters.logged
            outbox.counters.logged.add(why)
        if first:
            log.warning("llmops: %s; such events are counted as invalid and not sent", why)

    def stats(self) -> RecorderStats:
        outbox = self._outbox
        with outbox.lock:
            c = outbox.counters
            return RecorderStats(recorded=c.recorded, dropped=c.dropped, invalid=c.invalid, sent=c.sent,
                                 rejected=c.rejected, failed=c.failed, pending=c.recorded - c.settled,
                                 retries=c.retries, batches=c.batches)

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every event recorded before this call is delivered (or given up on), at most
        `timeout` seconds. True if nothing recorded before it is still pending."""
        try:
            outbox = self._outbox
            with outbox.lock:
                target = outbox.counters.recorded
                if outbox.counters.settled >= target:
                    return True
                outbox.flush_target = max(outbox.flush_target, target)
            if threading.current_thread() is self._sender.thread:
                return False
            if not self._sender.start():
                return False
            outbox.wake.set()
            with outbox.settled:
                return outbox.settled.wait_for(lambda: outbox.counters.settled >= target, timeout)
        except Exception:
            log.debug("llmops: flush failed", exc_info=True)
            return False

    def close(self, timeout: float | None = 5.0) -> bool:
        """Deliver what is buffered (waiting at most `timeout` seconds), then stop the sender thread.
        Events recorded afterwards are dropped. True if everything was delivered or given up on."""
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            outbox, sender = self._outbox, self._sender
            with outbox.lock:
                already = outbox.closed
                outbox.closed = True
            drained = self.flush(timeout)
            if not drained and sender.thread is None:
                # The sender thread could not start (interpreter shutdown): deliver from here, bounded.
                outbox.deadline = deadline
                sender.run()
                drained = self.stats().pending == 0
            if not drained:
                outbox.abort.set()  # the sender gives up what it holds and stops
                log.warning("llmops: %d event(s) not delivered within the close/exit timeout of %ss; "
                            "given up", self.stats().pending, timeout)
            outbox.wake.set()
            thread = sender.thread
            if thread is not None and thread is not threading.current_thread():
                left = 0.0 if deadline is None else max(0.0, deadline - time.monotonic())
                thread.join(None if deadline is None else max(left, 0.05))
            elif thread is None and self._custom_transport is not None and not already:
                self._custom_transport.close()
            _LIVE.discard(self)
            return drained
        except Exception:
            log.debug("llmops: close failed", exc_info=True)
            return False

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(self.config.exit_timeout_s)

    def _after_fork_in_child(self) -> None:
        # The parent's buffer is the parent's to deliver; the child starts empty with a thread of its own.
        closed = self._outbox.closed
        self._init_runtime()
        self._outbox.closed = closed


def _as_dict(obj: Any) -> dict[str, Any] | None:
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        result = dump(mode="json", exclude_none=True)
        return result if isinstance(result, dict) else None
    return None


# -- every live recorder: flushed at exit, reset in a forked child ------------------------------------

_LIVE: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _flush_all_at_exit() -> None:
    for recorder in list(_LIVE):
        with contextlib.suppress(Exception):  # exit goes on whatever happens here
            recorder.close(recorder.config.exit_timeout_s)


def _reset_all_in_child() -> None:
    for recorder in list(_LIVE):
        recorder._after_fork_in_child()


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_in_child)
