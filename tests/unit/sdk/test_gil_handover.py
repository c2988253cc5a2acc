"""What keeps `record()` quick while the sender thread works: the app's thread does not give the GIL away on
every call (event ids come from a pool of random bytes, not one `os.urandom` system call each, which
releases the GIL), and the sender hands the GIL over every few events it serializes and every few it
takes from the buffer, rather than holding the buffer's lock while it takes a whole batch."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest

from llmops_sdk import Recorder
from llmops_sdk import context as sdk_context
from llmops_sdk import sender as sdk_sender
from llmops_sdk.transport import Delivery, Payload


class Sink:
    """A transport that takes everything at once (no network)."""

    def __init__(self) -> None:
        self.events = 0

    def send(self, batch: list[Payload]) -> Delivery:
        self.events += len(batch)
        return Delivery(sent=len(batch))

    def close(self) -> None:
        return None


def test_event_ids_are_random_version_4_uuids_and_unique() -> None:
    ids = [sdk_context.new_event_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids[:500]]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(sdk_context.new_trace_id()) == 32 and len(sdk_context.new_span_id()) == 16


def test_recording_does_not_make_a_system_call_for_every_event(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = os.urandom

    def counting(n: int) -> bytes:
        nonlocal calls
        calls += 1
        return real(n)

    monkeypatch.setattr(os, "urandom", counting)
    sink = Sink()
    recorder = Recorder(app_id="app", custom_transport=sink, max_buffer=10_000)
    try:
        for _ in range(2_000):
            recorder.record({"name": "answer", "model": "gpt-4o-mini"})
        assert recorder.flush(10)
    finally:
        recorder.close(5)
    assert sink.events == 2_000
    # 2,000 event ids, trace ids and span ids: 80 KB of randomness, drawn 4 KB at a time per thread.
    assert calls <= 2 * (2_000 * 40 // 4096 + 1), calls


def test_a_forked_child_never_reuses_its_parents_random_bytes() -> None:
    sdk_context.new_event_id()  # the pool now holds bytes the parent will use next
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, sdk_context.new_event_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    assert child != sdk_context.new_event_id()


def test_the_sender_hands_the_gil_over_while_serializing_and_taking(monkeypatch: pytest.MonkeyPatch) -> None:
    handovers = 0
    real_sleep = time.sleep

    def counting(seconds: float) -> Any:
        nonlocal handovers
        if seconds == 0:
            handovers += 1
        return real_sleep(seconds)

    sink = Sink()
    events = 64
    monkeypatch.setattr(sdk_sender.time, "sleep", counting)
    recorder = Recorder(app_id="app", custom_transport=sink, max_buffer=1_000, batch_size=events)
    try:
        for _ in range(events):
            recorder.record({"name": "answer"})
        assert recorder.flush(10)
    finally:
        recorder.close(5)
        monkeypatch.setattr(sdk_sender.time, "sleep", real_sleep)
    assert sink.events == events
    # one after every 8 events serialized, and one after every 16 taken from the buffer (under its lock)
    assert handovers >= events // sdk_sender._YIELD_EVERY + events // sdk_sender._TAKE_CHUNK, handovers
