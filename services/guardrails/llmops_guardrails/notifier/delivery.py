"""Sending one notification, with retries: 429, 5xx, timeouts and connection errors are retried with
exponential backoff and jitter (honouring Retry-After); other answers are final."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import httpx

from llmops_guardrails.notifier.channels import Outgoing


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        backoff = min(self.max_s, self.base_s * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        if retry_after and retry_after.strip().isdigit():
            return min(self.max_s, max(backoff, float(retry_after)))
        return backoff


@dataclass(frozen=True)
class Result:
    delivered: bool
    attempts: int
    http_status: int | None
    error: str | None


def retryable(status: int) -> bool:
    return status == 429 or status >= 500 or status == 408


async def send(client: httpx.AsyncClient, url: str, message: Outgoing, policy: RetryPolicy) -> Result:
    status: int | None = None
    error: str | None = None
    for attempt in range(1, policy.max_attempts + 1):
        retry_after = None
        try:
            resp = await client.post(url, content=message.body, headers=message.headers)
            status = resp.status_code
            if 200 <= status < 300:
                return Result(True, attempt, status, None)
            error = f"HTTP {status}"
            if not retryable(status):
                return Result(False, attempt, status, error)
            retry_after = resp.headers.get("retry-after")
        except httpx.HTTPError as exc:
            status, error = None, type(exc).__name__
        if attempt < policy.max_attempts:
            await asyncio.sleep(policy.delay(attempt, retry_after))
    return Result(False, policy.max_attempts, status, error)
