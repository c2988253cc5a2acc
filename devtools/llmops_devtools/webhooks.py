"""A local HTTP endpoint for webhooks, the notifier's and the monitors' pages: the server plumbing that
tests and benchmarks share. What a request means (record it, script the answer, time it) is the
caller's `answer`; this only serves POSTs on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = Callable[[str, dict[str, str], bytes], int]
"""(path, headers with lower-case names, body) -> the HTTP status to answer."""


class PostServer:
    """`with PostServer(answer) as s:` -> `s.url`; every POST is answered with `answer(...)`'s status."""

    def __init__(self, answer: Answer, *, port: int = 0) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def allowance(self) -> str:
        """The `LLMOPS_EGRESS_ALLOW` entry that lets the notifier reach this endpoint, and nothing else."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> PostServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
