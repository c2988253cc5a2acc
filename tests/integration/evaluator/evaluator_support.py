"""Helpers for the evaluator's worker, API, end-to-end tests and its benchmark (not a test module)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson
from aiokafka import ConsumerRecord

from llmops_evaluator.config import EvaluatorConfig, matches
from llmops_evaluator.evaluator_store import save_evaluator
from llmops_evaluator.settings import EvaluatorSettings
from llmops_evaluator.worker import Runtime, open_runtime
from llmops_shared.contract import Interaction
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings, environment
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec

JUDGE_KEY_ENV = "EVAL_TEST_JUDGE_KEY"
JUDGE_ENV = {JUDGE_KEY_ENV: "sk-test"}
JUDGE_CREDENTIAL = "test-judge"  # what a test's evaluators name; `judge_grants` declares it for its servers
REPLY = {"reasoning": "It answers the question.", "score": 3}  # on every built-in scale (1-5 and 1-3)
REPLY_JSON = json.dumps(REPLY)


def evaluator_config(tenant: str, url: str, **overrides: Any) -> EvaluatorConfig:
    raw: dict[str, Any] = {
        "id": f"ev-{tenant}",
        "tenant_id": tenant,
        "rubrics": ["relevance@1", "safety@1"],
        "sample_rate": 1.0,
        "judge": {"model": "judge-model", "base_url": url, "credential": JUDGE_CREDENTIAL},
        "max_concurrency": 4,
        "daily_spend_cap_usd": "100",
    }
    raw.update(overrides)
    return EvaluatorConfig.model_validate(raw)


async def register(pool: asyncpg.Pool, config: EvaluatorConfig) -> None:
    await pool.execute("INSERT INTO tenants (tenant_id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING",
                       config.tenant_id)
    async with pool.acquire() as conn:
        await save_evaluator(conn=conn, config=config)


def judge_grants(judges: Iterable[str], *, tenants: Iterable[str] = ("*",)) -> dict[str, Any]:
    """The operator's side for a test's judge servers: the test credential, for exactly these base URLs (key
    in `JUDGE_KEY_ENV`), and egress allowances for exactly their addresses and ports."""
    urls = list(judges)
    allow = sorted({f"{urlsplit(u).hostname}:{urlsplit(u).port}" for u in urls})
    return {"credentials": {JUDGE_CREDENTIAL: {"key_env": JUDGE_KEY_ENV, "base_urls": urls, "tenants": list(tenants)}}
            if urls else {},
            "egress_allow": ",".join(allow)}


def worker_settings(stack: CommonSettings, *, judges: Iterable[str] = (), **overrides: Any) -> EvaluatorSettings:
    """Settings with topics and a consumer group of this test's own, a fast judge policy, small batches, and
    the test credential granted for the `judges` (base URLs of this test's servers), which egress allows."""
    run = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        **stack.model_dump(),
        **judge_grants(judges),
        "topic": f"{TOPIC_PREFIX}eval.source.{run}",
        "usage_topic": f"{TOPIC_PREFIX}eval.usage.{run}",
        "scores_topic": f"{TOPIC_PREFIX}eval.scores.{run}",
        "group": f"test-evaluator-{run}",
        "batch_max_events": 25,
        "batch_max_wait_ms": 50,
        "evaluators_refresh_s": 0.5,
        "judge_max_attempts": 2,
        "judge_base_delay_s": 0.01,
        "judge_max_delay_s": 0.02,
        "judge_attempt_timeout_s": 5,
        "judge_deadline_s": 20,
    }
    values.update(overrides)
    return EvaluatorSettings(**values)


async def create_topics(settings: EvaluatorSettings, partitions: int = 2) -> None:
    names = {settings.topic, settings.usage_topic, settings.scores_topic}
    await ensure_topics(settings.kafka_bootstrap,
                        tuple(TopicSpec(name, partitions=partitions, retention_ms=None) for name in sorted(names)
                              if name.startswith(f"{TOPIC_PREFIX}eval.") or name.startswith("bench.")))


