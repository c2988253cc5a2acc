"""The judge against the local OpenAI-compatible test server: exact calls for every kind of answer.

No Kafka, Postgres or Redis here: only the fake LLM endpoint, over real HTTP, through the openai client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_evaluator.config import JudgeSpec
from llmops_evaluator.credentials import CREDENTIALS, CredentialUnavailable, JudgeCredentials
from llmops_evaluator.judge_client import EndpointCapabilities, JudgeClient, JudgeStatus
from llmops_evaluator.retry import RetryPolicy
from llmops_evaluator.rubrics import BUILTIN
from llmops_shared.contract import Interaction
from llmops_shared.egress import NOT_ALLOWED, EgressPolicy
from tests.integration.evaluator.evaluator_support import SlowDrip, eventually
from tests.support.events import make_event

RUBRIC = BUILTIN["relevance@1"]
GOOD = {"reasoning": "It answers the question.", "score": 4}
FAST = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, retry_after_cap_s=1.0,
                   attempt_timeout_s=5.0, deadline_s=20.0)


class Sleeps:
    """asyncio.sleep that remembers what it was asked to wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(seconds)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(poll_interval_s=0.02) as fake:
        fake.config.json_reply = dict(GOOD)
        yield fake


def judge_for(server: FakeLLMServer, *, policy: RetryPolicy = FAST, max_concurrency: int = 4,
              capabilities: EndpointCapabilities | None = None, sleep: Sleeps | None = None) -> JudgeClient:
    return JudgeClient(model="judge-model", base_url=server.url, api_key="test-key", egress=None, policy=policy,
                       max_concurrency=max_concurrency, capabilities=capabilities,
                       sleep=sleep or Sleeps(), rng=lambda: 0.0)


def messages(n: int = 0) -> list[dict[str, str]]:
    event = make_event(output=f"It ships today (answer {n}).")
    return RUBRIC.render(Interaction.model_validate({**event, "tenant_id": "acme"}))


def statuses(server: FakeLLMServer) -> dict[int, int]:
    return dict(server.stats.by_status)


# -- success ----------------------------------------------------------------------------------------


async def test_a_good_answer_is_one_call_with_structured_output(server: FakeLLMServer) -> None:
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert result.status is JudgeStatus.OK
    assert (result.score, result.raw_score, result.label) == (0.75, 4, "mostly_relevant")
    assert result.reasoning == "It answers the question."
    assert (result.attempts, server.stats.requests, statuses(server)) == (1, 1, {200: 1})
    assert result.input_tokens > 0 and result.output_tokens > 0
    body = server.stats.bodies[0]
    assert body["response_format"] == RUBRIC.json_schema_format()
    assert body["model"] == "judge-model" and body["temperature"] == 0.0


# -- retried ----------------------------------------------------------------------------------------


async def test_429_with_retry_after_is_retried_after_the_wait_it_asks(server: FakeLLMServer) -> None:
    server.config.retry_after_s = 0.2
    server.config.script.extend(["429", "429"])
    sleeps = Sleeps()
    started = time.monotonic()
    async with judge_for(server, sleep=sleeps) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert result.status is JudgeStatus.OK
    assert (result.attempts, server.stats.requests, statuses(server)) == (3, 3, {429: 2, 200: 1})
    assert sleeps.delays == [0.2, 0.2]
    assert time.monotonic() - started >= 0.4


async def test_429_until_the_attempts_run_out(server: FakeLLMServer) -> None:
    server.config.retry_after_s = 0.01
    server.config.script.extend(["429"] * 10)
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert result.status is JudgeStatus.ERROR and result.error_type == "http_429"
    assert result.error is not None and "gave up after 4 failed attempts" in result.error
    assert (result.attempts, server.stats.requests, statuses(server)) == (4, 4, {429: 4})
    assert result.score is None


async def test_500_is_retried_with_backoff(server: FakeLLMServer) -> None:
    server.config.script.extend(["500", "500"])
    sleeps = Sleeps()
    async with JudgeClient(model="judge-model", base_url=server.url, api_key="k", egress=None, policy=FAST,
                           sleep=sleeps,
                           rng=lambda: 1.0) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert result.status is JudgeStatus.OK
    assert (result.attempts, statuses(server)) == (3, {500: 2, 200: 1})
    assert sleeps.delays == [0.01, 0.02]  # full jitter at its ceiling: 0.01 x 2^(n-1)


