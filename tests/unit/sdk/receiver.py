"""A stand-in for the ingest API's `POST /v1/interactions`, on the standard library, for SDK tests.

It answers 202 by default and can be told, per request in order, to answer otherwise: another status
(503, 429 with Retry-After, 401, 207 with per-index errors...), after a delay (slow ingest), or it can
be down (not started yet, or stopped: open connections are cut too). It keeps every request it got.
"""

from __future__ import annotations

import collections
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Reply:
    status: int = 202
    body: dict[str, Any] | None = None  # default: {"accepted": n, "rejected": 0} for 2xx, an error otherwise
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Received:
    at: float  # time.monotonic()
    headers: dict[str, str]
    events: list[dict[str, Any]]
    status: int


Script = Reply | Callable[[list[dict[str, Any]]], Reply]


class Receiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.script: collections.deque[Script] = collections.deque()
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._httpd: ThreadingHTTPServer | None = None
        self._sockets: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what arrived --------------------------------------------------------------------------------

    def events(self, status: int | None = 202) -> list[dict[str, Any]]:
        """Events of the requests answered with `status` (all requests for None)."""
        with self._lock:
            return [e for r in self.requests if status is None or r.status == status for e in r.events]

    def wait_for_events(self, n: int, timeout: float = 10.0, status: int | None = 202) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for r in self.requests if status is None or r.status == status for e in r.events]
                left = deadline - time.monotonic()
                if len(found) >= n or left <= 0:
                    return found
                self._changed.wait(left)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < n and time.monotonic() < deadline:
                self._changed.wait(max(0.0, deadline - time.monotonic()))
            return list(self.requests)

    # -- up and down -----------------------------------------------------------------------------------

    def start(self) -> Receiver:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"receiver-{self.port}",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            sockets, self._sockets = set(self._sockets), set()
        for sock in sockets:  # kept-alive connections too: down means down
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- used by the handler ---------------------------------------------------------------------------

    def _reply_for(self, events: list[dict[str, Any]]) -> Reply:
        with self._lock:
            step = self.script.popleft() if self.script else Reply()
        return step(events) if callable(step) else step

    def _got(self, received: Received) -> None:
        with self._changed:
            self.requests.append(received)
            self._changed.notify_all()


class _Handler(BaseHTTPRequestHandler):
    owner: Receiver
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stalls

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._sockets.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.owner._lock:
            self.owner._sockets.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            events = json.loads(raw)["interactions"]
        except (ValueError, KeyError, TypeError):
            events = []
        reply = self.owner._reply_for(events)
        if 200 <= reply.status < 300:
            body = reply.body if reply.body is not None else {"accepted": len(events), "rejected": 0}
        else:
            body = reply.body if reply.body is not None else {  # RFC 9457 problem details, as the ingest API
                "type": "about:blank", "title": "Error", "status": reply.status, "detail": f"test reply {reply.status}"}
        # Noted on arrival (before a slow reply's delay), so a client that has its answer finds it here.
        self.owner._got(Received(time.monotonic(), dict(self.headers), events, reply.status))
        if reply.delay_s:
            time.sleep(reply.delay_s)
        data = json.dumps(body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up waiting (a timeout test): nothing to answer


def partial(rejected_indices: list[int]) -> Callable[[list[dict[str, Any]]], Reply]:
    """A 207 that rejects the events at these indices (for an unknown field, as the API words it)."""

    def reply(events: list[dict[str, Any]]) -> Reply:
        errors = [{"index": i, "errors": [{"field": "bogus", "message": "unknown field"}]} for i in rejected_indices]
        return Reply(207, {"accepted": len(events) - len(errors), "rejected": len(errors), "errors": errors})

    return reply