async def send(bootstrap: str, topic: str, payloads: Iterable[dict[str, Any] | bytes]) -> None:
    producer = durable_producer(bootstrap, client_id="test-evaluator")
    await producer.start()
    try:
        futures = []
        for payload in payloads:
            if isinstance(payload, bytes):
                futures.append(await producer.send(topic, payload, key=b"k"))
            else:
                futures.append(await producer.send(topic, orjson.dumps(payload), key=payload["trace_id"].encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout_s: float = 30, every_s: float = 0.1,
                     what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every_s)
    raise AssertionError(f"{what}: not reached within {timeout_s:g} s")


def in_sample(event_id: str, rate: float) -> bool:
    """docs/evaluator.md's sample, derived here rather than with the worker's own `sampled`: the first 8
    bytes of SHA-256 of `llmops-sample:` and the event id's 16 bytes, as a fraction of 2^64, below the rate."""
    digest = hashlib.sha256(b"llmops-sample:" + uuid.UUID(event_id).bytes).digest()
    return rate >= 1 or int.from_bytes(digest[:8], "big") < rate * 2**64


def expected_keys(events: Iterable[dict[str, Any]], config: EvaluatorConfig) -> set[tuple[str, str, str, int]]:
    """(event, evaluator, rubric, version) for every judgment `config` asks for among `events`: those its
    filters match (`matches`, unit-tested on its own) and the sample holds (`in_sample`, derived here)."""
    keys = set()
    for event in events:
        if matches(config, Interaction.model_validate(event)) and in_sample(event["event_id"], config.sample_rate):
            for ref in config.rubrics:
                name, _, version = ref.partition("@")
                keys.add((event["event_id"], config.id, name, int(version)))
    return keys


async def result_keys(pool: asyncpg.Pool, tenant: str, *, status: str | None = None) -> list[tuple[str, str, str, int]]:
    rows = await pool.fetch(
        """SELECT event_id::text, evaluator_id, rubric, rubric_version FROM evaluation_results
           WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)""", tenant, status)
    return [(r["event_id"], r["evaluator_id"], r["rubric"], r["rubric_version"]) for r in rows]


def tenant_of(record: ConsumerRecord) -> str | None:
    try:
        return orjson.loads(record.value).get("tenant_id")
    except orjson.JSONDecodeError:
        return None


@contextlib.asynccontextmanager
async def running_worker(settings: EvaluatorSettings, environ: dict[str, str] | None = None
                         ) -> AsyncIterator[Runtime]:
    """The evaluator worker running in this event loop until the block ends (it finishes its batch)."""
    runtime = await open_runtime(settings, environ=JUDGE_ENV if environ is None else environ)
    task = asyncio.create_task(runtime.worker.run())
    try:
        yield runtime
    finally:
        runtime.worker.stopping.set()
        try:
            await asyncio.wait_for(task, 30)
        finally:
            await runtime.close()


def worker_env(settings: EvaluatorSettings, **extra: str) -> dict[str, str]:
    """The environment of a worker process (`python -m llmops_evaluator.worker`) with `settings`."""
    names = ("database_url", "kafka_bootstrap", "redis_url", "topic", "usage_topic", "scores_topic",
             "group", "batch_max_events", "batch_max_wait_ms", "evaluators_refresh_s",
             "judge_max_attempts", "judge_base_delay_s", "judge_max_delay_s", "consumer_session_timeout_ms",
             "credentials", "egress_allow")
    return {**os.environ, **JUDGE_ENV, **environment(settings, names), **extra}


async def start_worker(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """The worker as a process; its log (JSON lines on stderr) appended to `log`."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "llmops_evaluator.worker", env=env,
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=out)


class SlowDrip:
    """An HTTP server that answers every request 200 with a completion, one byte a second (a per-read
    time-out never fires on it). Counts the requests it got."""

    def __init__(self, content: str = REPLY_JSON) -> None:
        self.content = content
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def __aenter__(self) -> SlowDrip:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            self.requests += 1
            body = json.dumps({"id": "slow", "object": "chat.completion", "created": 0, "model": "judge-model",
                               "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                   "role": "assistant", "content": self.content}}]}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n" % len(body))
            for byte in body:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up: what this server is for
        finally:
            self._writers.discard(writer)
            writer.close()