async def test_500_until_the_attempts_run_out(server: FakeLLMServer) -> None:
    server.config.script.extend(["500"] * 10)
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert (result.status, result.error_type) == (JudgeStatus.ERROR, "http_500")
    assert (result.attempts, statuses(server)) == (4, {500: 4})


@pytest.mark.parametrize("mode", ["408", "409", "502", "503"])
async def test_other_transient_statuses_are_retried(server: FakeLLMServer, mode: str) -> None:
    server.config.script.append(mode)
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert result.status is JudgeStatus.OK
    assert (result.attempts, statuses(server)) == (2, {int(mode): 1, 200: 1})


async def test_a_slow_endpoint_times_out_per_attempt(server: FakeLLMServer) -> None:
    # Attempts of 0.3 s against a 1.5 s server: long enough that each request reaches the server (so it
    # counts them) even on a busy machine, short enough to tell a per-attempt timeout from none.
    server.config.latency_ms = 1500
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.01, attempt_timeout_s=0.3,
                         deadline_s=20.0)
    started = time.monotonic()
    async with judge_for(server, policy=policy) as judge:
        result = await judge.judge(RUBRIC, messages())
    elapsed = time.monotonic() - started
    assert (result.status, result.error_type, result.attempts) == (JudgeStatus.ERROR, "timeout", 3)
    assert server.stats.requests == 3
    assert 0.9 <= elapsed < 3.0  # three attempts of 0.3 s, not three of 1.5 s


async def test_the_total_deadline_stops_the_retries(server: FakeLLMServer) -> None:
    server.config.latency_ms = 400
    policy = RetryPolicy(max_attempts=100, base_delay_s=0.01, max_delay_s=0.01, attempt_timeout_s=0.1,
                         deadline_s=0.35)
    started = time.monotonic()
    async with judge_for(server, policy=policy) as judge:
        result = await judge.judge(RUBRIC, messages())
    elapsed = time.monotonic() - started
    assert result.status is JudgeStatus.ERROR and result.error_type in {"timeout", "deadline"}
    assert elapsed < 3.0  # the 0.35 s deadline, with slack for a busy machine; without it: 100 x 0.1 s
    assert 1 <= result.attempts <= 4 and server.stats.requests == result.attempts  # at most 0.35 / 0.1 + 1


# -- never retried ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["400", "401", "403", "404"])
async def test_client_errors_are_one_call(server: FakeLLMServer, mode: str) -> None:
    server.config.script.extend([mode, "ok"])
    sleeps = Sleeps()
    async with judge_for(server, sleep=sleeps) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert (result.status, result.error_type) == (JudgeStatus.ERROR, f"http_{mode}")
    assert (result.attempts, server.stats.requests, statuses(server)) == (1, 1, {int(mode): 1})
    assert sleeps.delays == []


async def test_an_exhausted_quota_is_one_call(server: FakeLLMServer) -> None:
    server.config.script.extend(["quota", "ok"])
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert (result.status, result.error_type) == (JudgeStatus.ERROR, "quota_exhausted")
    assert (result.attempts, statuses(server)) == (1, {429: 1})


# -- malformed answers: one repair, then unparseable -------------------------------------------------


async def test_a_malformed_response_body_is_asked_again_once(server: FakeLLMServer) -> None:
    server.config.script.append("malformed")
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert result.status is JudgeStatus.OK
    assert (result.attempts, server.stats.requests) == (2, 2)


async def test_a_malformed_response_body_twice_is_unparseable(server: FakeLLMServer) -> None:
    server.config.script.extend(["malformed", "malformed", "ok"])
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert (result.status, result.error_type) == (JudgeStatus.UNPARSEABLE, "unparseable")
    assert (result.attempts, server.stats.requests) == (2, 2)


