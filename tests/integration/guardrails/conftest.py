"""Fixtures for the guardrails integration tests: one loaded engine, and the stream pipeline in this process.

`guardrails_pipeline` (or `start_pipeline`, with settings of a test's own) runs the guardrails worker and
the notifier (each a `StreamWorker`) on topics and consumer groups of their own, against the session's
real Kafka, Postgres and Redis, with a local HTTP receiver for notifications (`Pipeline.receiver`): the
notifier's egress policy allows exactly its address and port.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.notifier.service import NotifierSettings, open_notifier
from llmops_guardrails.settings import GuardrailsSettings
from llmops_guardrails.worker import GuardrailsWorker, open_handler
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from llmops_shared.worker import Resources, StreamWorker
from tests.support.receiver import Receiver

SALT = "guardrails-integration-salt"

# Channel URLs' names answer from this table, never from DNS (the egress check resolves them). The public
# addresses are only checked, never connected to.
ADDRESSES = {"example.com": ["93.184.215.14"], "a.example": ["93.184.215.14"], "hooks.slack.com": ["3.120.0.10"],
             "internal.example": ["93.184.215.14", "10.1.2.3"], "metadata.example": ["169.254.169.254"]}


async def resolve(host: str, port: int) -> list[str]:
    if host not in ADDRESSES:
        raise OSError(-2, "Name or service not known")
    return ADDRESSES[host]


@pytest.fixture(scope="session")
def guardrails_engine() -> PolicyEngine:
    engine = PolicyEngine(GuardrailsSettings(finding_hash_salt=SALT))  # type: ignore[arg-type]
    from llmops_guardrails.policy import default_policy

    engine.warm_up(default_policy())
    return engine


async def wait_until(condition: Callable[[], Awaitable[Any]], timeout_s: float = 30.0, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await condition()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not met within {timeout_s} s")
        await asyncio.sleep(0.05)


@dataclass
class Pipeline:
    settings: GuardrailsSettings
    handler: GuardrailsWorker
    producer: AIOKafkaProducer
    workers: list[StreamWorker[Any, Any]]
    tasks: list[asyncio.Task[None]]
    receiver: Receiver

    async def send(self, *events: dict[str, Any] | bytes, key: bytes | None = None) -> None:
        for event in events:
            value = event if isinstance(event, bytes) else orjson.dumps(event)
            k = key or (event["trace_id"].encode() if isinstance(event, dict) else b"poison")
            await self.producer.send_and_wait(self.settings.raw_topic, value, key=k)

    def check_alive(self) -> None:
        for task in self.tasks:
            if task.done():
                raise AssertionError(f"a worker stopped: {task.exception()!r}")


def pipeline_settings(stack: CommonSettings, suffix: str, **overrides: Any) -> GuardrailsSettings:
    return GuardrailsSettings(**{
        **stack.model_dump(), "finding_hash_salt": SALT, "group": f"guardrails-test-{suffix}",
        "raw_topic": f"{TOPIC_PREFIX}gr.raw.{suffix}", "clean_topic": f"{TOPIC_PREFIX}gr.clean.{suffix}",
        "alerts_topic": f"{TOPIC_PREFIX}gr.alerts.{suffix}", "batch_max_events": 50, "batch_max_wait_ms": 100,
        "policy_cache_ttl_s": 0.5, **overrides})


@asynccontextmanager
async def start_pipeline(stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis,
                         engine: PolicyEngine, **overrides: Any) -> AsyncIterator[Pipeline]:
    """The guardrails worker (as `open_handler` builds it: with its `ConfigWatcher`) and the notifier, on
    topics of their own; `overrides` change the worker's settings."""
    suffix = uuid.uuid4().hex[:8]
    settings = pipeline_settings(stack, suffix, **overrides)
    await ensure_topics(stack.kafka_bootstrap, (
        TopicSpec(settings.raw_topic, partitions=3, retention_ms=3_600_000),
        TopicSpec(settings.clean_topic, partitions=3, retention_ms=3_600_000),
        TopicSpec(settings.alerts_topic, partitions=1, retention_ms=3_600_000),
    ))
    producer = durable_producer(stack.kafka_bootstrap, client_id="guardrails-test")
    await producer.start()
    notifier_settings = NotifierSettings(**stack.model_dump(), group=f"notifier-test-{suffix}",
                                         alerts_topic=settings.alerts_topic, batch_max_events=50,
                                         batch_max_wait_ms=50, backoff_base_s=0.05, max_attempts=4,
                                         redis_retry_max_s=0.2, sweep_interval_s=0.2)
    notifier_stopping = asyncio.Event()
    with Receiver() as receiver:  # the one destination on loopback the notifier may reach
        notifier_settings = notifier_settings.model_copy(update={"egress_allow": receiver.allowance})
        async with open_handler(settings, engine=engine) as handler, \
                open_notifier(notifier_settings, Resources(pg_pool, producer, notifier_stopping),
                              redis=redis_client) as notifier:
            workers: list[StreamWorker[Any, Any]] = [
                StreamWorker(handler, settings, pool=pg_pool, producer=producer),
                StreamWorker(notifier, notifier_settings, pool=pg_pool, producer=producer, stopping=notifier_stopping),
            ]
            tasks = [asyncio.create_task(w.run()) for w in workers]
            try:
                yield Pipeline(settings, handler, producer, workers, tasks, receiver)
            finally:
                for w in workers:
                    w.stopping.set()
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
                await producer.stop()


@pytest_asyncio.fixture
async def guardrails_pipeline(stack: CommonSettings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis,
                              guardrails_engine: PolicyEngine) -> AsyncIterator[Pipeline]:
    """The guardrails worker and the notifier, running on topics of their own until the test ends."""
    async with start_pipeline(stack, pg_pool, redis_client, guardrails_engine) as pipeline:
        yield pipeline
