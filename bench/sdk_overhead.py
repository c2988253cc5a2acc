"""SDK overhead on the app's thread: what `record()` costs per call, and what `instrument_openai` adds to a
chat completion, each against a baseline measured in the same run.

    .venv/bin/python bench/sdk_overhead.py [--calls 100000] [--llm-calls 400]

`record()`: each call is timed alone (perf_counter_ns around one call) for a realistic LLM event (two
messages, output, usage), while the recorder's sender thread delivers to a local stand-in for the ingest
API that answers 202 at once, as in production. Baselines: an empty function call, and appending the
same dict to a list. The buffer is large enough that nothing is dropped, and the run checks it.

`instrument_openai`: the same non-streaming and streaming chat completions through an unwrapped and a
wrapped `openai.OpenAI` client against the local fake OpenAI-compatible server, alternating, so both see
the same machine; the overhead is the difference of the medians (noisy at the scale of a local HTTP
round trip, so the rounds are many and the figure is a median).

Target: under 50 microseconds median per recorded call.
"""

from __future__ import annotations

import argparse
import gc
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai

from llmops_devtools.fake_openai import FakeLLMServer
from llmops_sdk import Recorder, instrument_openai, span, trace

EVENT: dict[str, Any] = {
    "name": "answer", "provider": "openai", "model": "gpt-4o-mini",
    "input": [{"role": "system", "content": "You are a careful assistant for ACME support."},
              {"role": "user", "content": "How do I reset my password on my phone?"}],
    "output": "Open Settings, choose Security, then Reset password.",
    "usage": {"input_tokens": 42, "output_tokens": 12}, "latency_ms": 412.5,
}
MESSAGES = EVENT["input"]


class _Accept(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        count = len(json.loads(body)["interactions"])
        data = json.dumps({"accepted": count, "rejected": 0}).encode()
        self.send_response(202)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve_stand_in(port: int) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _Accept)
    httpd.daemon_threads = True
    print("ready", flush=True)
    httpd.serve_forever(poll_interval=0.05)


@contextmanager
def ingest_stand_in() -> Iterator[str]:
    """A stand-in for the ingest API answering 202 at once, in a process of its own (as the real one
    is), so its work does not compete with the measured thread for the GIL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def per_call_ns(fn: Callable[[], Any], calls: int) -> list[int]:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        started = clock()
        fn()
        samples.append(clock() - started)
    return samples


def summary(samples: list[int] | list[float]) -> tuple[float, float]:
    """Median and p99, in microseconds (samples in ns)."""
    ordered = sorted(samples)
    return statistics.median(ordered) / 1000, ordered[int(len(ordered) * 0.99) - 1] / 1000


def bench_record(calls: int) -> list[tuple[str, float, float]]:
    rows = []
    sink: list[dict[str, Any]] = []

    def empty() -> None:
        return None

    gc.collect()
    rows.append(("baseline: empty function call", *summary(per_call_ns(empty, calls))))
    rows.append(("baseline: list.append(dict)", *summary(per_call_ns(lambda: sink.append(EVENT), calls))))
    with ingest_stand_in() as url:
        recorder = Recorder(endpoint=url, api_key="bench", app_id="bench", max_buffer=calls * 3)
        try:
            rows.append(("record(event)", *summary(per_call_ns(lambda: recorder.record(EVENT), calls))))
            with trace(), span("bench", recorder=recorder):
                rows.append(("record(event) inside a trace and span",
                             *summary(per_call_ns(lambda: recorder.record(EVENT), calls))))
            rows.append(("record(**fields)", *summary(per_call_ns(
                lambda: recorder.record(name="answer", model="gpt-4o-mini", latency_ms=412.5), calls))))
            assert recorder.flush(60), "the recorder did not deliver everything"
            stats = recorder.stats()
        finally:
            recorder.close(5)
    assert stats.dropped == 0 and stats.sent == stats.recorded == 3 * calls + 1, stats
    return rows


def fake_llm() -> FakeLLMServer:
    server = FakeLLMServer()
    # The fake writes headers and body in two sends; with Nagle's algorithm on, each reply then waits
    # ~40 ms for the client's delayed ACK, which would swamp what is measured here.
    httpd = server._httpd
    httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]

    def quiet_resets(request: Any, client_address: Any) -> None:
        # openai closes a stream's connection after [DONE] without reading the chunked end: not news
        if not isinstance(sys.exc_info()[1], ConnectionError):
            ThreadingHTTPServer.handle_error(httpd, request, client_address)

    httpd.handle_error = quiet_resets  # type: ignore[method-assign]
    return server


def bench_openai(rounds: int) -> list[tuple[str, float, float, float]]:
    rows = []
    with fake_llm() as fake, ingest_stand_in() as url:
        fake.config.reply_text = "Open Settings, choose Security, then Reset password. " * 4
        recorder = Recorder(endpoint=url, api_key="bench", app_id="bench", max_buffer=rounds * 10)
        plain = openai.OpenAI(base_url=fake.url, api_key="sk-bench", max_retries=0)
        wrapped = instrument_openai(openai.OpenAI(base_url=fake.url, api_key="sk-bench", max_retries=0), recorder)

        def completion(client: openai.OpenAI) -> None:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        def stream(client: openai.OpenAI) -> None:
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                    stream_options={"include_usage": True}):
                pass

        try:
            for name, fn in (("chat completion", completion), ("streamed chat completion", stream)):
                for _ in range(20):  # warm both connections up
                    fn(plain)
                    fn(wrapped)
                base: list[int] = []
                inst: list[int] = []
                for i in range(rounds):
                    order = (plain, wrapped) if i % 2 == 0 else (wrapped, plain)
                    for client in order:
                        started = time.perf_counter_ns()
                        fn(client)
                        (base if client is plain else inst).append(time.perf_counter_ns() - started)
                b, w = statistics.median(base) / 1000, statistics.median(inst) / 1000
                rows.append((name, b, w, w - b))
            assert recorder.flush(30)
        finally:
            recorder.close(5)
            plain.close()
            wrapped.close()
    return rows


class _CannedStream:
    """Iterates like `openai.Stream` (through `_iterator`) over chunks fetched once."""

    def __init__(self, chunks: list[Any]) -> None:
        self.response = None
        self._iterator = iter(chunks)

    def __iter__(self) -> Iterator[Any]:
        yield from self._iterator


class _Stub:
    """Just enough of `openai.OpenAI` for `instrument_openai`: `chat.completions.create` and `base_url`,
    answering with canned objects, so that only the wrapper's own work is timed."""

    def __init__(self, completion: Any, chunks: list[Any]) -> None:
        self.base_url = "https://api.openai.com/v1"
        self.chat = type("Chat", (), {})()
        self.chat.completions = type("Completions", (), {})()
        self.chat.completions.create = self.create
        self._completion, self._chunks = completion, chunks

    def create(self, **kwargs: Any) -> Any:
        return _CannedStream(self._chunks) if kwargs.get("stream") else self._completion


