"""`delivery.attempt`: one attempt under a total deadline; what comes of it. Local servers, no infrastructure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from llmops_guardrails.notifier.channels import Outgoing
from llmops_guardrails.notifier.delivery import RetryPolicy, attempt
from llmops_shared.egress import NOT_ALLOWED, EgressPolicy
from tests.support.dripping import DrippingServer

MESSAGE = Outgoing(b'{"type": "alert.trigger"}', {"content-type": "application/json"})


@asynccontextmanager
async def answering(status: int, headers: bytes = b"") -> AsyncIterator[str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length")), 0)
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 %d X\r\ncontent-length: 0\r\n%s\r\n" % (status, headers))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_a_server_dripping_one_byte_a_second_cannot_hold_an_attempt_past_its_deadline() -> None:
    async with DrippingServer() as server, httpx.AsyncClient(timeout=5) as client:  # per read: never reached
        started = time.monotonic()
        result = await attempt(client, server.url, MESSAGE, timeout_s=1.5)
        took = time.monotonic() - started
    assert (result.delivered, result.retry_soon, result.error) == (False, True, "no answer within 1.5 s")
    assert 1.4 < took < 6  # the 1.5 s deadline (slack for a busy machine); the whole reply would take longer


@pytest.mark.parametrize(("status", "delivered", "retry_soon"), [
    (200, True, False), (204, True, False), (500, False, True), (503, False, True), (429, False, True),
    (408, False, True), (404, False, False), (400, False, False)])
async def test_what_an_answer_means(status: int, delivered: bool, retry_soon: bool) -> None:
    async with answering(status, b"retry-after: 7\r\n") as url, httpx.AsyncClient() as client:
        result = await attempt(client, url, MESSAGE, timeout_s=5)
    assert (result.delivered, result.retry_soon, result.http_status) == (delivered, retry_soon, status)
    assert result.error == (None if delivered else f"HTTP {status}")
    assert result.retry_after == (None if delivered else "7")


async def test_a_refused_connection_is_worth_another_attempt_and_says_only_destination_not_allowed() -> None:
    async with answering(200) as url:
        pass  # closed: nothing listens there any more
    async with httpx.AsyncClient() as client:
        result = await attempt(client, url, MESSAGE, timeout_s=5)
    assert (result.delivered, result.retry_soon, result.error) == (False, True, NOT_ALLOWED)


async def test_every_connection_not_made_is_the_same_answer_whatever_the_reason() -> None:
    """Refused by the policy, closed, unresolvable, or the deadline before a connection (a filtered port, a
    resolver that never answers): one answer, so a delivery log tells a tenant nothing of the network."""
    async with answering(200) as closed:
        pass

    async def resolver(host: str, port: int) -> list[str]:
        if host == "hangs.example":
            await asyncio.sleep(3600)
        raise OSError(-2, "Name or service not known")

    policy = EgressPolicy(f"127.0.0.1:{closed.rsplit(':', 1)[1]}", resolver=resolver)
    results = []
    async with policy.async_client() as client:
        for url in ("http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/", closed,
                    "http://nowhere.example/", "http://hangs.example/"):
            results.append(await attempt(client, url, MESSAGE, timeout_s=0.5))
    assert {(r.delivered, r.http_status, r.error, r.retry_soon) for r in results} == {
        (False, None, NOT_ALLOWED, True)}


def test_waits_grow_and_are_capped() -> None:
    policy = RetryPolicy(max_attempts=6, base_s=0.5, max_s=30, park_base_s=30, park_max_s=900)
    assert 0.25 <= policy.delay(1) <= 0.5 and 8 <= policy.delay(6) <= 16
    assert policy.delay(1, retry_after="20") == 20 and policy.delay(1, retry_after="600") == 30
    assert 22.5 <= policy.park_delay(1) <= 30 and 45 <= policy.park_delay(2) <= 60
    assert 675 <= policy.park_delay(20) <= 900
