"""The recorder: takes interaction events on the app's threads and delivers them in the background.

`Recorder.record()` is all an app's thread pays for: it copies the event, stamps `event_id`,
`occurred_at` and the trace context, and appends it to a bounded in-memory buffer. When the buffer is
full the event is dropped and counted; `record()` never blocks and never raises. One daemon thread per
recorder does the rest: it takes batches (by size, or every `flush_interval_s`), serializes them, sends
them through the transport (the ingest API, or Kafka) and retries what can be retried with exponential
backoff and jitter, honouring `Retry-After`. `flush()` and `close()` wait for delivery up to a timeout,
and every live recorder is flushed at interpreter exit (bounded by `exit_timeout_s`).

Delivery is at least once: a batch whose answer was lost (a timeout) is sent again with the same
`event_id`s, and every consumer de-duplicates on `event_id`.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import datetime as dt
import enum
import json
import logging
import os
import random
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmops_sdk.tracing import _CURRENT, new_span_id, new_trace_id
from llmops_sdk.transport import HTTPTransport, KafkaTransport, Payload, Transport

log = logging.getLogger("llmops_sdk")

MAX_BATCH_EVENTS = 1_000  # the ingest API's limit per request
MAX_EVENT_BYTES = 1_000_000  # the contract's limit per event
_YIELD_EVERY = 8  # events serialized between two GIL hand-overs on the sender thread
_UTC = dt.timezone.utc  # noqa: UP017 - datetime.UTC is 3.11+; the SDK runs on 3.9


@dataclass(frozen=True)
class RecorderConfig:
    """How a recorder delivers. Everything but `app_id` and the transport's own settings has a default.

    - `transport`: "http" (to the ingest API at `endpoint` with `api_key`) or "kafka" (to the broker at
      `kafka_bootstrap`, topic `kafka_topic`, as `tenant_id`).
    - `max_buffer`: events held in memory at most; beyond it `record()` drops and counts.
    - `batch_size` / `max_batch_bytes`: the most one request carries; `flush_interval_s`: the longest an
      event waits for its batch to fill.
    - `max_retries`, `backoff_base_s`, `backoff_max_s`: retries of one batch; then it counts as failed.
    - `request_timeout_s`: per request; `exit_timeout_s`: how long interpreter exit waits for delivery.
    """

    app_id: str
    endpoint: str | None = None
    api_key: str | None = None
    environment: str = "production"
    transport: str = "http"
    kafka_bootstrap: str | None = None
    kafka_topic: str = "llm.interactions.raw"
    tenant_id: str | None = None
    max_buffer: int = 10_000
    batch_size: int = 100
    max_batch_bytes: int = 4 * 1024 * 1024
    flush_interval_s: float = 1.0
    max_retries: int = 8
    backoff_base_s: float = 0.25
    backoff_max_s: float = 30.0
    request_timeout_s: float = 10.0
    exit_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.app_id:
            raise ValueError("app_id is required")
        if self.transport not in {"http", "kafka"}:
            raise ValueError(f"transport must be 'http' or 'kafka', not {self.transport!r}")
        if self.max_buffer < 1 or not 1 <= self.batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"max_buffer must be >= 1 and batch_size within 1..{MAX_BATCH_EVENTS}")
        if self.flush_interval_s <= 0 or self.max_retries < 0 or self.backoff_base_s < 0:
            raise ValueError("flush_interval_s must be > 0, max_retries and backoff_base_s >= 0")

    def check_transport(self) -> None:
        """Raise ValueError if the chosen transport lacks a setting (or, for Kafka, aiokafka)."""
        if self.transport == "http":
            if not self.endpoint:
                raise ValueError("endpoint is required for the http transport (e.g. http://127.0.0.1:8080)")
            if not self.api_key:
                raise ValueError("api_key is required for the http transport")
            return
        if not self.kafka_bootstrap:
            raise ValueError("kafka_bootstrap is required for the kafka transport")
        if not self.tenant_id:
            raise ValueError("tenant_id is required for the kafka transport (no API key names it)")
        import importlib.util

        if importlib.util.find_spec("aiokafka") is None:
            raise ValueError("the kafka transport needs aiokafka: pip install 'llmops-sdk[kafka]'")


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


@dataclass
class _Counters:
    recorded: int = 0
    dropped: int = 0
    invalid: int = 0
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    batches: int = 0
    settled: int = 0  # recorded events that reached an end: sent, rejected, failed or invalid
    logged: set[str] = field(default_factory=set)


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
        self._rng = random.Random()
        self._init_runtime()
        _LIVE.add(self)

    def _init_runtime(self) -> None:
        """Buffer, lock, counters and thread: fresh at start, and in a forked child."""
        self._lock = threading.Lock()
        self._settled_cond = threading.Condition(self._lock)
        self._buffer: collections.deque[dict[str, Any]] = collections.deque()
        self._counters = _Counters()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._abort = threading.Event()  # close() ran out of time: stop retrying
        self._flush_target = 0  # send partial batches until this many events are settled
        self._deadline: float | None = None  # monotonic; only for delivery on the closing thread
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
                event_id = event["event_id"] = str(uuid.uuid4())
            if "occurred_at" not in event:
                event["occurred_at"] = time.time()
            context = _CURRENT.get()
            if context is not None:
                if "trace_id" not in event:
                    event["trace_id"] = context.trace_id
                    if "parent_span_id" not in event and context.span_id is not None:
                        event["parent_span_id"] = context.span_id
                if context.session_id is not None and "session_id" not in event:
                    event["session_id"] = context.session_id
                if context.user_id is not None and "user_id" not in event:
                    event["user_id"] = context.user_id
            with self._lock:
                if self._closed or len(self._buffer) >= self._max_buffer:
                    self._counters.dropped += 1
                    return None
                self._buffer.append(event)
                self._counters.recorded += 1
                ready = len(self._buffer) >= self._batch_size
            if self._thread is None:
                self._start()
            elif ready and not self._wake.is_set():
                self._wake.set()
            return str(event_id)
        except Exception:
            with contextlib.suppress(Exception):  # the promise is never to raise into the app
                self._count_invalid("record() could not take an event")
            return None

    def _count_invalid(self, why: str) -> None:
        with self._lock:
            self._counters.invalid += 1
            first = why not in self._counters.logged
            self._counters.logged.add(why)
        if first:
            log.warning("llmops: %s; such events are counted as invalid and not sent", why)

    def stats(self) -> RecorderStats:
        with self._lock:
            c = self._counters
            return RecorderStats(recorded=c.recorded, dropped=c.dropped, invalid=c.invalid, sent=c.sent,
                                 rejected=c.rejected, failed=c.failed, pending=c.recorded - c.settled,
                                 retries=c.retries, batches=c.batches)

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every event recorded before this call is delivered (or given up on), at most
        `timeout` seconds. True if nothing recorded before it is still pending."""
        try:
            with self._lock:
                target = self._counters.recorded
                if self._counters.settled >= target:
                    return True
                self._flush_target = max(self._flush_target, target)
            if threading.current_thread() is self._thread:
                return False
            if not self._start():
                return False
            self._wake.set()
            with self._settled_cond:
                return self._settled_cond.wait_for(lambda: self._counters.settled >= target, timeout)
        except Exception:
            log.debug("llmops: flush failed", exc_info=True)
            return False

    def close(self, timeout: float | None = 5.0) -> bool:
        """Deliver what is buffered (waiting at most `timeout` seconds), then stop the sender thread.
        Events recorded afterwards are dropped. True if everything was delivered or given up on."""
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            with self._lock:
                already = self._closed
                self._closed = True
            drained = self.flush(timeout)
            if not drained and self._thread is None:
                # The sender thread could not start (interpreter shutdown): deliver from here, bounded.
                self._deadline = deadline
                self._run()
                drained = self.stats().pending == 0
            if not drained:
                self._abort.set()  # the sender gives up what it holds and stops
                log.warning("llmops: %d event(s) not delivered within the close/exit timeout of %ss; "
                            "given up", self.stats().pending, timeout)
            self._wake.set()
            thread = self._thread
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

    # -- the sender thread ---------------------------------------------------------------------------

    def _start(self) -> bool:
        """Start the sender thread if it is not running; False if no thread can be started."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return True
            thread = threading.Thread(target=self._run, name="llmops-sdk-sender", daemon=True)
            self._thread = thread
        try:
            thread.start()
        except RuntimeError:  # no new threads at interpreter shutdown
            with self._lock:
                self._thread = None
            return False
        return True

    def _make_transport(self) -> Transport:
        if self._custom_transport is not None:
            return self._custom_transport
        c = self.config
        if c.transport == "kafka":
            assert c.kafka_bootstrap is not None
            return KafkaTransport(c.kafka_bootstrap, topic=c.kafka_topic, timeout_s=c.request_timeout_s)
        assert c.endpoint is not None and c.api_key is not None
        return HTTPTransport(c.endpoint, c.api_key, timeout_s=c.request_timeout_s)

    def _run(self) -> None:
        try:
            transport = self._make_transport()
        except Exception as exc:
            log.error("llmops: cannot set up the %s transport (%s); events are not sent",
                      self.config.transport, type(exc).__name__)
            self._give_up_all()
            return
        try:
            self._loop(transport)
        finally:
            try:
                transport.close()
            except Exception:
                log.debug("llmops: transport did not close cleanly", exc_info=True)

    def _loop(self, transport: Transport) -> None:
        interval = self.config.flush_interval_s
        next_due = time.monotonic() + interval  # a partial batch goes out at most once per interval
        while True:
            self._wake.clear()
            if self._abort.is_set() or self._past_deadline():
                self._give_up_all()
                return
            with self._lock:
                waiting = len(self._buffer)
                flushing = self._counters.settled < self._flush_target
                closed = self._closed
            now = time.monotonic()
            if waiting == 0:
                if closed:
                    return
                self._wake.wait(max(next_due - now, interval))
                continue
            if waiting < self._batch_size and not flushing and not closed and now < next_due:
                self._wake.wait(next_due - now)
                continue
            with self._lock:
                batch = [self._buffer.popleft() for _ in range(min(self._batch_size, len(self._buffer)))]
            try:
                self._deliver(transport, batch)
            except Exception:
                log.exception("llmops: unexpected error in the sender; a batch of %d events failed", len(batch))
                self._settle(failed=len(batch))
            next_due = time.monotonic() + interval

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _deliver(self, transport: Transport, batch: list[dict[str, Any]]) -> None:
        payloads: list[Payload] = []
        invalid = 0
        for i, event in enumerate(batch, start=1):
            payload = self._serialize(event)
            if payload is None:
                invalid += 1
            else:
                payloads.append(payload)
            if i % _YIELD_EVERY == 0:
                # Hand the GIL over now and then: an app thread waiting for it would otherwise wait up
                # to the interpreter's switch interval (5 ms) while a whole batch is serialized.
                time.sleep(0)
        if invalid:
            self._log_once("unserializable", "llmops: %d event(s) could not be serialized as JSON or exceed "
                           "%d bytes; counted as invalid", invalid, MAX_EVENT_BYTES)
            self._settle(invalid=invalid)
        for part in self._by_bytes(payloads):
            self._send_with_retries(transport, part)

    def _by_bytes(self, payloads: list[Payload]) -> list[list[Payload]]:
        limit = self.config.max_batch_bytes
        parts: list[list[Payload]] = []
        current: list[Payload] = []
        size = 0
        for p in payloads:
            if current and size + len(p.value) + 1 > limit:
                parts.append(current)
                current, size = [], 0
            current.append(p)
            size += len(p.value) + 1
        if current:
            parts.append(current)
        return parts

    def _send_with_retries(self, transport: Transport, batch: list[Payload]) -> None:
        attempt = 0
        while True:
            with self._lock:
                self._counters.batches += 1
            delivery = transport.send(batch)
            if delivery.split:
                half = len(batch) // 2
                self._send_with_retries(transport, batch[:half])
                self._send_with_retries(transport, batch[half:])
                return
            if not delivery.retry:
                if delivery.rejected:  # said before settling, so whoever waits in flush() finds it logged
                    fields = ", ".join(delivery.rejected_fields[:10]) or "-"
                    self._log_once(f"rejected:{delivery.status}", "llmops: the ingest API rejected %d event(s) "
                                   "(%s; fields: %s); not retried", delivery.rejected, delivery.reason, fields)
                self._settle(sent=delivery.sent, rejected=delivery.rejected)
                return
            attempt += 1
            if attempt > self.config.max_retries:
                log.warning("llmops: gave up on %d event(s) after %d retries (%s)", len(batch),
                            self.config.max_retries, delivery.reason)
                self._settle(failed=len(batch))
                return
            with self._lock:
                self._counters.retries += 1
            delay = self._backoff(attempt, delivery.retry_after_s)
            self._log_once(f"retry:{delivery.reason}", "llmops: delivery failed (%s); retrying with backoff",
                           delivery.reason)
            if self._deadline is not None:
                delay = min(delay, max(0.0, self._deadline - time.monotonic()))
            if self._abort.wait(delay) or self._past_deadline():
                self._settle(failed=len(batch))
                return

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        c = self.config
        ceiling = min(c.backoff_max_s, c.backoff_base_s * (2 ** (attempt - 1)))
        delay = ceiling / 2 + self._rng.random() * ceiling / 2  # "equal jitter": never zero, never in step
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, max(c.backoff_max_s, 60.0)))
        return delay

    def _serialize(self, event: dict[str, Any]) -> Payload | None:
        try:
            wire = {**self._defaults, **event}
            occurred = wire.get("occurred_at")
            if isinstance(occurred, (int, float)) and not isinstance(occurred, bool):
                wire["occurred_at"] = dt.datetime.fromtimestamp(occurred, _UTC).isoformat()
            if wire.get("trace_id") is None:
                wire["trace_id"] = new_trace_id()
            if wire.get("span_id") is None:
                wire["span_id"] = new_span_id()
            wire = {k: v for k, v in wire.items() if v is not None}
            value = json.dumps(wire, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                               default=_json_default).encode("utf-8")
        except Exception:  # not JSON-able (or a Deferred that failed): this event only is invalid
            return None
        if len(value) > MAX_EVENT_BYTES:
            return None
        return Payload(key=str(wire["trace_id"]).encode("utf-8", "replace"), value=value)

    def _settle(self, *, sent: int = 0, rejected: int = 0, failed: int = 0, invalid: int = 0) -> None:
        with self._lock:
            c = self._counters
            c.sent += sent
            c.rejected += rejected
            c.failed += failed
            c.invalid += invalid
            c.settled += sent + rejected + failed + invalid
            self._settled_cond.notify_all()

    def _give_up_all(self) -> None:
        with self._lock:
            left = len(self._buffer)
            self._buffer.clear()
        if left:
            self._settle(failed=left)
            log.warning("llmops: %d buffered event(s) not delivered before close()/exit timed out", left)
        with self._lock:
            self._settled_cond.notify_all()

    def _log_once(self, key: str, message: str, *args: Any) -> None:
        with self._lock:
            first = key not in self._counters.logged
            self._counters.logged.add(key)
        if first:
            log.warning(message, *args)

    def _after_fork_in_child(self) -> None:
        # The parent's buffer is the parent's to deliver; the child starts empty with a thread of its own.
        closed = self._closed
        self._init_runtime()
        self._closed = closed


def _as_dict(obj: Any) -> dict[str, Any] | None:
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        result = dump(mode="json", exclude_none=True)
        return result if isinstance(result, dict) else None
    return None


class Deferred:
    """An event field computed on the sender thread, when the event is serialized, rather than on the
    app's thread: `record({"output": Deferred(fn, response)})`. `fn(*args)` must return JSON-able data
    (or None) and must not depend on anything the app changes after the call."""

    __slots__ = ("args", "fn")

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn = fn
        self.args = args

    def __call__(self) -> Any:
        return self.fn(*self.args)


def _json_default(obj: Any) -> Any:
    if type(obj) is Deferred:
        return obj()
    if isinstance(obj, dt.datetime):
        return (obj if obj.tzinfo else obj.replace(tzinfo=_UTC)).isoformat()
    if isinstance(obj, (dt.date, dt.time)):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).decode("utf-8", "replace")
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    raise TypeError(f"cannot serialize {type(obj).__name__}")


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


# -- the module-level default recorder ---------------------------------------------------------------

_default: Recorder | None = None
_default_lock = threading.Lock()


def configure(**options: Any) -> Recorder:
    """Set up the default recorder used by `llmops_sdk.record()`, spans and `instrument_openai()`.

    Options are `RecorderConfig`'s; `endpoint`, `api_key`, `app_id`, `environment`, `kafka_bootstrap`
    and `tenant_id` default to `LLMOPS_ENDPOINT`, `LLMOPS_API_KEY`, `LLMOPS_APP_ID`,
    `LLMOPS_ENVIRONMENT`, `LLMOPS_KAFKA_BOOTSTRAP` and `LLMOPS_TENANT_ID`. A previous default recorder
    is closed (flushing what it holds).
    """
    global _default
    env = {"endpoint": "LLMOPS_ENDPOINT", "api_key": "LLMOPS_API_KEY", "app_id": "LLMOPS_APP_ID",
           "environment": "LLMOPS_ENVIRONMENT", "kafka_bootstrap": "LLMOPS_KAFKA_BOOTSTRAP",
           "tenant_id": "LLMOPS_TENANT_ID"}
    for name, var in env.items():
        if name not in options and os.environ.get(var):
            options[name] = os.environ[var]
    recorder = Recorder(**options)
    with _default_lock:
        previous, _default = _default, recorder
    if previous is not None:
        previous.close(previous.config.exit_timeout_s)
    return recorder


def default_recorder() -> Recorder | None:
    """The recorder set up by `configure()`, if any."""
    return _default


def record(interaction: Any = None, /, **fields: Any) -> str | None:
    """`Recorder.record` on the default recorder; without `configure()` it records nothing."""
    recorder = _default
    if recorder is None:
        return None
    return recorder.record(interaction, **fields)


def flush(timeout: float | None = 5.0) -> bool:
    recorder = _default
    return True if recorder is None else recorder.flush(timeout)


def close(timeout: float | None = 5.0) -> bool:
    global _default
    with _default_lock:
        recorder, _default = _default, None
    return True if recorder is None else recorder.close(timeout)