def bench_wrapper_alone(calls: int) -> list[tuple[str, float, float, float]]:
    """The wrapper's work on the app thread, without any network: a stub client answering canned
    objects, wrapped and not."""
    with fake_llm() as fake, ingest_stand_in() as url:
        fake.config.reply_text = "Open Settings, choose Security, then Reset password. " * 4
        client = openai.OpenAI(base_url=fake.url, api_key="sk-bench", max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                     stream_options={"include_usage": True}))
        client.close()
        recorder = Recorder(endpoint=url, api_key="bench", app_id="bench", max_buffer=calls * 3)
        plain = _Stub(completion, chunks)
        wrapped = instrument_openai(_Stub(completion, chunks), recorder)
        try:
            rows = []
            for name, kwargs in (("chat completion", {}), (f"stream of {len(chunks)} chunks", {"stream": True})):
                def run(stub: _Stub, kwargs: dict[str, Any] = kwargs) -> None:
                    for _ in stub.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **kwargs) \
                            if kwargs else ():
                        pass
                    if not kwargs:
                        stub.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

                base = summary(per_call_ns(lambda: run(plain), calls))
                inst = summary(per_call_ns(lambda: run(wrapped), calls))
                rows.append((name, base[0], inst[0], inst[0] - base[0]))
            assert recorder.flush(30) and recorder.stats().dropped == 0
        finally:
            recorder.close(5)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="record() calls per measurement")
    parser.add_argument("--llm-calls", type=int, default=400, help="rounds per client and kind of call")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the ingest stand-in's own process
    args = parser.parse_args()
    if args.serve:
        serve_stand_in(args.serve)
        return

    started = time.perf_counter()
    print(f"Python {sys.version.split()[0]}, openai {openai.__version__}; {args.calls} calls per row\n")
    print(f"{'on the app thread, per call':<42} {'median µs':>10} {'p99 µs':>10}")
    for name, median, p99 in bench_record(args.calls):
        print(f"{name:<42} {median:>10.2f} {p99:>10.2f}")
    print(f"\n{'openai client, median per call':<30} {'unwrapped µs':>13} {'wrapped µs':>11} {'overhead µs':>12}"
          f"   ({args.llm_calls} calls each, fake server)")
    for name, base, wrapped, overhead in bench_openai(args.llm_calls):
        print(f"{name:<30} {base:>13.1f} {wrapped:>11.1f} {overhead:>12.1f}")
    wrapper_calls = max(1_000, args.calls // 10)
    print(f"\n{'the wrapper alone, median':<30} {'unwrapped µs':>13} {'wrapped µs':>11} {'overhead µs':>12}"
          f"   ({wrapper_calls} calls each, canned answers)")
    for name, base, wrapped, overhead in bench_wrapper_alone(wrapper_calls):
        print(f"{name:<30} {base:>13.2f} {wrapped:>11.2f} {overhead:>12.2f}")
    print(f"\nfinished in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
