"""The suite's retry policy for judge calls (the openai client's own retries are off).

Pure: `classify` turns an exception of the openai client into a `Failure`; `RetryPolicy.next_delay` says
how long to wait before the next attempt, or `None` to give up. Tests check it exactly by passing `rng`.

- Retried: 408, 409, 429, 5xx, timeouts and connection errors (a destination the egress policy refuses
  included: it looks like any connection that could not be made, `llmops_shared.egress`).
- Never retried: 400, 401, 403, 404, 422 (any other 4xx), and a 429 that says the quota is exhausted.
- Backoff is exponential with full jitter: a uniform draw from [0, min(max_delay, base * 2^(attempt-1))].
- A Retry-After (or retry-after-ms) header is honoured: the wait is at least what it asks, capped at
  `retry_after_cap_s`.
- At most `max_attempts` attempts; no wait that would end past the total deadline.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import openai

from llmops_shared.egress import NOT_ALLOWED, DestinationNotAllowed

RETRYABLE_STATUSES = frozenset({408, 409, 429})
QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "quota_exceeded"})


@dataclass(frozen=True)
class Failure:
    """What went wrong with one attempt, as far as retrying is concerned."""

    kind: str  # "status", "timeout", "connection" or "destination_not_allowed"
    status: int | None = None
    retry_after_s: float | None = None
    quota_exhausted: bool = False
    message: str = ""

    @property
    def retryable(self) -> bool:
        if self.kind in {"timeout", "connection", "destination_not_allowed"}:
            return True
        if self.status is None or self.quota_exhausted:
            return False
        return self.status in RETRYABLE_STATUSES or self.status >= 500

    @property
    def error_type(self) -> str:
        """A short, stable name for result rows and metrics."""
        if self.kind != "status":
            return self.kind
        if self.quota_exhausted:
            return "quota_exhausted"
        return f"http_{self.status}"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    retry_after_cap_s: float = 30.0
    attempt_timeout_s: float = 30.0
    deadline_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.attempt_timeout_s <= 0 or self.deadline_s <= 0:
            raise ValueError("max_attempts must be >= 1 and the timeouts positive")

    def backoff_ceiling(self, attempt: int) -> float:
        """The upper bound of the jittered wait after failed attempt number `attempt` (1-based)."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** max(attempt - 1, 0))

    def next_delay(self, attempt: int, error: BaseException | Failure, *, elapsed_s: float = 0.0,
                   rng: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up.

        `attempt` is the 1-based number of the attempt that just failed with `error`; `elapsed_s` is the
        time since the first attempt started; `rng` draws from [0, 1) for the jitter.
        """
        failure = error if isinstance(error, Failure) else classify(error)
        if failure is None or not failure.retryable or attempt >= self.max_attempts:
            return None
        delay = rng() * self.backoff_ceiling(attempt)
        if failure.retry_after_s is not None:
            delay = max(delay, min(failure.retry_after_s, self.retry_after_cap_s))
        if elapsed_s + delay >= self.deadline_s:
            return None
        return delay


def classify(exc: BaseException, *, now: datetime | None = None) -> Failure | None:
    """The `Failure` an openai client exception stands for, or None when it is not a call failure."""
    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", message="the attempt timed out")
    if isinstance(exc, openai.APIConnectionError):
        if isinstance(exc.__cause__, DestinationNotAllowed):
            # No connection was made (refused by the egress policy, or none could be: a closed or filtered
            # port, a name that does not resolve), said the same way whatever the reason: no port scanner.
            # Retried like any connection failure, so attempts do not tell the reasons apart either.
            return Failure("destination_not_allowed", message=NOT_ALLOWED)
        return Failure("connection", message=_short(str(exc)))
    if isinstance(exc, openai.APIStatusError):
        code = (exc.code or "").lower()
        kind = (exc.type or "").lower() if isinstance(exc.type, str) else ""
        quota = exc.status_code == 429 and bool({code, kind} & QUOTA_CODES)
        return Failure(
            "status",
            status=exc.status_code,
            retry_after_s=retry_after_seconds(exc.response.headers, now=now),
            quota_exhausted=quota,
            message=_short(exc.message),
        )
    return None


def retry_after_seconds(headers: object, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: `retry-after-ms`, `retry-after` in seconds, or `retry-after` as an HTTP date."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    millis = get("retry-after-ms")
    if millis is not None:
        value = _number(millis)
        return value / 1000 if value is not None else None
    raw = get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(str(raw))
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _number(raw: object) -> float | None:
    try:
        value = float(str(raw))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
