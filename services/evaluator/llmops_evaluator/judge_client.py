"""The HTTP client to the judge model: one rubric's messages in, one validated `JudgeResult` out, whatever the
endpoint does.

`JudgeClient` wraps `openai.AsyncOpenAI` with the client's own retries off (`max_retries=0`) and the
suite's `RetryPolicy` on. For each judgment:

1. It asks for structured output, `response_format` `json_schema` with the JSON schema of the rubric's
   pydantic model. An endpoint that answers 400 naming `response_format` is asked again, at once, in JSON
   mode (`json_object`), and if that is refused too, with no `response_format` (the prompt asks for JSON
   anyway). What an endpoint accepts is remembered per base URL (`EndpointCapabilities`), so only its
   first judgment pays for the discovery.
2. Transient failures (408, 409, 429, 5xx, timeouts, connection errors) are retried per the policy,
   honouring Retry-After; 400/401/403/404/422 and an exhausted quota are not. `max_attempts` bounds the
   transient failures; the repair call and format downgrades come on top.
3. Deadlines are wall-clock totals, enforced with `asyncio.timeout` (httpx's own time-outs are per read:
   a server sending a byte a second would never trip them): each attempt ends after `attempt_timeout_s`
   (a `timeout` failure, retried), the whole judgment after `deadline_s` (an `error` / `deadline` result),
   backoffs and waits for a free connection included.
4. The reply is checked before anything is read from it (`read_reply`, which never raises): a body that is
   not a chat completion, no choices, a message whose content is not a string is a broken response, asked
   again once, then `unparseable`. Token counts that are not integers from 0 to `MAX_TOKENS` (negative,
   huge, fractional, text) are dropped, not clamped: nothing reliable is known of what the call spent; the
   judgment is then an `error` / `invalid_usage` (the counts of its earlier, valid calls are kept and
   billed). A judgment whose calls together pass `MAX_TOKENS` is the same error.
5. The answer is validated by the rubric's model. A malformed answer (not JSON, wrong shape, score off the
   scale, or a response body that is not JSON at all) gets one repair attempt: the bad answer is sent back
   with the problem, asking for valid JSON. If that fails too, the result is `unparseable`.
6. No more than `max_concurrency` HTTP calls of a client are in flight at once (an asyncio.Semaphore held
   around each call, not during backoff waits).

The result is never an exception for a failure of the endpoint, whatever it sends: it is a `JudgeResult`
with status `ok`, `unparseable` or `error` (and the error type), ready to be stored as a row; the text it
keeps from the endpoint (reasoning, error messages) is made storable (`storable_text`) and scrubbed of
personal data and credentials (`llmops_shared.privacy.scrub`): a judge quotes what it judged, and the
result goes to Postgres, the API and the Redis judgment cache. Exceptions that are
not about the call (a bug) propagate.
"""

from __future__ import annotations

import asyncio
import importlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import ModuleType
from typing import Annotated, Any

import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict, Field

from llmops_evaluator.config import JudgeEndpoint
from llmops_evaluator.retry import Failure, RetryPolicy, classify
from llmops_evaluator.rubrics import InvalidJudgment, Rubric, repair_messages, storable_text
from llmops_shared.contract import MAX_TOKENS
from llmops_shared.egress import EgressPolicy
from llmops_shared.privacy import scrub

FORMAT_LADDER = ("json_schema", "json_object", "none")


def openai_httpx() -> ModuleType:
    """The httpx package whose `AsyncClient` the installed openai client takes as `http_client`: httpx, or
    httpx2 (a fork with the same API) from openai 3 on."""
    for cls in openai.DefaultAsyncHttpxClient.__mro__:
        package = cls.__module__.partition(".")[0]
        if cls.__name__ == "AsyncClient" and package in {"httpx", "httpx2"}:
            return importlib.import_module(package)
    return importlib.import_module("httpx")


class JudgeStatus(StrEnum):
    OK = "ok"
    UNPARSEABLE = "unparseable"
    ERROR = "error"
    SKIPPED = "skipped"  # not judged on purpose: the rubric does not apply, or the spend cap is reached


