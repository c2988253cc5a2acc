"""Bodies over the cap are refused before the app (or its authentication) reads them."""

from __future__ import annotations

import socket
from collections.abc import Iterator

from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from llmops_shared import body_limit, problems
from tests.support.servers import serve


def app_with_cap(max_bytes: int, seen: list[int]) -> FastAPI:
    api = FastAPI()
    problems.install(api)
    body_limit.install(api, max_bytes=max_bytes)

    @api.post("/things")
    async def things(request: Request) -> dict[str, int]:
        if request.headers.get("authorization") != "Bearer ok":
            raise HTTPException(401, "missing bearer API key")
        body = await request.body()
        seen.append(len(body))
        return {"bytes": len(body)}

    return api


def test_a_declared_length_over_the_cap_is_refused_before_authentication() -> None:
    seen: list[int] = []
    resp = TestClient(app_with_cap(1000, seen)).post("/things", content=b"x" * 1001)  # no key at all
    assert resp.status_code == 413 and resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["detail"] == "the body is 1001 bytes; the limit is 1000" and seen == []


def test_a_chunked_body_is_cut_off_at_the_cap() -> None:
    seen: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            yield b"y" * 100

    client = TestClient(app_with_cap(1000, seen))
    resp = client.post("/things", content=chunks(), headers={"authorization": "Bearer ok"})
    assert resp.status_code == 413 and "exceeds the limit of 1000" in resp.json()["detail"] and seen == []


def test_a_body_within_the_cap_reaches_the_app_whole() -> None:
    seen: list[int] = []
    client = TestClient(app_with_cap(1000, seen))
    resp = client.post("/things", content=b"z" * 1000, headers={"authorization": "Bearer ok"})
    assert resp.status_code == 200 and resp.json() == {"bytes": 1000} and seen == [1000]
    assert client.post("/things", content=b"z" * 10).status_code == 401  # the app still decides the rest


def test_a_client_still_sending_an_oversized_body_reads_its_413() -> None:
    """Refusing before the body is read must not reset the connection under the client's feet."""
    body = b"x" * 2_000_000  # far more than the socket buffers hold: the client is mid-send when refused
    request = (b"POST /things HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
               b"content-length: %d\r\n\r\n" % len(body)) + body
    with serve(app_with_cap(1000, [])) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(request)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ") and b"the limit is 1000" in answer
