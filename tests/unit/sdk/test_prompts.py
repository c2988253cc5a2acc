"""`get_prompt`: the cache (fresh, stale-while-revalidate, a down API, the fallback), experiments' variants
assigned in the SDK, and the prompt reference on the events recorded while a prompt is in use. The API is a
function here (`fetch=`) and the time a counter (`clock=`); tests/integration/prompts has the real API."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import openai
import pytest

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_sdk import Prompt, PromptClient, PromptUnavailable, Recorder, instrument_openai, trace
from llmops_sdk.prompts import assign
from tests.unit.sdk.receiver import Receiver


def answer(version: int, template: str = "Hi {{ name }}", **extra: Any) -> dict[str, Any]:
    return {"name": "greet", "type": "text", "version": version, "template": template, "config": {"model": "m"},
            "labels": ["production"], "experiment": None, **extra}


class FakeApi:
    """Answers with `current`, or raises while `down`; counts calls; `gate` holds a fetch until set."""

    def __init__(self) -> None:
        self.current: dict[str, Any] | None = answer(1)
        self.down = False
        self.calls: list[Mapping[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, name: str, query: Mapping[str, str]) -> dict[str, Any] | None:
        self.calls.append(dict(query))
        self.gate.wait(5)
        if self.down:
            raise ConnectionRefusedError("api down")
        return self.current


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(api: FakeApi, clock: Clock, **options: Any) -> PromptClient:
    return PromptClient("http://prompts.invalid", "key", fetch=api, clock=clock, ttl_s=60, retry_s=5, **options)


def test_fresh_answers_come_from_the_cache_and_stale_ones_are_served_while_refreshed() -> None:
    api, clock = FakeApi(), Clock()
    prompts = client(api, clock)
    first = prompts.get_prompt("greet")
    assert (first.version, first.is_fallback, api.calls) == (1, False, [{"label": "production"}])
    api.current = answer(2)
    clock.now += 59
    assert prompts.get_prompt("greet").version == 1 and len(api.calls) == 1  # fresh: no request
    clock.now += 2
    api.gate.clear()  # the refresh hangs: the app is not held
    assert prompts.get_prompt("greet").version == 1
    assert prompts.get_prompt("greet").version == 1
    api.gate.set()
    assert prompts.wait_idle()
    assert len(api.calls) == 2  # one refresh in flight at a time
    assert prompts.get_prompt("greet").version == 2


def test_with_the_api_down_the_cached_prompt_is_served_and_never_raises() -> None:
    api, clock = FakeApi(), Clock()
    prompts = client(api, clock)
    prompts.get_prompt("greet")
    api.down = True
    for _ in range(3):
        clock.now += 120
        assert prompts.get_prompt("greet", fallback="unused").version == 1
        assert prompts.wait_idle()
    assert prompts.get_prompt("greet").version == 1  # without a fallback too: the cache answers


def test_with_nothing_cached_the_fallback_is_served_and_the_api_is_not_asked_in_the_apps_thread_again() -> None:
    api, clock = FakeApi(), Clock()
    api.down = True
    prompts = client(api, clock)
    served = prompts.get_prompt("greet", fallback="Hello {{ name }}")
    with trace():
        assert (served.is_fallback, served.version, served.compile(name="Ada")) == (True, None, "Hello Ada")
    assert len(api.calls) == 1
    assert prompts.get_prompt("greet", fallback="Hello {{ name }}").is_fallback and len(api.calls) == 1
    with pytest.raises(PromptUnavailable):
        prompts.get_prompt("greet")  # nothing cached and no fallback: the one case that raises
    api.down = False
    api.gate.clear()
    clock.now += 6  # past retry_s: retried in the background, the fallback served meanwhile
    chat = [{"role": "user", "content": "{{ q }}"}]
    assert prompts.get_prompt("greet", fallback=chat).type == "chat"
    api.gate.set()
    assert prompts.wait_idle()
    assert prompts.get_prompt("greet", fallback="x").version == 1


def test_a_running_experiment_assigns_units_deterministically_from_the_trace_context() -> None:
    api, clock = FakeApi(), Clock()
    variants = [{"name": "a", "weight": 1, "prompt": answer(1)}, {"name": "b", "weight": 1, "prompt": answer(2)}]
    api.current = answer(1, experiment={"id": "exp", "unit": "user", "holdout": 0.0, "variants": variants})
    prompts = client(api, clock)
    assert prompts.get_prompt("greet").variant is None  # no unit known: the label's version, outside it
    for user in ("u1", "u2", "u3", "u4"):
        with trace(user_id=user):
            served = prompts.get_prompt("greet")
        expected = assign("exp", user, [("a", 1.0), ("b", 1.0)])
        assert (served.variant, served.version, served.experiment_id) == (expected, {"a": 1, "b": 2}[expected], "exp")
        assert prompts.get_prompt("greet", unit_id=user).variant == expected
    assert len(api.calls) == 1


@pytest.fixture(scope="module")
def llm() -> Any:
    with FakeLLMServer() as server:
        yield server


def test_events_recorded_while_a_prompt_is_in_use_carry_its_reference(
        llm: FakeLLMServer, receiver: Receiver, make_recorder: Callable[..., Recorder]) -> None:
    recorder = make_recorder(receiver.url)
    openai_client = instrument_openai(openai.OpenAI(base_url=llm.url, api_key="sk", max_retries=0), recorder)
    prompt = Prompt(name="greet", template="Hi {{ name }}", version=3, variant="b")

    def ask() -> None:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    def in_a_thread() -> None:
        with prompt.use():
            ask()
            recorder.record(name="step", span_kind="tool", prompt={"name": "other"})  # an explicit one stays

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join()
    ask()  # outside: no reference
    assert recorder.flush(5)
    refs = [event.get("prompt") for event in receiver.events()]
    assert refs == [{"name": "greet", "version": "3", "variant": "b"}, {"name": "other"}, None]

    with trace():
        prompt.compile(name="Ada")  # compile() makes it the prompt in use until the trace ends
        ask()
    ask()
    assert recorder.flush(5)
    assert [e.get("prompt") for e in receiver.events()[-2:]] == [{"name": "greet", "version": "3", "variant": "b"},
                                                                 None]
