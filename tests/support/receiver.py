"""A real local HTTP receiver for notifications and webhooks: records requests, answers as scripted."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """`with Receiver() as r:` -> `r.url`; `r.script.extend([500, 500])` answers the next requests so."""

    def __init__(self) -> None:
        self.requests: list[Received] = []  # answered 2xx
        self.attempts: list[str] = []  # every request's path, whatever the answer
        self.script: collections.deque[int] = collections.deque()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    status = receiver.script.popleft() if receiver.script else 200
                    receiver.attempts.append(self.path)
                    if status < 300:
                        receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                          body))
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def allowance(self) -> str:
        """The `LLMOPS_EGRESS_ALLOW` entry that lets the notifier reach this receiver, and nothing else."""
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
