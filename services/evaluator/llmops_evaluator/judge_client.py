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
   honouring Retry-After; 400/401/403/404/422 and an exhausted quota are not. Each attempt has its own
   timeout, and the whole judgment a total deadline. `max_attempts` bounds the transient failures; the
   repair call and format downgrades come on top.
3. The answer is validated by the rubric's model. A malformed answer (not JSON, wrong shape, score off the
   scale, or a response body that is not JSON at all) gets one repair attempt: the bad answer is sent back
   with the problem, asking for valid JSON. If that fails too, the result is `unparseable`.
4. No more than `max_concurrency` HTTP calls of a client are in flight at once (an asyncio.Semaphore held
   around each call, not during backoff waits).

The result is never an exception for a failure of the endpoint: it is a `JudgeResult` with status `ok`,
`unparseable` or `error` (and the error type), ready to be stored as a row. Exceptions that are not about
the call (a bug) propagate.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any

import openai
from pydantic import BaseModel, ConfigDict

from llmops_evaluator.config import JudgeSpec
from llmops_evaluator.retry import Failure, RetryPolicy, classify
from llmops_evaluator.rubrics import InvalidJudgment, Rubric, repair_messages

FORMAT_LADDER = ("json_schema", "json_object", "none")


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
    input_tokens: int = 0  # the judge's own usage for this judgment, all calls included
    output_tokens: int = 0
    attempts: int = 0  # HTTP calls made
    error_type: str | None = None
    error: str | None = None
    response_format: str | None = None
    from_cache: bool = False
    latency_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is JudgeStatus.OK


class JudgeConfigError(RuntimeError):
    """The judge cannot be set up (e.g. its key's environment variable is not set)."""


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
        self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, max_retries=0,
                                          timeout=self.policy.attempt_timeout_s)
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng

    @classmethod
    def from_spec(cls, spec: JudgeSpec, *, max_concurrency: int, policy: RetryPolicy | None = None,
                  environ: Mapping[str, str] | None = None, capabilities: EndpointCapabilities | None = None,
                  ) -> JudgeClient:
        """A client for an evaluator's judge; the key is read from the variable `spec.api_key_env`."""
        env = os.environ if environ is None else environ
        api_key = env.get(spec.api_key_env)
        if not api_key:
            raise JudgeConfigError(f"the judge's key variable {spec.api_key_env} is not set")
        return cls(model=spec.model, base_url=spec.base_url, api_key=api_key, policy=policy,
                   max_concurrency=max_concurrency, parameters=spec.parameters(), capabilities=capabilities)

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> JudgeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def judge(self, rubric: Rubric, messages: list[dict[str, str]]) -> JudgeResult:
        """Judge `messages` (from `rubric.render`) on `rubric`. Never raises for a failure of the endpoint."""
        started = self._clock()
        run = _Run(rubric=rubric, model=self.model)
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
            try:
                completion = await self._call(rubric, conversation, run.response_format,
                                              attempt_timeout_s=min(self.policy.attempt_timeout_s, remaining))
            except (json.JSONDecodeError, openai.APIResponseValidationError):
                # The response body itself is broken: nothing to send back, so the repair is a re-ask.
                if not repaired:
                    repaired = True
                    continue
                return run.unparseable("the endpoint's response was not valid JSON", self._clock() - started)
            except openai.APIError as exc:
                failure = classify(exc)
                if failure is None:
                    raise
                if (failure.status == 400 and _refuses_format(exc, run.response_format)
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
            usage = completion.usage
            if usage is not None:
                run.input_tokens += usage.prompt_tokens or 0
                run.output_tokens += usage.completion_tokens or 0
            content = completion.choices[0].message.content if completion.choices else None
            try:
                judgment = rubric.parse(content)
            except InvalidJudgment as exc:
                if not repaired:
                    repaired = True
                    conversation = repair_messages(messages, content, str(exc))
                    continue
                return run.unparseable(str(exc), self._clock() - started)
            return run.done(judgment.score, judgment.reasoning, self._clock() - started)

    async def _call(self, rubric: Rubric, messages: list[dict[str, str]], response_format: str,
                    *, attempt_timeout_s: float) -> Any:
        extra: dict[str, Any] = {}
        if response_format == "json_schema":
            extra["response_format"] = rubric.json_schema_format()
        elif response_format == "json_object":
            extra["response_format"] = {"type": "json_object"}
        async with self._semaphore:
            return await self._client.chat.completions.create(
                model=self.model, messages=messages,  # type: ignore[arg-type]
                timeout=attempt_timeout_s, **self.parameters, **extra,
            )


class _Run:
    """What one judgment accumulates across its calls."""

    def __init__(self, *, rubric: Rubric, model: str) -> None:
        self.rubric = rubric
        self.model = model
        self.attempts = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.response_format: str | None = None

    def _result(self, status: JudgeStatus, elapsed_s: float, **fields: Any) -> JudgeResult:
        return JudgeResult(status=status, rubric=self.rubric.ref, judge_model=self.model, attempts=self.attempts,
                           input_tokens=self.input_tokens, output_tokens=self.output_tokens,
                           response_format=self.response_format, latency_ms=round(elapsed_s * 1000, 3), **fields)

    def done(self, score: int, reasoning: str, elapsed_s: float) -> JudgeResult:
        return self._result(JudgeStatus.OK, elapsed_s, score=self.rubric.normalise(score), raw_score=score,
                            label=self.rubric.label(score), reasoning=reasoning)

    def unparseable(self, problem: str, elapsed_s: float) -> JudgeResult:
        return self._result(JudgeStatus.UNPARSEABLE, elapsed_s, error_type="unparseable", error=problem)

    def error(self, error_type: str, message: str, elapsed_s: float) -> JudgeResult:
        return self._result(JudgeStatus.ERROR, elapsed_s, error_type=error_type, error=message)

    def failed(self, failure: Failure, transient_failures: int, elapsed_s: float) -> JudgeResult:
        detail = failure.message or failure.error_type
        if failure.retryable:
            detail = f"gave up after {transient_failures} failed attempts: {detail}"
        return self.error(failure.error_type, detail, elapsed_s)


def _refuses_format(exc: openai.APIError, response_format: str | None) -> bool:
    """A 400 that names the response format: the endpoint does not support that kind of output."""
    if response_format in (None, "none"):
        return False
    text = f"{exc.message} {exc.param or ''} {exc.body if isinstance(exc.body, str) else ''}".lower()
    return "response_format" in text or "json_schema" in text or "response format" in text
