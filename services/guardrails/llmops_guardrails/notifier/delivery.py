"""One delivery attempt, under a total deadline, and the waits between attempts.

`attempt` posts one notification and says what came of it. Its time limit is a deadline for the whole
attempt (`asyncio.timeout`: connecting, sending, waiting for the answer and reading it): httpx's own
time-outs are per operation, so a server dripping one byte a second could hold an attempt with a 2 s
time-out for minutes. 2xx is delivered; 408, 429, 5xx, time-outs and connection errors are worth trying
again soon; other answers (a wrong URL, a refused key) are not, until someone changes the channel.

A connection that is not made is one answer, whatever the reason: "destination not allowed" (the egress
policy refused the address, the name does not resolve, the port is closed or filtered, the deadline came
before the connection did), retried like any connection failure. So a delivery log is no port scanner; the
reason is in the operator's log (`llmops_shared.egress`).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import httpx

from llmops_guardrails.notifier.channels import Outgoing
from llmops_shared.egress import NOT_ALLOWED


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_s: float = 0.5
    max_s: float = 30.0
    park_base_s: float = 30.0
    park_max_s: float = 900.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based) of a run."""
        backoff = min(self.max_s, self.base_s * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        if retry_after and retry_after.strip().isdigit():
            return min(self.max_s, max(backoff, float(retry_after)))
        return backoff

    def park_delay(self, parked_attempts: int) -> float:
        """Seconds before a parked delivery is tried again, after `parked_attempts` (>= 1) failed attempts
        since it was parked first: doubling from `park_base_s` up to `park_max_s`, jittered."""
        exponent = min(max(parked_attempts, 1) - 1, 30)
        return min(self.park_max_s, self.park_base_s * 2 ** exponent) * (0.75 + random.random() / 4)


@dataclass(frozen=True)
class Result:
    delivered: bool
    http_status: int | None
    error: str | None
    retry_soon: bool = False  # worth another attempt in a moment (time-out, 408, 429, 5xx, no connection)
    retry_after: str | None = None


def retryable(status: int) -> bool:
    return status == 429 or status >= 500 or status == 408


async def attempt(client: httpx.AsyncClient, url: str, message: Outgoing, *, timeout_s: float) -> Result:
    """Post `message` once; whatever happens, within `timeout_s` seconds."""
    connected = False

    async def trace(event: str, _info: dict[str, Any]) -> None:  # httpcore's `trace` extension
        nonlocal connected
        connected = connected or event == "connection.connect_tcp.complete" or not event.startswith("connection.")

    try:
        async with asyncio.timeout(timeout_s):
            resp = await client.post(url, content=message.body, headers=message.headers,
                                     extensions={"trace": trace})
            await resp.aread()
    except TimeoutError:
        if not connected:
            return Result(False, None, NOT_ALLOWED, retry_soon=True)
        return Result(False, None, f"no answer within {timeout_s:g} s", retry_soon=True)
    except (httpx.ConnectError, httpx.ConnectTimeout):  # the egress policy's DestinationNotAllowed among them
        return Result(False, None, NOT_ALLOWED, retry_soon=True)
    except (httpx.TransportError, OSError) as exc:
        return Result(False, None, type(exc).__name__, retry_soon=True)
    except (httpx.HTTPError, ValueError) as exc:  # an unusable URL, a broken answer
        return Result(False, None, type(exc).__name__)
    status = resp.status_code
    if 200 <= status < 300:
        return Result(True, status, None)
    return Result(False, status, f"HTTP {status}", retry_soon=retryable(status),
                  retry_after=resp.headers.get("retry-after"))
