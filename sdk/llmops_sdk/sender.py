"""The sender thread: one daemon thread per recorder that delivers what the app's threads recorded.

The app's threads and the sender share an `Outbox`: the bounded buffer, the counters and the signals
between them, under one lock. The sender takes batches from it (by size, or every `flush_interval_s`, or
at once while someone flushes), serializes them (`llmops_sdk.wire`), sends them through the transport
(the ingest API, or Kafka) and retries what can be retried with exponential backoff and jitter,
honouring `Retry-After`. Every recorded event ends settled exactly once: sent, rejected, failed or
invalid; `flush()` waits on that.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from llmops_sdk.config import RecorderConfig
from llmops_sdk.transport import ENVELOPE_BYTES, HTTPTransport, KafkaTransport, Payload, Transport
from llmops_sdk.wire import MAX_EVENT_BYTES, to_payload

log = logging.getLogger("llmops_sdk")

_TAKE_CHUNK = 16  # events taken from the buffer under one hold of its lock
_YIELD_EVERY = 8  # events serialized between two GIL hand-overs


@dataclass
class Counters:
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


class Outbox:
    """What a recorder's app threads and its sender thread share. Every field is read and written under
    `lock` (the events are `set()`/`wait()`ed without it)."""

    __slots__ = ("abort", "buffer", "closed", "counters", "deadline", "flush_target", "lock", "settled", "wake")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settled = threading.Condition(self.lock)  # notified whenever events settle
        self.buffer: collections.deque[dict[str, Any]] = collections.deque()
        self.counters = Counters()
        self.wake = threading.Event()  # a batch is full, or someone flushes or closes
        self.abort = threading.Event()  # close() ran out of time: stop retrying
        self.closed = False
        self.flush_target = 0  # send partial batches until this many events are settled
        self.deadline: float | None = None  # monotonic; only for delivery on the closing thread

    def settle(self, *, sent: int = 0, rejected: int = 0, failed: int = 0, invalid: int = 0) -> None:
        with self.lock:
            c = self.counters
            c.sent += sent
            c.rejected += rejected
            c.failed += failed
            c.invalid += invalid
            c.settled += sent + rejected + failed + invalid
            self.settled.notify_all()

    def give_up_all(self) -> None:
        with self.lock:
            left = len(self.buffer)
            self.buffer.clear()
        if left:
            self.settle(failed=left)
            log.warning("llmops: %d buffered event(s) not delivered before close()/exit timed out", left)
        with self.lock:
            self.settled.notify_all()

    def log_once(self, key: str, message: str, *args: Any) -> None:
        with self.lock:
            first = key not in self.counters.logged
            self.counters.logged.add(key)
        if first:
            log.warning(message, *args)


class Sender:
    """Delivers an outbox's events through a transport made on its own thread.

    `start()` starts the thread (once); `run()` is its body, which `Recorder.close()` also runs on the
    closing thread when no thread can start (at interpreter shutdown). `owner` (the recorder) is kept
    referenced while the thread runs, so a recorder the app dropped is still flushed at exit.
    """

    def __init__(self, config: RecorderConfig, outbox: Outbox, *, defaults: dict[str, Any],
                 custom_transport: Transport | None = None, owner: object = None) -> None:
        self.config = config
        self.outbox = outbox
        self.defaults = defaults
        self.custom_transport = custom_transport
        self.thread: threading.Thread | None = None
        self._owner = owner
        self._rng = random.Random()

    def start(self) -> bool:
        """Start the sender thread if it is not running; False if no thread can be started."""
        with self.outbox.lock:
            if self.thread is not None and self.thread.is_alive():
                return True
            thread = threading.Thread(target=self.run, name="llmops-sdk-sender", daemon=True)
            self.thread = thread
        try:
            thread.start()
        except RuntimeError:  # no new threads at interpreter shutdown
            with self.outbox.lock:
                self.thread = None
            return False
        return True

    def run(self) -> None:
        try:
            transport = self._make_transport()
        except Exception as exc:
            log.error("llmops: cannot set up the %s transport (%s); events are not sent",
                      self.config.transport, type(exc).__name__)
            self.outbox.give_up_all()
            return
        try:
            self._loop(transport)
        finally:
            try:
                transport.close()
            except Exception:
                log.debug("llmops: transport did not close cleanly", exc_info=True)

    def _make_transport(self) -> Transport:
        if self.custom_transport is not None:
            return self.custom_transport
        c = self.config
        if c.transport == "kafka":
            assert c.kafka_bootstrap is not None
            return KafkaTransport(c.kafka_bootstrap, topic=c.kafka_topic, timeout_s=c.request_timeout_s)
        assert c.endpoint is not None and c.api_key is not None
        return HTTPTransport(c.endpoint, c.api_key, timeout_s=c.request_timeout_s)

    def _loop(self, transport: Transport) -> None:
        outbox = self.outbox
        interval = self.config.flush_interval_s
        batch_size = self.config.batch_size
        next_due = time.monotonic() + interval  # a partial batch goes out at most once per interval
        while True:
            outbox.wake.clear()
            if outbox.abort.is_set() or self._past_deadline():
                outbox.give_up_all()
                return
            with outbox.lock:
                waiting = len(outbox.buffer)
                flushing = outbox.counters.settled < outbox.flush_target
                closed = outbox.closed
            now = time.monotonic()
            if waiting == 0:
                if closed:
                    return
                outbox.wake.wait(max(next_due - now, interval))
                continue
            if waiting < batch_size and not flushing and not closed and now < next_due:
                outbox.wake.wait(next_due - now)
                continue
            batch = self._take(batch_size)
            try:
                self._deliver(transport, batch)
            except Exception:
                log.exception("llmops: unexpected error in the sender; a batch of %d events failed", len(batch))
                outbox.settle(failed=len(batch))
            next_due = time.monotonic() + interval

    def _past_deadline(self) -> bool:
        deadline = self.outbox.deadline
        return deadline is not None and time.monotonic() >= deadline

    def _take(self, n: int) -> list[dict[str, Any]]:
        """Up to `n` events from the buffer, a few at a time: an app thread's `record()` waits for the lock."""
        outbox = self.outbox
        batch: list[dict[str, Any]] = []
        while len(batch) < n:
            with outbox.lock:
                chunk = [outbox.buffer.popleft() for _ in range(min(_TAKE_CHUNK, n - len(batch), len(outbox.buffer)))]
            if not chunk:
                break
            batch += chunk
            _let_others_run()
        return batch

    def _deliver(self, transport: Transport, batch: list[dict[str, Any]]) -> None:
        """Serialize the batch, one event at a time with the GIL handed over between two (so an app
        thread waits for at most one event's serialization), in parts whose request bodies (the envelope,
        the events, a comma between two) are at most `max_batch_bytes`, except a part of one event larger
        than that on its own."""
        limit = self.config.max_batch_bytes
        empty = ENVELOPE_BYTES - 1  # an event adds its bytes and one comma; n events have n - 1 commas
        parts: list[list[Payload]] = []
        current: list[Payload] = []
        size = empty
        invalid = 0
        for i, event in enumerate(batch, start=1):
            payload = to_payload(event, self.defaults)
            if i % _YIELD_EVERY == 0:
                _let_others_run()
            if payload is None:
                invalid += 1
                continue
            if current and size + len(payload.value) + 1 > limit:
                parts.append(current)
                current, size = [], empty
            current.append(payload)
            size += len(payload.value) + 1
        if current:
            parts.append(current)
        if invalid:
            self.outbox.log_once("unserializable", "llmops: %d event(s) could not be serialized as JSON or "
                                 "exceed %d bytes; counted as invalid", invalid, MAX_EVENT_BYTES)
            self.outbox.settle(invalid=invalid)
        for part in parts:
            self._send_with_retries(transport, part)

    def _send_with_retries(self, transport: Transport, batch: list[Payload]) -> None:
        outbox = self.outbox
        attempt = 0
        while True:
            with outbox.lock:
                outbox.counters.batches += 1
            delivery = transport.send(batch)
            if delivery.split:
                half = len(batch) // 2
                self._send_with_retries(transport, batch[:half])
                self._send_with_retries(transport, batch[half:])
                return
            if not delivery.retry:
                if delivery.rejected:  # said before settling, so whoever waits in flush() finds it logged
                    fields = ", ".join(delivery.rejected_fields[:10]) or "-"
                    outbox.log_once(f"rejected:{delivery.status}", "llmops: the ingest API rejected %d event(s) "
                                    "(%s; fields: %s); not retried", delivery.rejected, delivery.reason, fields)
                outbox.settle(sent=delivery.sent, rejected=delivery.rejected)
                return
            attempt += 1
            if attempt > self.config.max_retries:
                log.warning("llmops: gave up on %d event(s) after %d retries (%s)", len(batch),
                            self.config.max_retries, delivery.reason)
                outbox.settle(failed=len(batch))
                return
            with outbox.lock:
                outbox.counters.retries += 1
            delay = self._backoff(attempt, delivery.retry_after_s)
            outbox.log_once(f"retry:{delivery.reason}", "llmops: delivery failed (%s); retrying with backoff",
                            delivery.reason)
            if outbox.deadline is not None:
                delay = min(delay, max(0.0, outbox.deadline - time.monotonic()))
            if outbox.abort.wait(delay) or self._past_deadline():
                outbox.settle(failed=len(batch))
                return

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        c = self.config
        ceiling = min(c.backoff_max_s, c.backoff_base_s * (2 ** (attempt - 1)))
        delay = ceiling / 2 + self._rng.random() * ceiling / 2  # "equal jitter": never zero, never in step
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, max(c.backoff_max_s, 60.0)))
        return delay


def _let_others_run() -> None:
    """Hand the GIL over: an app thread that waits for it gets it now, not after the interpreter's switch
    interval (5 ms) of the sender's pure-Python work."""
    time.sleep(0)