async def test_a_non_json_answer_is_repaired_by_sending_it_back(server: FakeLLMServer) -> None:
    server.config.script.append("bad_content")
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert result.status is JudgeStatus.OK and result.raw_score == 4
    assert (result.attempts, server.stats.requests) == (2, 2)
    repair = server.stats.bodies[1]["messages"]
    assert repair[:2] == messages()
    assert repair[2] == {"role": "assistant", "content": "this is not JSON at all"}
    assert repair[3]["role"] == "user" and "not JSON" in repair[3]["content"]


async def test_a_non_json_answer_twice_is_unparseable(server: FakeLLMServer) -> None:
    server.config.script.extend(["bad_content", "bad_content", "ok"])
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert (result.status, result.attempts, server.stats.requests) == (JudgeStatus.UNPARSEABLE, 2, 2)
    assert result.error is not None and "not JSON" in result.error
    assert result.score is None and result.reasoning is None
    assert result.input_tokens > 0  # both answers were paid for


async def test_an_answer_off_the_scale_is_unparseable_after_one_repair(server: FakeLLMServer) -> None:
    server.config.json_reply = {"reasoning": "great", "score": 9}
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert (result.status, result.attempts, server.stats.requests) == (JudgeStatus.UNPARSEABLE, 2, 2)
    assert result.error is not None and "score must be an integer from 1 to 5" in result.error


# -- replies that are not what they should be: one row for that judgment, never an exception --------------


async def test_negative_usage_counts_are_dropped_and_the_judgment_is_an_error(server: FakeLLMServer) -> None:
    server.config.script.extend(["negative_usage", "ok"])
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert (result.status, result.error_type) == (JudgeStatus.ERROR, "invalid_usage")
    assert result.error is not None and "usage.prompt_tokens is -5" in result.error and "dropped" in result.error
    assert (result.input_tokens, result.output_tokens) == (0, 0)  # dropped, not clamped
    assert (result.attempts, server.stats.requests) == (1, 1)  # an endpoint that miscounts is not asked again
    assert result.score is None


async def test_huge_usage_counts_are_dropped_and_the_valid_counts_of_earlier_calls_kept(
        server: FakeLLMServer) -> None:
    server.config.script.extend(["no_choices", "huge_usage", "ok"])
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert (result.status, result.error_type) == (JudgeStatus.ERROR, "invalid_usage")
    assert result.error is not None and "usage.completion_tokens is 1000000000000" in result.error
    assert (result.attempts, server.stats.requests) == (2, 2)
    assert result.input_tokens > 0 and result.output_tokens > 0  # the first call's counts, which were valid


@pytest.mark.parametrize(("mode", "problem"), [
    ("no_choices", "the response has no choices"),
    ("content_not_string", "the answer's content is a JSON object, not a string"),
    ("not_an_object", "the response is not a chat completion object (a JSON array)"),
])
async def test_a_reply_of_the_wrong_shape_is_asked_again_once_then_unparseable(
        server: FakeLLMServer, mode: str, problem: str) -> None:
    server.config.script.extend([mode, mode, "ok"])
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert (result.status, result.error_type, result.error) == (JudgeStatus.UNPARSEABLE, "unparseable", problem)
    assert (result.attempts, server.stats.requests) == (2, 2)
    assert server.stats.bodies[1]["messages"] == messages()  # asked again as it was: nothing to send back
    if mode == "not_an_object":
        assert (result.input_tokens, result.output_tokens) == (0, 0)
    else:
        assert result.input_tokens > 0  # both replies carried valid usage: paid for, and billed

    server.reset()
    server.config.script.append(mode)
    async with judge_for(server) as judge:
        again = await judge.judge(RUBRIC, messages())
    assert (again.status, again.attempts) == (JudgeStatus.OK, 2)  # a one-off bad reply costs one call


async def test_a_nul_or_a_lone_surrogate_in_the_reasoning_is_replaced_not_stored(server: FakeLLMServer) -> None:
    server.config.script.append("nul_reasoning")
    async with judge_for(server) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert (result.status, result.raw_score, result.attempts) == (JudgeStatus.OK, 3, 1)
    assert result.reasoning == "fine\ufffd and \ufffd odd"
    result.reasoning.encode()  # valid UTF-8: Postgres takes it


