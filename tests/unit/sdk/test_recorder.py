"""The recorder against a local receiver: batching, retries, backoff, drops, flush/close, never raising."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

import pytest

from llmops_sdk import Recorder, RecorderConfig
from llmops_shared.contract import Interaction
from tests.unit.sdk.receiver import Receiver, Reply, free_port, partial

MakeRecorder = Callable[..., Recorder]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_events_are_batched_filled_in_and_valid(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(receiver.url, batch_size=10, flush_interval_s=30)
    ids = [recorder.record({"name": f"step-{i}", "span_kind": "tool"}) for i in range(25)]
    assert recorder.flush(5)

    assert [len(r.events) for r in receiver.requests] == [10, 10, 5]
    assert all(r.headers["Authorization"] == "Bearer test-key" for r in receiver.requests)
    events = receiver.events()
    assert [e["event_id"] for e in events] == ids  # in order, and record() returned each id
    assert len(set(ids)) == 25
    for event in events:
        assert uuid.UUID(event["event_id"])
        assert datetime.fromisoformat(event["occurred_at"]).tzinfo is not None
        assert event["app_id"] == "sdk-tests" and event["environment"] == "test"
        assert event["trace_id"] and event["span_id"]
        assert "tenant_id" not in event  # the API key says which tenant
        Interaction.model_validate({**event, "tenant_id": "t-1"})  # what the ingest API will check
    assert recorder.stats() == recorder.stats().__class__(recorded=25, sent=25, batches=3)


def test_a_full_batch_goes_out_at_once_and_a_partial_one_after_the_interval(
        receiver: Receiver, make_recorder: MakeRecorder) -> None:
    eager = make_recorder(receiver.url, batch_size=5, flush_interval_s=30)
    for _ in range(5):
        eager.record()
    assert len(receiver.wait_for_events(5, timeout=5)) == 5  # no flush(), no 30 s wait

    lazy = make_recorder(receiver.url, batch_size=100, flush_interval_s=0.1)
    lazy.record()
    assert len(receiver.wait_for_events(6, timeout=5)) == 6


def test_keyword_fields_and_mappings_and_models_are_taken(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(receiver.url)
    recorder.record(name="kw", latency_ms=1.5)
    recorder.record({"name": "dict"}, latency_ms=2.5)
    given = {"name": "mine"}
    recorder.record(given)
    assert given == {"name": "mine"}  # the caller's dict is not touched
    model = Interaction.model_validate({
        "event_id": str(uuid.uuid4()), "occurred_at": "2026-11-24T09:00:00Z", "tenant_id": "t-1",
        "app_id": "other-app", "trace_id": "tr-1", "span_id": "sp-1", "name": "model"})
    recorder.record(model.model_dump(mode="json", exclude={"tenant_id"}))
    assert recorder.flush(5)
    by_name = {e["name"]: e for e in receiver.events()}
    assert by_name["kw"]["latency_ms"] == 1.5 and by_name["dict"]["latency_ms"] == 2.5
    assert by_name["model"]["event_id"] == str(model.event_id)
    assert by_name["model"]["app_id"] == "other-app"  # an event's own fields win over the defaults
    assert by_name["model"]["occurred_at"] == "2026-11-24T09:00:00Z"


def test_503_is_retried_with_the_same_batch(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    receiver.script.extend([Reply(503), Reply(503)])
    recorder = make_recorder(receiver.url)
    for _ in range(7):
        recorder.record()
    assert recorder.flush(5)
    assert [r.status for r in receiver.requests] == [503, 503, 202]
    batches = [[e["event_id"] for e in r.events] for r in receiver.requests]
    assert batches[0] == batches[1] == batches[2]  # the very same events: at-least-once, de-duplicable
    stats = recorder.stats()
    assert (stats.sent, stats.retries, stats.failed, stats.pending) == (7, 2, 0, 0)


def test_retry_after_is_honoured(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    receiver.script.append(Reply(429, headers={"Retry-After": "1"}))
    recorder = make_recorder(receiver.url, backoff_base_s=0.01)  # alone, the backoff would be ~10 ms
    recorder.record()
    assert recorder.flush(5)
    first, second = receiver.requests
    assert first.status == 429 and second.status == 202
    assert second.at - first.at >= 0.95


def test_backoff_grows_and_gives_up_after_max_retries(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    receiver.script.extend([Reply(500)] * 4)
    recorder = make_recorder(receiver.url, max_retries=3, backoff_base_s=0.05, backoff_max_s=1)
    for _ in range(3):
        recorder.record()
    assert recorder.flush(5)
    assert [r.status for r in receiver.requests] == [500, 500, 500, 500]
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    # equal jitter: each wait is between half and all of base * 2^(attempt-1)
    for attempt, gap in enumerate(gaps, start=1):
        assert 0.05 * 2 ** (attempt - 1) / 2 * 0.9 <= gap <= 0.05 * 2 ** (attempt - 1) + 0.5
    stats = recorder.stats()
    assert (stats.failed, stats.sent, stats.retries, stats.pending) == (3, 0, 3, 0)
    recorder.record()  # and the recorder keeps going
    assert recorder.flush(5)
    assert recorder.stats().sent == 1


@pytest.mark.parametrize("status", [400, 401, 403, 422])
def test_client_errors_are_not_retried_but_counted_and_logged_once_without_content(
        status: int, receiver: Receiver, make_recorder: MakeRecorder, caplog: pytest.LogCaptureFixture) -> None:
    receiver.script.extend([Reply(status), Reply(status)])
    recorder = make_recorder(receiver.url, batch_size=2, flush_interval_s=30)
    with caplog.at_level(logging.WARNING, logger="llmops_sdk"):
        for i in range(4):
            recorder.record({"input": f"my secret prompt {i}"})
        assert recorder.flush(5)
    assert [r.status for r in receiver.requests] == [status, status]
    stats = recorder.stats()
    assert (stats.rejected, stats.sent, stats.retries) == (4, 0, 0)
    warnings = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(warnings) == 1 and str(status) in warnings[0].getMessage()
    assert "secret" not in caplog.text


def test_a_422_problem_names_the_fields_it_refused_without_their_values(
        receiver: Receiver, make_recorder: MakeRecorder, caplog: pytest.LogCaptureFixture) -> None:
    receiver.script.append(Reply(422, body={
        "type": "about:blank", "title": "Unprocessable Content", "status": 422,
        "detail": "no event accepted, 2 rejected: interactions.0.usage.input_tokens: ...",
        "errors": [{"loc": ["body", "interactions", 0, "usage", "input_tokens"], "msg": "negative",
                    "type": "value_error"},
                   {"loc": ["body", "interactions", 1], "msg": "an event must be a JSON object",
                    "type": "value_error"}]}))
    recorder = make_recorder(receiver.url, batch_size=2, flush_interval_s=30)
    with caplog.at_level(logging.WARNING, logger="llmops_sdk"):
        recorder.record({"input": "my secret prompt"})
        recorder.record()
        assert recorder.flush(5)
    assert (recorder.stats().rejected, recorder.stats().sent) == (2, 0)
    assert "no event accepted" in caplog.text and "(event), usage.input_tokens" in caplog.text
    assert "secret" not in caplog.text


def test_207_counts_rejections_per_event(receiver: Receiver, make_recorder: MakeRecorder,
                                         caplog: pytest.LogCaptureFixture) -> None:
    receiver.script.append(partial([1, 3]))
    recorder = make_recorder(receiver.url, batch_size=5, flush_interval_s=30)
    with caplog.at_level(logging.WARNING, logger="llmops_sdk"):
        for _ in range(5):
            recorder.record()
        assert recorder.flush(5)
    stats = recorder.stats()
    assert (stats.sent, stats.rejected, stats.retries) == (3, 2, 0)
    assert "bogus" in caplog.text  # the field name helps; values are never logged


def test_a_batch_too_large_for_the_server_is_split(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    receiver.script.extend([Reply(413), Reply(413)])  # the whole batch, then its first half
    recorder = make_recorder(receiver.url, batch_size=8, flush_interval_s=30)
    for _ in range(8):
        recorder.record()
    assert recorder.flush(5)
    assert [(r.status, len(r.events)) for r in receiver.requests] == [(413, 8), (413, 4), (202, 2), (202, 2),
                                                                       (202, 4)]
    assert recorder.stats().sent == 8


def test_no_request_carries_more_than_max_batch_bytes(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    limit = 8_000
    recorder = make_recorder(receiver.url, batch_size=100, max_batch_bytes=limit, flush_interval_s=30)
    ids = [recorder.record(name=f"e{i}", output="x" * (300 + 37 * i)) for i in range(40)]
    assert recorder.flush(5)
    sizes = [int(r.headers["Content-Length"]) for r in receiver.requests]
    assert len(sizes) > 1 and max(sizes) <= limit, sizes
    assert [e["event_id"] for e in receiver.events()] == ids  # all of them, in order, none twice
    # Packed greedily: the first event of each request would not have fitted in the request before it.
    for before, after in zip(receiver.requests, receiver.requests[1:], strict=False):
        first = json.dumps(after.events[0], ensure_ascii=False, separators=(",", ":")).encode()
        assert int(before.headers["Content-Length"]) + 1 + len(first) > limit


def test_a_413_for_a_single_event_is_a_rejection_not_retried(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    receiver.script.append(Reply(413))
    recorder = make_recorder(receiver.url, batch_size=1, flush_interval_s=30)
    recorder.record(name="too-big")
    assert recorder.flush(5)
    recorder.record(name="fine")
    assert recorder.flush(5)
    assert [(r.status, [e["name"] for e in r.events]) for r in receiver.requests] == [(413, ["too-big"]),
                                                                                     (202, ["fine"])]
    stats = recorder.stats()
    assert (stats.sent, stats.rejected, stats.retries, stats.failed) == (1, 1, 0, 0)


def test_ingest_down_at_first_then_up(make_recorder: MakeRecorder) -> None:
    port = free_port()
    recorder = make_recorder(f"http://127.0.0.1:{port}", backoff_max_s=0.2)
    ids = {recorder.record() for _ in range(20)}
    assert wait_until(lambda: recorder.stats().retries >= 2)
    assert recorder.stats().pending == 20
    with Receiver(port) as receiver:
        assert recorder.flush(5)
        assert {e["event_id"] for e in receiver.events()} == ids
    stats = recorder.stats()
    assert (stats.sent, stats.failed, stats.pending) == (20, 0, 0)


def test_ingest_going_down_and_back_up_loses_nothing(make_recorder: MakeRecorder) -> None:
    port = free_port()
    recorder = make_recorder(f"http://127.0.0.1:{port}", backoff_max_s=0.2)
    with Receiver(port) as first:
        recorder.record()
        assert recorder.flush(5)
        assert len(first.events()) == 1
    recorder.record()  # the kept-alive connection is now dead, and nobody listens
    assert wait_until(lambda: recorder.stats().retries >= 1)
    with Receiver(port) as second:
        assert recorder.flush(5)
        assert len(second.events()) == 1


def test_slow_ingest_times_out_is_retried_and_never_blocks_the_app(
        receiver: Receiver, make_recorder: MakeRecorder) -> None:
    receiver.script.append(Reply(delay_s=2.5))
    recorder = make_recorder(receiver.url, request_timeout_s=2.0, batch_size=5)
    first = [recorder.record() for _ in range(5)]
    receiver.wait_for_requests(1)
    # The sender is stuck waiting for the slow answer: recording goes on meanwhile. Every record() returns
    # while that first attempt is still waiting (no retry yet), with no clock in the assertion.
    later = [recorder.record() for _ in range(1_000)]
    assert (recorder.stats().retries, recorder.stats().sent) == (0, 0)
    assert recorder.flush(10)
    delivered = [e["event_id"] for e in receiver.events()]
    assert set(delivered) == set(first + later)
    # the timed-out request did reach the server: its events came twice, with the same ids (the
    # consumers de-duplicate on event_id)
    assert [e["event_id"] for e in receiver.requests[0].events] == first
    assert all(delivered.count(event_id) == 2 for event_id in first)
    assert recorder.stats().retries >= 1 and recorder.stats().failed == 0


def test_buffer_full_drops_are_counted_exactly(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    # batch_size above max_buffer and a long interval: the sender takes nothing until flush()
    recorder = make_recorder(receiver.url, max_buffer=50, batch_size=100, flush_interval_s=30)
    results = [recorder.record() for _ in range(80)]
    assert sum(r is not None for r in results) == 50
    stats = recorder.stats()
    assert (stats.recorded, stats.dropped, stats.pending) == (50, 30, 50)
    assert recorder.flush(5)
    assert len(receiver.events()) == 50
    assert recorder.stats().sent == 50


def test_drops_are_exact_with_many_threads(make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(f"http://127.0.0.1:{free_port()}", max_buffer=500, batch_size=1000,
                             flush_interval_s=30)
    barrier = threading.Barrier(4)

    def app_thread() -> None:
        barrier.wait()
        for _ in range(1_000):
            recorder.record()

    threads = [threading.Thread(target=app_thread) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = recorder.stats()
    assert (stats.recorded, stats.dropped) == (500, 3_500)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no")


class BadMapping(Mapping[str, object]):
    def __getitem__(self, key: str) -> object:
        raise RuntimeError("broken mapping")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("broken mapping")

    def __len__(self) -> int:
        return 1


def test_record_never_raises_and_counts_garbage(receiver: Receiver, make_recorder: MakeRecorder,
                                                caplog: pytest.LogCaptureFixture) -> None:
    recorder = make_recorder(receiver.url)
    garbage: list[object] = [42, "text", b"bytes", ["a", "list"], Unprintable(), BadMapping()]
    for item in garbage:
        assert recorder.record(item) is None
    # accepted into the buffer, but cannot become JSON (or is too large): invalid when the sender meets it
    unsendable = [{"metadata": {"x": Unprintable()}}, {"latency_ms": float("nan")},
                  {"output": "x" * 1_000_001}, {"metadata": {"self": None}}]
    unsendable[3]["metadata"]["self"] = unsendable[3]  # a cycle
    for event in unsendable:
        recorder.record(event)
    recorder.record({"name": "fine"})
    assert recorder.flush(5)
    stats = recorder.stats()
    assert stats.invalid == len(garbage) + len(unsendable)
    assert (stats.recorded, stats.sent, stats.pending) == (len(unsendable) + 1, 1, 0)
    assert [e["name"] for e in receiver.events()] == ["fine"]
    assert "xxxxxxxx" not in caplog.text


def test_values_json_cannot_hold_are_converted(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(receiver.url)
    when = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    recorder.record(occurred_at=when, metadata={"ids": {uuid.UUID(int=1)}, "at": datetime(2026, 1, 1)})
    assert recorder.flush(5)
    (event,) = receiver.events()
    assert event["occurred_at"] == "2026-11-24T09:00:00+00:00"
    assert event["metadata"] == {"ids": ["00000000-0000-0000-0000-000000000001"], "at": "2026-01-01T00:00:00+00:00"}


def test_flush_and_close_keep_to_their_timeouts_when_ingest_is_down(make_recorder: MakeRecorder) -> None:
    # Retries that outlast both timeouts whatever the machine's speed (with the fixture's 8 quick retries
    # the sender sometimes gave up before `close` timed out, and `close` then rightly said True).
    recorder = make_recorder(f"http://127.0.0.1:{free_port()}", max_retries=10_000)
    for _ in range(10):
        recorder.record()
    started = time.monotonic()
    assert recorder.flush(timeout=0.3) is False
    # it waited for its timeout, and returned rather than retry for ever (a bound generous for a busy machine)
    assert 0.2 <= time.monotonic() - started < 5
    started = time.monotonic()
    assert recorder.close(timeout=0.3) is False
    assert time.monotonic() - started < 5
    assert wait_until(lambda: recorder.stats().pending == 0)  # given up on, and said so
    stats = recorder.stats()
    assert (stats.failed, stats.sent) == (10, 0)
    assert recorder.record() is None  # closed: dropped and counted
    assert recorder.stats().dropped == 1


def test_close_delivers_what_is_buffered_and_stops_the_thread(receiver: Receiver,
                                                              make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(receiver.url, flush_interval_s=30)
    for _ in range(7):
        recorder.record()
    assert recorder.close(timeout=5)
    assert len(receiver.events()) == 7
    assert not any(t.name == "llmops-sdk-sender" and t.is_alive() for t in threading.enumerate()
                   if getattr(recorder, "_thread", None) is t)
    assert recorder.close(timeout=1)  # twice is fine


def test_configuration_errors_are_raised_at_once() -> None:
    with pytest.raises(ValueError, match="app_id"):
        RecorderConfig(app_id="")
    with pytest.raises(ValueError, match="api_key"):
        Recorder(app_id="a", endpoint="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="tenant_id"):
        Recorder(app_id="a", transport="kafka", kafka_bootstrap="127.0.0.1:9092")
    with pytest.raises(ValueError, match="batch_size"):
        Recorder(app_id="a", endpoint="http://x", api_key="k", batch_size=5_000)


def test_a_forked_child_gets_a_fresh_buffer_and_thread(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(receiver.url, flush_interval_s=30)
    parents = {recorder.record() for _ in range(2)}  # pending in the parent when it forks
    pid = os.fork()
    if pid == 0:  # the child: record its own events, deliver them, and leave without pytest's teardown
        ok = recorder.stats().recorded == 0
        children = [recorder.record(name="child") for _ in range(3)]
        ok = ok and recorder.flush(5) and recorder.stats().sent == 3 and None not in children
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert recorder.flush(5)
    names = [e.get("name") for e in receiver.events()]
    assert names.count("child") == 3 and len(names) == 5
    assert parents <= {e["event_id"] for e in receiver.events()}
