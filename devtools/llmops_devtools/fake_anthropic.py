"""A small local Anthropic Messages API (`POST /v1/messages`): JSON and SSE streaming, for tests.

It answers as the real API does in shape: a `message` object, or with `"stream": true` the event stream
`message_start`, `content_block_start`, `content_block_delta`..., `content_block_stop`, `message_delta`,
`message_stop`. Usage is Anthropic's: `input_tokens` counts only the prompt tokens that were neither read
from nor written to the prompt cache, and `cache_read_input_tokens` / `cache_creation_input_tokens` are
reported apart (set them in `FakeAnthropicConfig`). The answer is `reply_text` if set, otherwise a sentence
naming the prompt's length; token counts are deterministic (characters / 4).

Misbehaviour on demand, per request with the header `x-fake-mode`: `429` (with Retry-After), `500`,
`529` (overloaded), `400`, or `stream_error` (a stream that sends an `error` event after its first delta).

Run it alone: `python -m llmops_devtools.fake_anthropic --port 8098`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from llmops_devtools.fake_openai import _QuietServer

_ERRORS = {"400": (400, "invalid_request_error"), "429": (429, "rate_limit_error"), "500": (500, "api_error"),
           "529": (529, "overloaded_error")}


@dataclass
class FakeAnthropicConfig:
    reply_text: str | None = None
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


@dataclass
class FakeAnthropicStats:
    requests: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)


class FakeAnthropicServer:
    """Start with `start()` or as a context manager; `url` is the base URL for `anthropic.Anthropic(base_url=)`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, config: FakeAnthropicConfig | None = None) -> None:
        self.config = config or FakeAnthropicConfig()
        self.stats = FakeAnthropicStats()
        self._lock = threading.Lock()
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = _QuietServer((host, port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeAnthropicServer:
        threading.Thread(target=self._httpd.serve_forever, args=(0.1,), name="fake-anthropic", daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeAnthropicServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAnthropicServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) if length else b"{}")
        except json.JSONDecodeError:
            self._error(400, "invalid_request_error", "invalid JSON body")
            return
        if self.path.split("?")[0].rstrip("/") != "/v1/messages" or not isinstance(body, dict):
            self._error(404, "not_found_error", "not found")
            return
        fake = self.fake
        with fake._lock:
            fake.stats.requests += 1
            fake.stats.bodies.append(body)
        mode = self.headers.get("x-fake-mode") or "ok"
        if mode in _ERRORS:
            status, kind = _ERRORS[mode]
            self._error(status, kind, f"fake {kind}", {"retry-after": "1"} if status == 429 else None)
            return
        text = fake.config.reply_text
        if text is None:
            text = f"This is a fake answer to a prompt of {len(_prompt_text(body).split())} words."
        message = {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model", "claude-fake"),
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": max(1, len(_prompt_text(body)) // 4), "output_tokens": max(1, len(text) // 4),
                      "cache_read_input_tokens": fake.config.cache_read_input_tokens,
                      "cache_creation_input_tokens": fake.config.cache_creation_input_tokens},
        }
        if body.get("stream"):
            self._stream(message, text, fail=mode == "stream_error")
        else:
            self._send(200, json.dumps(message).encode(), "application/json")

    def _stream(self, message: dict[str, Any], text: str, *, fail: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        self._event("message_start", {"type": "message_start", "message": start})
        self._event("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}})
        for i in range(0, len(text), 8):
            self._event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": text[i:i + 8]}})
            if fail:
                self._event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                self._write_chunk(b"")
                return
        self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self._event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                         "stop_sequence": None},
                                      "usage": {"output_tokens": usage["output_tokens"]}})
        self._event("message_stop", {"type": "message_stop"})
        self._write_chunk(b"")

    def _event(self, name: str, data: dict[str, Any]) -> None:
        self._write_chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        body = {"type": "error", "error": {"type": kind, "message": message}}
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


def _prompt_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    system = body.get("system")
    for item in [system] if isinstance(system, str) else system or []:
        parts.append(item if isinstance(item, str) else str(item.get("text", "")))
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description="A local Anthropic Messages API for tests")
    parser.add_argument("--port", type=int, default=int(os.environ.get("LLMOPS_FAKE_ANTHROPIC_PORT", "8098")))
    args = parser.parse_args()
    server = FakeAnthropicServer(port=args.port)
    print(f"fake Anthropic Messages API on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server._httpd.serve_forever()


if __name__ == "__main__":
    main()