# -- deadlines are wall-clock totals, not per read ------------------------------------------------------


async def test_a_server_dripping_a_byte_a_second_cannot_stretch_the_judgment_past_its_deadline() -> None:
    # Attempts of 2 s within a 3 s deadline; the reply would take minutes at a byte a second.
    policy = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.01, attempt_timeout_s=2.0,
                         deadline_s=3.0)
    async with SlowDrip() as drip:
        judge = JudgeClient(model="judge-model", base_url=drip.url, api_key="k", egress=None, policy=policy,
                            rng=lambda: 0.0)
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(judge.judge(RUBRIC, messages()), 30)  # a bound if it does not end
        finally:
            await judge.close()
        elapsed = time.monotonic() - started
    assert result.status is JudgeStatus.ERROR and result.error_type in {"deadline", "timeout"}
    assert elapsed < policy.deadline_s + 1.5
    assert drip.requests >= 1 and result.attempts == drip.requests


async def test_each_attempt_against_a_dripping_server_ends_at_its_own_timeout() -> None:
    # 1.5 s attempts: a byte comes every second, so a per-read time-out of 1.5 s never fires.
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.01, attempt_timeout_s=1.5,
                         deadline_s=60.0)
    async with SlowDrip() as drip:
        judge = JudgeClient(model="judge-model", base_url=drip.url, api_key="k", egress=None, policy=policy,
                            rng=lambda: 0.0)
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(judge.judge(RUBRIC, messages()), 30)
        finally:
            await judge.close()
        elapsed = time.monotonic() - started
    assert (result.status, result.error_type, result.attempts, drip.requests) == (JudgeStatus.ERROR, "timeout", 2, 2)
    assert result.error is not None and "gave up after 2 failed attempts" in result.error
    assert elapsed < 2 * policy.attempt_timeout_s + 1.5


# -- structured output, or JSON mode ----------------------------------------------------------------


async def test_an_endpoint_without_json_schema_gets_json_mode_and_it_is_remembered(server: FakeLLMServer) -> None:
    server.config.rejected_formats = {"json_schema"}
    capabilities = EndpointCapabilities()
    async with judge_for(server, capabilities=capabilities) as judge:
        first = await judge.judge(RUBRIC, messages(1))
        second = await judge.judge(RUBRIC, messages(2))
    assert (first.status, first.attempts, first.response_format) == (JudgeStatus.OK, 2, "json_object")
    assert (second.status, second.attempts, second.response_format) == (JudgeStatus.OK, 1, "json_object")
    assert statuses(server) == {400: 1, 200: 2}
    assert [b["response_format"]["type"] for b in server.stats.bodies] == ["json_schema", "json_object",
                                                                           "json_object"]
    # Another client of the same process, same endpoint: no second discovery.
    async with judge_for(server, capabilities=capabilities) as other:
        third = await other.judge(RUBRIC, messages(3))
    assert (third.attempts, server.stats.requests) == (1, 4)


async def test_an_endpoint_without_any_json_mode_is_asked_without_response_format_and_it_is_remembered(
        server: FakeLLMServer) -> None:
    """The third step of the ladder: `json_schema` refused, then `json_object` refused, then no
    `response_format` at all; the prompt alone asks for JSON, which such an endpoint answers in plain text."""
    server.config.rejected_formats = {"json_schema", "json_object"}
    server.config.reply_text = json.dumps(GOOD)
    capabilities = EndpointCapabilities()
    async with judge_for(server, capabilities=capabilities) as judge:
        first = await judge.judge(RUBRIC, messages(1))
        second = await judge.judge(RUBRIC, messages(2))
    assert (first.status, first.attempts, first.response_format) == (JudgeStatus.OK, 3, "none")
    assert (first.raw_score, first.reasoning) == (4, "It answers the question.")
    assert (second.status, second.attempts, second.response_format) == (JudgeStatus.OK, 1, "none")
    assert statuses(server) == {400: 2, 200: 2}
    asked = [(b.get("response_format") or {}).get("type") for b in server.stats.bodies]
    assert asked == ["json_schema", "json_object", None, None]
    assert "json" in json.dumps(server.stats.bodies[2]["messages"]).lower()  # the prompt still asks for JSON


