"""The judge client's reading of replies, without a server: whatever an endpoint sends is a result, never
an exception (the endpoint behaviours over real HTTP are in tests/integration/evaluator)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion
from pydantic import ValidationError

from llmops_evaluator.judge_client import JudgeClient, JudgeResult, JudgeStatus, Reply, read_reply
from llmops_evaluator.retry import RetryPolicy
from llmops_evaluator.rubrics import BUILTIN
from llmops_shared.contract import MAX_TOKENS

RUBRIC = BUILTIN["relevance@1"]
GOOD = '{"reasoning": "It answers.", "score": 4}'


def completion(**fields: Any) -> ChatCompletion:
    """What the openai client makes of a 200 body: `construct`, no validation."""
    body: dict[str, Any] = {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": GOOD}}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    body.update(fields)
    return ChatCompletion.construct(**body)


def test_a_good_reply_gives_its_text_and_counts() -> None:
    assert read_reply(completion()) == Reply(content=GOOD, input_tokens=10, output_tokens=5)
    assert read_reply(completion(usage=None)) == Reply(content=GOOD)  # no usage reported: nothing to bill


@pytest.mark.parametrize(("reply", "problem"), [
    ([], "the response is not a chat completion object (a JSON array)"),
    ("hello", "the response is not a chat completion object (a JSON string)"),
    (None, "the response is not a chat completion object (a JSON null)"),
    (completion(choices=[]), "the response has no choices"),
    (completion(choices=None), "the response has no choices"),
    (completion(choices="abc"), "the response has no choices"),
    (completion(choices=[1]), "the response's first choice has no message"),
    (completion(choices=[{"index": 0, "message": None}]), "the response's first choice has no message"),
    (completion(choices=[{"index": 0, "message": {"content": {"score": 3}}}]),
     "the answer's content is a JSON object, not a string"),
    (completion(choices=[{"index": 0, "message": {"content": ["a"]}}]),
     "the answer's content is a JSON array, not a string"),
    (completion(choices=[{"index": 0, "message": {"content": 3}}]),
     "the answer's content is a JSON number, not a string"),
])
def test_a_reply_of_the_wrong_shape_is_a_problem_not_an_exception(reply: object, problem: str) -> None:
    read = read_reply(reply)
    assert (read.content, read.problem) == (None, problem)


@pytest.mark.parametrize(("usage", "problem"), [
    ({"prompt_tokens": -5, "completion_tokens": 1}, "usage.prompt_tokens is -5"),
    ({"prompt_tokens": 1, "completion_tokens": MAX_TOKENS + 1}, f"usage.completion_tokens is {MAX_TOKENS + 1}"),
    ({"prompt_tokens": 10**30, "completion_tokens": 1}, "usage.prompt_tokens is 1000000000000000000000000000000"),
    ({"prompt_tokens": 1.5, "completion_tokens": 1}, "usage.prompt_tokens is a JSON number"),
    ({"prompt_tokens": "12", "completion_tokens": 1}, "usage.prompt_tokens is a JSON string"),
    ({"prompt_tokens": True, "completion_tokens": 1}, "usage.prompt_tokens is a JSON boolean"),
    ("nope", "usage is a JSON string, not an object"),
    ([1, 2], "usage is a JSON array, not an object"),
])
def test_invalid_token_counts_are_dropped_with_the_reason(usage: object, problem: str) -> None:
    read = read_reply(completion(usage=usage))
    assert (read.input_tokens, read.output_tokens) == (0, 0)  # dropped, not clamped
    assert read.usage_problem is not None and read.usage_problem.startswith(problem)
    assert read.content == GOOD


def test_missing_counts_are_zero() -> None:
    assert read_reply(completion(usage={"prompt_tokens": 7})) == Reply(content=GOOD, input_tokens=7)


@pytest.mark.parametrize("field", ["input_tokens", "output_tokens"])
@pytest.mark.parametrize("value", [-1, MAX_TOKENS + 1])
def test_a_result_cannot_hold_counts_a_usage_event_would_refuse(field: str, value: int) -> None:
    with pytest.raises(ValidationError):
        JudgeResult(status=JudgeStatus.OK, rubric="relevance@1", judge_model="m", **{field: value})


async def test_error_text_from_the_endpoint_reaches_the_result_storable() -> None:
    def endpoint(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=b'{"error": {"message": "bad\\u0000 request \\ud800", "type": "x"}}',
                              headers={"content-type": "application/json"})

    judge = JudgeClient(model="m", base_url="http://judge.test/v1", api_key="k", egress=None,
                        policy=RetryPolicy(max_attempts=1))
    judge._client = openai.AsyncOpenAI(base_url="http://judge.test/v1", api_key="k", max_retries=0,
                                       http_client=httpx.AsyncClient(transport=httpx.MockTransport(endpoint)))
    async with judge:
        result = await judge.judge(RUBRIC, RUBRIC_MESSAGES)
    assert (result.status, result.error_type) == (JudgeStatus.ERROR, "http_400")
    # openai 3 hands over the message decoded (NUL and lone surrogate replaced), openai 2 its repr (escaped):
    # either way the endpoint's words are there, and the text is valid UTF-8 with no NUL, so Postgres takes it.
    assert result.error is not None and "bad" in result.error and "request" in result.error
    assert "\x00" not in result.error
    result.error.encode()


QUOTED = "jane.doe@example.com, +1 415 555 0142, card 4111 1111 1111 1111, key ghp_" + "a1B2" * 9


@pytest.mark.parametrize(("status", "content"), [
    (200, json.dumps({"reasoning": f"The user wrote: {QUOTED}.", "score": 4})),
    (200, json.dumps({"reasoning": f"The user wrote: {QUOTED}.", "score": 99})),  # unparseable: error quotes it
    (400, json.dumps({"error": {"message": f"cannot judge {QUOTED}", "type": "invalid_request_error"}})),
])
async def test_text_from_the_judge_is_scrubbed_before_it_becomes_a_result(status: int, content: str) -> None:
    """A judge quotes what it judged; the result (stored, cached, served) never holds the personal data."""
    def endpoint(_request: httpx.Request) -> httpx.Response:
        body = content if status != 200 else json.dumps(
            {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
             "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]})
        return httpx.Response(status, content=body.encode(), headers={"content-type": "application/json"})

    judge = JudgeClient(model="m", base_url="http://judge.test/v1", api_key="k", egress=None,
                        policy=RetryPolicy(max_attempts=1))
    judge._client = openai.AsyncOpenAI(base_url="http://judge.test/v1", api_key="k", max_retries=0,
                                       http_client=httpx.AsyncClient(transport=httpx.MockTransport(endpoint)))
    async with judge:
        result = await judge.judge(RUBRIC, RUBRIC_MESSAGES)
    text = result.model_dump_json()
    for raw in ("jane.doe@example.com", "415 555 0142", "4111 1111 1111 1111", "ghp_"):
        assert raw not in text
    if result.ok:
        assert result.reasoning == ("The user wrote: [EMAIL_ADDRESS], [PHONE_NUMBER], card [CREDIT_CARD], "
                                    "key [SECRET].")
    elif status == 400:
        assert result.error is not None and "cannot judge [EMAIL_ADDRESS]" in result.error


@pytest.mark.parametrize("body", [
    b"\xff\xfe not UTF-8", b'{"x": ' + b"9" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000,
])
async def test_a_body_the_json_parser_refuses_is_asked_again_then_unparseable(body: bytes) -> None:
    calls = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    judge = JudgeClient(model="m", base_url="http://judge.test/v1", api_key="k", egress=None)
    judge._client = openai.AsyncOpenAI(base_url="http://judge.test/v1", api_key="k", max_retries=0,
                                       http_client=httpx.AsyncClient(transport=httpx.MockTransport(endpoint)))
    async with judge:
        result = await judge.judge(RUBRIC, RUBRIC_MESSAGES)
    assert (result.status, result.attempts, len(calls)) == (JudgeStatus.UNPARSEABLE, 2, 2)


RUBRIC_MESSAGES = [{"role": "system", "content": "grade"}, {"role": "user", "content": "<answer>x</answer>"}]
