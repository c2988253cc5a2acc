"""Trace context through `contextvars`: nested spans, asyncio tasks, threads, and the span events."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import llmops_sdk
from llmops_sdk import Recorder, current, span, trace
from llmops_shared.contract import Interaction
from tests.unit.sdk.receiver import Receiver

MakeRecorder = Callable[..., Recorder]


def delivered(recorder: Recorder, receiver: Receiver) -> dict[str, dict[str, Any]]:
    """What arrived, by `name`; every event valid under the contract."""
    assert recorder.flush(5)
    events = receiver.events()
    for event in events:
        Interaction.model_validate({**event, "tenant_id": "t-1"})
    return {e["name"]: e for e in events}


def test_nested_spans_form_a_tree_in_one_trace(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(receiver.url)
    assert current() is None
    with trace(session_id="sess-1", user_id="user-1") as root:
        with span("agent-turn", kind="agent", recorder=recorder) as outer:
            recorder.record(name="llm-call-1")
            with span("lookup", kind="tool", recorder=recorder) as inner:
                recorder.record(name="llm-call-2")
                assert current() == inner.context
            assert current() == outer.context
        assert current() == root.context
    assert current() is None

    events = delivered(recorder, receiver)
    assert {e["trace_id"] for e in events.values()} == {root.trace_id}
    assert "parent_span_id" not in events["agent-turn"]
    assert events["agent-turn"]["span_id"] == outer.span_id and events["agent-turn"]["span_kind"] == "agent"
    assert events["lookup"]["parent_span_id"] == outer.span_id and events["lookup"]["span_kind"] == "tool"
    assert events["llm-call-1"]["parent_span_id"] == outer.span_id
    assert events["llm-call-2"]["parent_span_id"] == inner.span_id
    assert all(e["session_id"] == "sess-1" and e["user_id"] == "user-1" for e in events.values())
    assert events["agent-turn"]["latency_ms"] >= events["lookup"]["latency_ms"] >= 0
    assert all(e["status"] == "ok" for e in events.values() if e["name"] in {"agent-turn", "lookup"})


def test_a_span_outside_a_trace_starts_one_and_trace_takes_a_given_id(
        receiver: Receiver, make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(receiver.url)
    with span("alone", recorder=recorder) as alone:
        pass
    with trace("incoming-trace-id"), span("given", recorder=recorder):
        recorder.record(name="inside")
    events = delivered(recorder, receiver)
    assert events["alone"]["trace_id"] == alone.trace_id and alone.trace_id != "incoming-trace-id"
    assert events["given"]["trace_id"] == events["inside"]["trace_id"] == "incoming-trace-id"
    assert events["inside"]["parent_span_id"] == events["given"]["span_id"]


def test_a_failing_span_records_the_error_and_reraises_it_unchanged(
        receiver: Receiver, make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(receiver.url)
    error = KeyError("missing-document")
    with pytest.raises(KeyError) as raised, span("retrieve", kind="retriever", recorder=recorder) as step:
        step.input = "which document?"
        raise error
    assert raised.value is error
    assert current() is None
    event = delivered(recorder, receiver)["retrieve"]
    assert event["status"] == "error" and event["error"]["type"] == "KeyError"
    assert event["input"] == "which document?" and event["span_kind"] == "retriever"


def test_what_a_span_is_given_goes_into_its_event(receiver: Receiver, make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(receiver.url)
    with span("summarise", recorder=recorder, metadata={"step": 1}, tags=["nightly"]) as step:
        step.output = "a summary"
        step.metadata["chars"] = 9
    event = delivered(recorder, receiver)["summarise"]
    assert event["output"] == "a summary" and event["metadata"] == {"step": 1, "chars": 9}
    assert event["tags"] == ["nightly"] and event["span_kind"] == "chain"


async def test_concurrent_asyncio_tasks_are_siblings_not_each_others_parents(
        receiver: Receiver, make_recorder: MakeRecorder) -> None:
    recorder = make_recorder(receiver.url)

    async def branch(name: str) -> str | None:
        async with span(name, kind="tool", recorder=recorder) as mine:
            await asyncio.sleep(0.01)  # the other branch runs meanwhile
            recorder.record(name=f"{name}-llm")
            await asyncio.sleep(0.01)
            assert current() == mine.context
        return mine.span_id

    async with trace() as root, span("fan-out", recorder=recorder) as parent:
        ids = await asyncio.gather(branch("a"), branch("b"))
        assert current() == parent.context
    events = await asyncio.to_thread(delivered, recorder, receiver)
    assert {e["trace_id"] for e in events.values()} == {root.trace_id}
    assert events["a"]["parent_span_id"] == events["b"]["parent_span_id"] == parent.span_id
    assert events["a-llm"]["parent_span_id"] == ids[0]
    assert events["b-llm"]["parent_span_id"] == ids[1]


def test_threads_start_with_no_context_unless_it_is_handed_over() -> None:
    seen: dict[str, object] = {}
    with trace() as root:
        plain = threading.Thread(target=lambda: seen.update(plain=current()))
        context = contextvars.copy_context()
        handed = threading.Thread(target=lambda: context.run(lambda: seen.update(handed=current())))
        for t in (plain, handed):
            t.start()
            t.join()
    assert seen["plain"] is None
    assert seen["handed"] == root.context


def test_exiting_in_another_context_restores_the_outer_one() -> None:
    # A span entered in one context and exited in another (as a generator resumed elsewhere does)
    # must not raise, and must leave the context as it found it.
    step = span("odd")
    outer = contextvars.copy_context()
    outer.run(step.__enter__)
    step.__exit__(None, None, None)
    assert current() is None


@pytest.fixture
def default_recorder(receiver: Receiver) -> Iterator[Recorder]:
    recorder = llmops_sdk.configure(endpoint=receiver.url, api_key="k", app_id="default-app",
                                    flush_interval_s=0.05)
    yield recorder
    llmops_sdk.close(timeout=1)


def test_the_module_level_default_recorder(receiver: Receiver, default_recorder: Recorder) -> None:
    with span("uses-default"):
        llmops_sdk.record(name="via-module")
    assert llmops_sdk.flush(5)
    events = {e["name"]: e for e in receiver.events()}
    assert events["via-module"]["parent_span_id"] == events["uses-default"]["span_id"]
    assert events["via-module"]["app_id"] == "default-app"


def test_without_configuration_the_module_level_calls_do_nothing() -> None:
    assert llmops_sdk.default_recorder() is None
    assert llmops_sdk.record(name="nowhere") is None
    with span("nowhere"):
        pass
    assert llmops_sdk.flush(0.1) and llmops_sdk.close(0.1)


def test_configure_reads_what_it_is_not_given_from_the_environment_when_called(
        receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_ENDPOINT", receiver.url)  # set after the import: read by configure() itself
    monkeypatch.setenv("LLMOPS_API_KEY", "key-from-env")
    monkeypatch.setenv("LLMOPS_APP_ID", "app-from-env")
    monkeypatch.setenv("LLMOPS_ENVIRONMENT", "staging")
    try:
        llmops_sdk.configure(environment="given", flush_interval_s=0.05)  # a given option wins
        llmops_sdk.record(name="from-env")
        assert llmops_sdk.flush(5)
    finally:
        llmops_sdk.close(timeout=1)
    [request] = receiver.requests
    assert request.headers["Authorization"] == "Bearer key-from-env"
    [event] = request.events
    assert (event["name"], event["app_id"], event["environment"]) == ("from-env", "app-from-env", "given")

    monkeypatch.delenv("LLMOPS_APP_ID")
    with pytest.raises(ValueError, match="app_id"):  # nothing to read: refused at once
        llmops_sdk.configure()
    assert llmops_sdk.default_recorder() is None