# -- the concurrency cap ----------------------------------------------------------------------------


async def test_in_flight_calls_never_exceed_the_cap(server: FakeLLMServer) -> None:
    server.hold()  # the cap is reached for certain, however slow the machine: requests wait in flight
    async with judge_for(server, max_concurrency=4) as judge:
        judging = asyncio.gather(*(judge.judge(RUBRIC, messages(n)) for n in range(50)))

        async def cap_reached() -> bool:
            return server.stats.in_flight >= 4

        await eventually(cap_reached, timeout_s=10, every_s=0.01, what="four calls in flight")
        server.release()
        results = await judging
    assert all(r.status is JudgeStatus.OK for r in results)
    assert server.stats.requests == 50
    assert server.stats.max_in_flight == 4  # reached above, never passed


async def test_the_cap_holds_while_retrying(server: FakeLLMServer) -> None:
    server.config.latency_ms = 20
    server.config.retry_after_s = 0.01
    server.config.script.extend(["429", "500"] * 5)
    async with judge_for(server, max_concurrency=3) as judge:
        results = await asyncio.gather(*(judge.judge(RUBRIC, messages(n)) for n in range(20)))
    assert all(r.status is JudgeStatus.OK for r in results)
    assert (server.stats.requests, sum(r.attempts for r in results)) == (30, 30)
    assert server.stats.max_in_flight <= 3


# -- configuration ----------------------------------------------------------------------------------


async def test_the_key_is_a_credential_granted_to_the_tenant_for_this_endpoint(server: FakeLLMServer) -> None:
    spec = JudgeSpec(model="judge-model", base_url=server.url, credential="judge")
    credentials = JudgeCredentials(CREDENTIALS.validate_python(
        {"judge": {"key_env": "EVAL_TEST_JUDGE_KEY", "base_urls": [server.url], "tenants": ["acme"]}}),
        environ={"EVAL_TEST_JUDGE_KEY": "sk-test", "LLMOPS_DATABASE_URL": "postgresql://secret"})
    for tenant in ("globex", "acme-eu"):  # another tenant: nothing is sent, whatever it names
        with pytest.raises(CredentialUnavailable, match=r"^credential unavailable$"):
            credentials.api_key(name=spec.credential, tenant_id=tenant, base_url=spec.base_url)
    key = credentials.api_key(name=spec.credential, tenant_id="acme", base_url=spec.base_url)
    egress = EgressPolicy(f"127.0.0.1:{server.port}")
    async with JudgeClient.from_spec(spec, api_key=key, egress=egress, max_concurrency=2, policy=FAST) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert result.status is JudgeStatus.OK and server.stats.keys == ["sk-test"]
    assert json.loads(json.dumps(server.stats.bodies[0]))["max_tokens"] == 512


@pytest.mark.parametrize("where", ["the server's port, not allowed", "postgres", "metadata", "a private name"])
async def test_a_destination_the_egress_policy_refuses_is_never_connected_to(server: FakeLLMServer,
                                                                             where: str) -> None:
    """The judge's connection is refused before it is made (the policy's check is the connection's), and
    the result says only "destination not allowed", the same for every reason."""
    async def resolve(host: str, port: int) -> list[str]:
        return {"judge.acme.example": ["10.0.0.7"]}[host]

    url = {"the server's port, not allowed": server.url, "postgres": "http://127.0.0.1:5432/v1",
           "metadata": "http://169.254.169.254/v1", "a private name": "http://judge.acme.example/v1"}[where]
    egress = EgressPolicy(f"127.0.0.1:{server.port + 1}", resolver=resolve)  # allows a neighbour, not these
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.01, attempt_timeout_s=5, deadline_s=10)
    async with JudgeClient(model="judge-model", base_url=url, api_key="sk-test", egress=egress, policy=policy,
                           rng=lambda: 0.0) as judge:
        result = await judge.judge(RUBRIC, messages())
    assert (result.status, result.error_type, result.attempts) == (JudgeStatus.ERROR, "destination_not_allowed", 2)
    assert result.error == f"gave up after 2 failed attempts: {NOT_ALLOWED}"
    assert server.stats.requests == 0