class JudgeResult(BaseModel):
    """The outcome of one judgment; becomes one `evaluation_results` row."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: JudgeStatus
    rubric: str  # name@version
    judge_model: str
    score: float | None = None  # normalised to [0, 1]
    raw_score: int | None = None  # on the rubric's scale
    label: str | None = None
    reasoning: str | None = None
    # The judge's own usage for this judgment, all calls with valid counts included; bounded as the usage
    # event's counts are (`llmops_shared.contract.Usage`), so a result always makes a valid usage event.
    input_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS)] = 0
    output_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS)] = 0
    attempts: int = 0  # HTTP calls made
    error_type: str | None = None
    error: str | None = None
    response_format: str | None = None
    from_cache: bool = False
    latency_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is JudgeStatus.OK


class EndpointCapabilities:
    """Which `response_format` each endpoint accepts, learnt from its refusals. Share one per process."""

    def __init__(self) -> None:
        self._level: dict[str, int] = {}

    def format_for(self, base_url: str) -> str:
        return FORMAT_LADDER[self._level.get(base_url, 0)]

    def downgrade(self, base_url: str, refused: str) -> bool:
        """Record that `base_url` refused `refused`; False when there is nothing lower to try."""
        level = FORMAT_LADDER.index(refused)
        if level + 1 >= len(FORMAT_LADDER):
            return False
        self._level[base_url] = max(self._level.get(base_url, 0), level + 1)
        return True


class JudgeClient:
    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key: str,
        egress: EgressPolicy | None,
        policy: RetryPolicy | None = None,
        max_concurrency: int = 4,
        parameters: Mapping[str, Any] | None = None,
        capabilities: EndpointCapabilities | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.parameters = {k: v for k, v in (parameters or {"temperature": 0.0}).items() if v is not None}
        self.capabilities = capabilities or EndpointCapabilities()
        # Through `egress` (a tenant's judge): the key goes only where the policy lets connections go, to the
        # address it checked, never redirected. None: the operator's own calls (golden runs), unguarded.
        http_client = (egress.async_client(flavour=openai_httpx(), timeout=self.policy.attempt_timeout_s)
                       if egress is not None else None)
        self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, max_retries=0,
                                          timeout=self.policy.attempt_timeout_s, http_client=http_client)
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng

    @classmethod
    def from_spec(cls, spec: JudgeEndpoint, *, api_key: str, egress: EgressPolicy | None, max_concurrency: int,
                  policy: RetryPolicy | None = None, capabilities: EndpointCapabilities | None = None,
                  ) -> JudgeClient:
        """A client for a judge endpoint, with the key its caller resolved (`credentials` for a tenant's)."""
        return cls(model=spec.model, base_url=spec.base_url, api_key=api_key, egress=egress, policy=policy,
                   max_concurrency=max_concurrency, parameters=spec.parameters(), capabilities=capabilities)

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> JudgeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def judge(self, rubric: Rubric, messages: list[dict[str, str]]) -> JudgeResult:
        """Judge `messages` (from `rubric.render`) on `rubric`. Never raises for a failure of the endpoint.

        Ends within `deadline_s` whatever the endpoint does (an `error` / `deadline` result)."""
        started = self._clock()
        run = _Run(rubric=rubric, model=self.model)
        deadline = asyncio.timeout(self.policy.deadline_s)
        try:
            async with deadline:
                return await self._judge(run, rubric, messages, started)
        except TimeoutError:
            if not deadline.expired():
                raise
            return run.error("deadline", f"no answer within the {self.policy.deadline_s:g} s deadline",
                             self._clock() - started)

    async def _judge(self, run: _Run, rubric: Rubric, messages: list[dict[str, str]], started: float
                     ) -> JudgeResult:
        conversation = list(messages)
        transient_failures = 0
        repaired = False
        while True:
            elapsed = self._clock() - started
            remaining = self.policy.deadline_s - elapsed
            if remaining <= 0:
                return run.error("deadline", f"no answer within the {self.policy.deadline_s:g} s deadline",
                                 elapsed)
            run.response_format = self.capabilities.format_for(self.base_url)
            run.attempts += 1
            attempt_timeout_s = min(self.policy.attempt_timeout_s, remaining)
            try:
                completion = await self._call(rubric, conversation, run.response_format,
                                              attempt_timeout_s=attempt_timeout_s)
            except (ValueError, RecursionError, openai.APIResponseValidationError):
                # The response body itself is broken (not JSON, not UTF-8, numbers or nesting past what the
                # parser takes): nothing to send back, so the repair is a re-ask.
                if not repaired:
                    repaired = True
                    continue
                return run.unparseable("the endpoint's response was not valid JSON", self._clock() - started)
            except (openai.APIError, TimeoutError) as exc:
                failure = (Failure("timeout", message=f"no complete answer within {attempt_timeout_s:g} s")
                           if isinstance(exc, TimeoutError) else classify(exc))
                if failure is None:
                    raise
                if (isinstance(exc, openai.APIError) and failure.status == 400
                        and _refuses_format(exc, run.response_format)
                        and self.capabilities.downgrade(self.base_url, run.response_format)):
                    continue
                if failure.retryable:
                    transient_failures += 1
                delay = self.policy.next_delay(transient_failures, failure, elapsed_s=self._clock() - started,
                                               rng=self._rng)
                if delay is None:
                    return run.failed(failure, transient_failures, self._clock() - started)
                await self._sleep(delay)
                continue
            reply = read_reply(completion)
            problem = reply.usage_problem or run.add_usage(reply.input_tokens, reply.output_tokens)
            if problem is not None:
                return run.error("invalid_usage", f"{problem}; this call's token counts were dropped",
                                 self._clock() - started)
            if reply.problem is not None:
                if not repaired:
                    repaired = True
                    continue
                return run.unparseable(reply.problem, self._clock() - started)
            try:
                judgment = rubric.parse(reply.content)
            except InvalidJudgment as exc:
                if not repaired:
                    repaired = True
                    conversation = repair_messages(messages, reply.content, str(exc))
                    continue
                return run.unparseable(str(exc), self._clock() - started)
            return run.done(judgment.score, judgment.reasoning, self._clock() - started)

    async def _call(self, rubric: Rubric, messages: list[dict[str, str]], response_format: str,
                    *, attempt_timeout_s: float) -> object:
        """One HTTP call, ended after `attempt_timeout_s` in total (`TimeoutError`), not per read.

        Returns whatever the client made of the body (not necessarily a `ChatCompletion`: `read_reply`)."""
        extra: dict[str, Any] = {}
        if response_format == "json_schema":
            extra["response_format"] = rubric.json_schema_format()
        elif response_format == "json_object":
            extra["response_format"] = {"type": "json_object"}
        async with self._semaphore:  # waiting for a free connection is not part of the attempt's time
            async with asyncio.timeout(attempt_timeout_s):
                completion: object = await self._client.chat.completions.create(
                    model=self.model, messages=messages,  # type: ignore[arg-type]
                    timeout=attempt_timeout_s, **self.parameters, **extra,
                )
                return completion


@dataclass(frozen=True)
class Reply:
    """What one answered call carried, checked (`read_reply`)."""

    content: str | None = None  # the first choice's text, if the reply is well formed
    problem: str | None = None  # why the reply is not a usable chat completion
    input_tokens: int = 0  # valid counts, or 0 (no usage reported, or `usage_problem`)
    output_tokens: int = 0
    usage_problem: str | None = None  # usage reported but not counts from 0 to MAX_TOKENS: dropped


def read_reply(completion: object) -> Reply:
    """The text and token counts of a reply, whatever the endpoint sent; never raises.

    The openai client does not validate a 200 answer: its `choices`, `message.content` and `usage` hold
    whatever JSON the endpoint sent, and a body that is not an object comes back as a list or a string."""
    if not isinstance(completion, ChatCompletion):
        return Reply(problem=f"the response is not a chat completion object (a JSON {_json_kind(completion)})")
    usage = _read_usage(completion.usage)
    choices: object = completion.choices
    if not isinstance(choices, list) or not choices:
        return replace(usage, problem="the response has no choices")
    message = getattr(choices[0], "message", None)
    if message is None:
        return replace(usage, problem="the response's first choice has no message")
    content: object = getattr(message, "content", None)
    if content is not None and not isinstance(content, str):
        return replace(usage, problem=f"the answer's content is a JSON {_json_kind(content)}, not a string")
    return replace(usage, content=content)


def _read_usage(usage: object) -> Reply:
    """The counts of a reply: no usage reported counts as zero; invalid counts are dropped (`usage_problem`)."""
    if usage is None:
        return Reply()
    if not isinstance(usage, CompletionUsage):
        return Reply(usage_problem=f"usage is a JSON {_json_kind(usage)}, not an object")
    counts = []
    for name in ("prompt_tokens", "completion_tokens"):
        value: object = getattr(usage, name, None)
        if value is None:
            counts.append(0)
        elif type(value) is int and 0 <= value <= MAX_TOKENS:
            counts.append(value)
        else:
            shown = value if type(value) is int else f"a JSON {_json_kind(value)}"
            return Reply(usage_problem=f"usage.{name} is {shown}, not a count from 0 to {MAX_TOKENS}")
    return Reply(input_tokens=counts[0], output_tokens=counts[1])


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


class _Run:
    """What one judgment accumulates across its calls."""

    def __init__(self, *, rubric: Rubric, model: str) -> None:
        self.rubric = rubric
        self.model = model
        self.attempts = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.response_format: str | None = None

    def add_usage(self, input_tokens: int, output_tokens: int) -> str | None:
        """Count one call's tokens; a problem (nothing counted) if the judgment's total would pass MAX_TOKENS."""
        if self.input_tokens + input_tokens > MAX_TOKENS or self.output_tokens + output_tokens > MAX_TOKENS:
            return f"the judgment's token counts pass {MAX_TOKENS}"
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        return None

    def _result(self, status: JudgeStatus, elapsed_s: float, **fields: Any) -> JudgeResult:
        for name in ("reasoning", "error"):  # text from the endpoint: no NUL or lone surrogate reaches Postgres
            if isinstance(fields.get(name), str):
                fields[name] = storable_text(fields[name])
        return JudgeResult(status=status, rubric=self.rubric.ref, judge_model=self.model, attempts=self.attempts,
                           input_tokens=self.input_tokens, output_tokens=self.output_tokens,
                           response_format=self.response_format, latency_ms=round(elapsed_s * 1000, 3), **fields)

    # What the endpoint wrote (the reasoning; an answer quoted in a validation problem; its error messages) is
    # scrubbed: a judge quotes what it judged (redacted already when it came from the clean topic). The
    # suite's own messages (`error` called directly: deadlines, invalid counts) are not.

    def done(self, score: int, reasoning: str, elapsed_s: float) -> JudgeResult:
        return self._result(JudgeStatus.OK, elapsed_s, score=self.rubric.normalise(score), raw_score=score,
                            label=self.rubric.label(score), reasoning=scrub(reasoning))

    def unparseable(self, problem: str, elapsed_s: float) -> JudgeResult:
        return self._result(JudgeStatus.UNPARSEABLE, elapsed_s, error_type="unparseable", error=scrub(problem))

    def error(self, error_type: str, message: str, elapsed_s: float) -> JudgeResult:
        return self._result(JudgeStatus.ERROR, elapsed_s, error_type=error_type, error=message)

    def failed(self, failure: Failure, transient_failures: int, elapsed_s: float) -> JudgeResult:
        detail = scrub(failure.message or failure.error_type)
        if failure.retryable:
            detail = f"gave up after {transient_failures} failed attempts: {detail}"
        return self.error(failure.error_type, detail, elapsed_s)


def _refuses_format(exc: openai.APIError, response_format: str | None) -> bool:
    """A 400 that names the response format: the endpoint does not support that kind of output."""
    if response_format in (None, "none"):
        return False
    text = f"{exc.message} {exc.param or ''} {exc.body if isinstance(exc.body, str) else ''}".lower()
    return "response_format" in text or "json_schema" in text or "response format" in text
