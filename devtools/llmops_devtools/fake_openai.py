"""A small local OpenAI-compatible HTTP server: the one fake in the suite's tests, benchmarks and demo.

It answers `POST /v1/chat/completions` (plain and streaming, with usage) and `GET /v1/models`, and can
misbehave on demand: answer slowly, with 429 + Retry-After, 500, or malformed JSON. It counts requests
and the peak number of concurrent ones, so tests can assert exact call counts and concurrency caps;
`hold()` keeps requests waiting (in flight) until `release()`, so a test can wait for a cap to be reached.

Behaviour is set by a `FakeLLMConfig` (changeable while running) or per request by the header
`x-fake-mode` (`ok`, `429`, `500`, `malformed`, `bad_content`; also any other HTTP error status such as
`400`, `401`, `403`, `404`, `408`, `409`, `503` with an OpenAI-style error body, and `quota`: a 429 for an
exhausted quota, `insufficient_quota`, without Retry-After) and `x-fake-latency-ms`. A `script` is a queue of
modes that the next requests take in order, e.g. `["429", "500", "ok"]`; `default_mode` is the mode of every
other request (`ok` unless set, e.g. to `500` for an endpoint that is down). A request whose `response_format`
type is in `rejected_formats` (`{"json_schema"}`: an endpoint without structured outputs; add `"json_object"`
for one without JSON mode either) gets a 400 naming `response_format`, as such endpoints answer, before any
scripted mode is taken. `marked_modes` maps a marker to a mode that
every request whose prompt contains the marker takes (after the header, before the script): one event of a
batch can be answered badly on every call, whatever the order of the calls. Malformed 200 replies, for the
judge's validation: `negative_usage` and `huge_usage` (token counts -5 and 10^12), `content_not_string`
(the content a JSON object), `no_choices` (an empty list), `not_an_object` (the body a JSON array) and
`nul_reasoning` (a judgment whose reasoning holds a NUL and a lone surrogate). With `quote_prompt` (on when run
alone, as the local stack's judge), a schema reply's strings quote the judged text, as a real judge's
reasoning does. Replies are deterministic: the content
is `reply_text` if set, otherwise a JSON object if the request asks for JSON (`response_format`), else
an echo of the last user message's length.

Run it alone: `python -m llmops_devtools.fake_openai --port 8099 --latency-ms 200`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import os
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeLLMConfig:
    latency_ms: float = 0.0
    error_rate: float = 0.0  # share of requests answered with a random 429 or 500
    retry_after_s: float = 1.0
    reply_text: str | None = None
    json_reply: dict[str, Any] | None = None  # returned as the content when the request asks for JSON
    marked_json_replies: dict[str, dict[str, Any]] = field(default_factory=dict)  # prompt marker -> its JSON reply
    # Answer a `json_schema` request with an object built from that schema (integers 1-3 picked from a hash
    # of the prompt, strings filled in): what the local stack's demo judge does.
    schema_replies: bool = False
    # With schema replies, quote the end of the last user message in every string (a real judge quotes
    # what it judged in its reasoning: where the judged text would leak into stored results).
    quote_prompt: bool = False
    script: collections.deque[str] = field(default_factory=collections.deque)
    seed: int = 7
    rejected_formats: set[str] = field(default_factory=set)  # `response_format` types answered with a 400
    default_mode: str = "ok"  # the mode of a request that no header, script or error_rate decides (e.g. "500")
    marked_modes: dict[str, str] = field(default_factory=dict)  # prompt marker -> mode of every such request


@dataclass
class FakeLLMStats:
    requests: int = 0
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # the bearer token of each chat completion request


class FakeLLMServer:
    """Start with `start()` (a background thread) or as a context manager; `url` is the base URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, config: FakeLLMConfig | None = None,
                 poll_interval_s: float = 0.5) -> None:
        self.config = config or FakeLLMConfig()
        self._poll_interval_s = poll_interval_s  # how soon `stop()` returns; small in test suites
        self.stats = FakeLLMStats()
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)
        self._open = threading.Event()  # cleared by `hold()`: requests wait, in flight, until `release()`
        self._open.set()
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = _QuietServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for the openai client (`base_url=`), ending in /v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeLLMServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(self._poll_interval_s,),
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._open.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hold(self) -> None:
        """Keep every chat completion request from now on waiting, counted in flight, until `release()`:
        a test can then wait for a number of requests in flight instead of hoping latency makes them
        overlap."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def reset(self) -> None:
        with self._lock:
            self.stats = FakeLLMStats()
            self.config.script.clear()

    # -- used by the handler ------------------------------------------------------------------------
    def _enter(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.stats.requests += 1
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
            self.stats.bodies.append(body)

    def _leave(self, status: int) -> None:
        with self._lock:
            self.stats.in_flight -= 1
            self.stats.by_status[status] += 1

    def _next_mode(self, header_mode: str | None, body: dict[str, Any]) -> str:
        if header_mode:
            return header_mode
        if self.config.marked_modes:
            prompt = _prompt_text(body)
            for marker, mode in self.config.marked_modes.items():
                if marker in prompt:
                    return mode
        with self._lock:
            if self.config.script:
                return self.config.script.popleft()
            if self.config.error_rate and self._rng.random() < self.config.error_rate:
                return self._rng.choice(["429", "500"])
            return self.config.default_mode


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 256  # the listen backlog: read when the socket starts listening
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that left mid-stream is normal
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLLMServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes; no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests read stats, not logs

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._json(200, {"status": "ok"})
        elif self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "test"}]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        fake = self.fake
        fake.stats.keys.append(self.headers.get("authorization", "").removeprefix("Bearer "))
        fake._enter(body)
        # Stats are settled before the reply is written, so a client that has its answer sees them.
        try:
            fake._open.wait()
            latency = float(self.headers.get("x-fake-latency-ms") or fake.config.latency_ms)
            if latency:
                time.sleep(latency / 1000)
            requested = _format_type(body)
            rejected = requested is not None and requested in fake.config.rejected_formats
            mode = "reject_format" if rejected else fake._next_mode(self.headers.get("x-fake-mode"), body)
        except BaseException:
            fake._leave(500)
            raise
        status = _mode_status(mode)
        fake._leave(status)
        if mode == "reject_format":
            self._json(400, {"error": {"message": f"Invalid parameter: 'response_format' of type '{requested}' is "
                                                  "not supported with this model.",
                                       "type": "invalid_request_error", "param": "response_format",
                                       "code": None}})
        elif mode == "quota":
            self._json(429, {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota",
                                       "code": "insufficient_quota"}})
        elif mode in _ERROR_TYPES:
            self._json(status, {"error": {"message": f"fake error {status}", "type": _ERROR_TYPES[mode],
                                          "code": None}})
        elif mode == "429":
            self._json(429, {"error": {"message": "rate limited", "type": "rate_limit_error",
                                       "code": "rate_limit_exceeded"}},
                       headers={"retry-after": f"{fake.config.retry_after_s:g}"})
        elif mode == "500":
            self._json(500, {"error": {"message": "internal error", "type": "server_error"}})
        elif mode == "malformed":
            self._send(200, b'{"id": "chatcmpl-broken", "choices": [', "application/json")
        elif mode == "bad_content":
            self._json(200, _completion(body, "this is not JSON at all"))
        elif mode in _MALFORMED:
            self._send(200, json.dumps(_MALFORMED[mode](_completion(body, _content(fake.config, body)))).encode(),
                       "application/json")
        elif body.get("stream"):
            self._stream(body)
        else:
            self._json(200, _completion(body, _content(fake.config, body)))

    def _stream(self, body: dict[str, Any]) -> None:
        content = _content(self.fake.config, body)
        model = body.get("model", "fake-model")
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        pieces = [content[i : i + 8] for i in range(0, len(content), 8)] or [""]
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        self._chunk({**base, "choices": [first]})
        for piece in pieces:
            self._chunk({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        self._chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._chunk({**base, "choices": [], "usage": _usage(body, content)})
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    def _chunk(self, obj: dict[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, obj: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


# Error modes beyond the original 429 and 500, answered with an OpenAI-style error body.
_ERROR_TYPES = {
    "400": "invalid_request_error",
    "401": "authentication_error",
    "403": "permission_denied_error",
    "404": "not_found_error",
    "408": "timeout_error",
    "409": "conflict_error",
    "422": "invalid_request_error",
    "502": "server_error",
    "503": "server_error",
    "504": "server_error",
}


def _with(path: tuple[str | int, ...], value: Any) -> Any:
    """A function that sets `path` in a completion to `value`."""

    def change(completion: dict[str, Any]) -> Any:
        target: Any = completion
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return completion

    return change


# Malformed 200 replies, built from a good completion.
_MALFORMED = {
    "negative_usage": _with(("usage", "prompt_tokens"), -5),
    "huge_usage": _with(("usage", "completion_tokens"), 10**12),
    "content_not_string": _with(("choices", 0, "message", "content"),
                                {"reasoning": "an object, not a string", "score": 3}),
    "no_choices": _with(("choices",), []),
    "not_an_object": lambda completion: [completion],
    "nul_reasoning": _with(("choices", 0, "message", "content"),
                           json.dumps({"reasoning": "fine\u0000 and \ud800 odd", "score": 3})),
}


def _mode_status(mode: str) -> int:
    if mode == "reject_format":
        return 400
    if mode == "quota":
        return 429
    if mode in _ERROR_TYPES:
        return int(mode)
    return {"429": 429, "500": 500}.get(mode, 200)


def _format_type(body: dict[str, Any]) -> str | None:
    response_format = body.get("response_format")
    return response_format.get("type") if isinstance(response_format, dict) else None


def _prompt_text(body: dict[str, Any]) -> str:
    parts = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    return "\n".join(parts)


def _content(config: FakeLLMConfig, body: dict[str, Any]) -> str:
    if config.reply_text is not None:
        return config.reply_text
    wants_json = (body.get("response_format") or {}).get("type") in {"json_object", "json_schema"}
    if wants_json:
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        prompt = _prompt_text(body)
        for marker, reply in config.marked_json_replies.items():
            if marker in prompt:
                return json.dumps(reply)
        if config.json_reply is None and config.schema_replies and isinstance(schema, dict):
            return json.dumps(_from_schema(schema, _prompt_text(body),
                                           quote=_last_user_text(body) if config.quote_prompt else None))
        return json.dumps(config.json_reply or {"score": 4, "label": "good", "reasoning": "fake judge"})
    words = len(_prompt_text(body).split())
    return f"This is a fake answer to a prompt of {words} words."


def _last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    return _prompt_text({"messages": users[-1:]})


QUOTE_CHARS = 1_500


def _from_schema(schema: dict[str, Any], prompt: str, quote: str | None = None) -> dict[str, Any]:
    seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
    out: dict[str, Any] = {}
    for name, spec in (schema.get("properties") or {}).items():
        kinds = {spec.get("type")} | {s.get("type") for s in spec.get("anyOf", []) if isinstance(s, dict)}
        if "integer" in kinds:
            out[name] = 1 + seed % 3
        elif "number" in kinds:
            out[name] = round((seed % 100) / 100, 2)
        elif "boolean" in kinds:
            out[name] = seed % 2 == 0
        elif "string" in kinds:
            out[name] = f"fake judge: {name} for a prompt of {len(prompt.split())} words"
            if quote is not None:
                out[name] += f"; the text judged reads: {quote[-QUOTE_CHARS:]}"
    return out


def _usage(body: dict[str, Any], content: str) -> dict[str, Any]:
    prompt_tokens = max(1, len(_prompt_text(body)) // 4)
    completion_tokens = max(1, len(content) // 4)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": _usage(body, content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="A local OpenAI-compatible test server")
    parser.add_argument("--port", type=int, default=int(os.environ.get("LLMOPS_FAKE_LLM_PORT", "8099")))
    parser.add_argument("--latency-ms", type=float, default=float(os.environ.get("LLMOPS_FAKE_LLM_LATENCY_MS", "50")))
    parser.add_argument("--error-rate", type=float, default=0)
    args = parser.parse_args()
    config = FakeLLMConfig(latency_ms=args.latency_ms, error_rate=args.error_rate, schema_replies=True,
                           quote_prompt=True)
    server = FakeLLMServer(port=args.port, config=config)
    print(f"fake OpenAI-compatible server on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server._httpd.serve_forever()


if __name__ == "__main__":
    main()
