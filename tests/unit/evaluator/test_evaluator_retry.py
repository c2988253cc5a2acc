from __future__ import annotations

from datetime import UTC, datetime

import httpx2
import openai
import pytest

from llmops_evaluator.retry import Failure, RetryPolicy, classify, retry_after_seconds

POLICY = RetryPolicy(max_attempts=4, base_delay_s=0.5, max_delay_s=8.0, retry_after_cap_s=30.0, deadline_s=120.0)
HALF = lambda: 0.5  # noqa: E731 - the jitter draw
ZERO = lambda: 0.0  # noqa: E731


def status_error(status: int, *, headers: dict[str, str] | None = None, code: str | None = None,
                 type_: str = "error") -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://judge.test/v1/chat/completions")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    body = {"message": f"status {status}", "type": type_, "code": code}
    classes = {400: openai.BadRequestError, 401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
               404: openai.NotFoundError, 409: openai.ConflictError, 422: openai.UnprocessableEntityError,
               429: openai.RateLimitError}
    cls = classes.get(status, openai.InternalServerError if status >= 500 else openai.APIStatusError)
    return cls(f"status {status}", response=response, body=body)


def test_backoff_is_exponential_with_full_jitter() -> None:
    failure = Failure("status", status=500)
    # ceiling = min(8, 0.5 * 2^(attempt-1)); the wait is draw * ceiling
    assert [POLICY.next_delay(n, failure, rng=HALF) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]
    assert [POLICY.backoff_ceiling(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert POLICY.next_delay(1, failure, rng=ZERO) == 0.0


def test_no_more_than_max_attempts() -> None:
    failure = Failure("status", status=503)
    assert POLICY.next_delay(3, failure, rng=HALF) == 1.0
    assert POLICY.next_delay(4, failure, rng=HALF) is None


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retried(status: int) -> None:
    assert POLICY.next_delay(1, status_error(status), rng=HALF) == 0.25


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_never_retried(status: int) -> None:
    assert POLICY.next_delay(1, status_error(status), rng=HALF) is None


def test_an_exhausted_quota_is_never_retried() -> None:
    error = status_error(429, code="insufficient_quota", type_="insufficient_quota")
    failure = classify(error)
    assert failure is not None and failure.quota_exhausted and failure.error_type == "quota_exhausted"
    assert POLICY.next_delay(1, error, rng=HALF) is None


def test_timeouts_and_connection_errors_are_retried() -> None:
    request = httpx2.Request("POST", "http://judge.test/v1/chat/completions")
    assert POLICY.next_delay(1, openai.APITimeoutError(request), rng=HALF) == 0.25
    assert POLICY.next_delay(2, openai.APIConnectionError(request=request), rng=HALF) == 0.5


def test_other_exceptions_are_not_retried() -> None:
    assert POLICY.next_delay(1, ValueError("a bug"), rng=HALF) is None


def test_retry_after_is_honoured() -> None:
    error = status_error(429, headers={"retry-after": "3"})
    assert POLICY.next_delay(1, error, rng=HALF) == 3.0  # more than the jittered 0.25
    assert POLICY.next_delay(1, status_error(429, headers={"retry-after-ms": "200"}), rng=ZERO) == 0.2


def test_retry_after_never_shortens_the_backoff() -> None:
    failure = Failure("status", status=503, retry_after_s=0.1)
    assert POLICY.next_delay(4 - 1, failure, rng=HALF) == 1.0


def test_retry_after_is_capped() -> None:
    assert POLICY.next_delay(1, Failure("status", status=429, retry_after_s=3600), rng=HALF) == 30.0


def test_no_wait_past_the_total_deadline() -> None:
    failure = Failure("status", status=429, retry_after_s=5)
    assert POLICY.next_delay(1, failure, elapsed_s=114.0, rng=ZERO) == 5.0
    assert POLICY.next_delay(1, failure, elapsed_s=115.0, rng=ZERO) is None


def test_retry_after_forms() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds(httpx2.Headers({"retry-after": "1.5"})) == 1.5
    assert retry_after_seconds(httpx2.Headers({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert retry_after_seconds(httpx2.Headers({"retry-after": "Wed, 01 Jan 2025 12:00:07 GMT"}), now=now) == 7.0
    assert retry_after_seconds(httpx2.Headers({"retry-after": "soon"})) is None
    assert retry_after_seconds(httpx2.Headers({"retry-after": "-1"})) is None
    assert retry_after_seconds(httpx2.Headers({})) is None


def test_classify_names_the_error_type() -> None:
    assert classify(status_error(401)) == Failure("status", status=401, message="status 401")
    failure = classify(status_error(500))
    assert failure is not None and failure.error_type == "http_500"


def test_a_policy_needs_an_attempt_and_positive_timeouts() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
