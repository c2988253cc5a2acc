"""A cap on request bodies, checked before anything reads or parses them (authentication included).

`BodyLimit` is plain ASGI middleware: a request that declares a `Content-Length` over the cap is answered
413 without reading any of it into memory; a body sent without one (chunked) is read up to the cap and
answered 413 as soon as it goes past, never buffered whole. What passes is handed to the app unchanged.

Before a 413, the rest of the body is read and thrown away, up to `DRAIN_BYTES`: a server that closes
while the client is still sending resets the connection, and the client then sees a broken pipe instead
of the 413 that explains it (seen with an 800 KB request on a busy machine). Past `DRAIN_BYTES` the
connection is closed as it is. Every API of the suite installs it (`install(app, max_bytes)`), so a
client without a key cannot make a service parse megabytes of JSON.
The 413 is problem details, unless the app gives `too_large` for paths whose protocol answers otherwise
(the ingest API's OTLP route answers a `google.rpc.Status`).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmops_shared.problems import problem_response

DRAIN_BYTES = 16 * 1024 * 1024
"""At most this much of a refused body is read (and discarded) so the client can read its 413."""

TooLarge = Callable[[Scope, str], Response | None]
"""The 413 for a request (its scope) and a reason, or None for the default problem details."""


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int, too_large: TooLarge | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            if declared <= DRAIN_BYTES:
                await _drain(receive, DRAIN_BYTES)
            await self._refuse(scope, receive, send, f"the body is {declared} bytes; the limit is {self.max_bytes}")
            return
        # Read the body up to the cap before the app sees any of it, then replay it.
        chunks: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                chunks.append(message)
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await _drain(receive, DRAIN_BYTES - size)
                await self._refuse(scope, receive, send, f"the body exceeds the limit of {self.max_bytes} bytes")
                return
            chunks.append(message)
            if not message.get("more_body", False):
                break
        replay = iter(chunks)

        async def replayed() -> Message:
            try:
                return next(replay)
            except StopIteration:
                return await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        response = self.too_large(scope, detail) if self.too_large else None
        if response is None:
            response = problem_response(413, detail)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop what is left of the request body, at most `budget` bytes of it."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def install(app: ASGIApp, *, max_bytes: int, too_large: TooLarge | None = None) -> None:
    """Cap the bodies of `app` (a FastAPI or Starlette app) at `max_bytes`."""
    app.add_middleware(BodyLimit, max_bytes=max_bytes, too_large=too_large)  # type: ignore[attr-defined]
